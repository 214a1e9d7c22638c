"""Real server processes for tests: free ports, child environments, start, wait, kill by group.

Every process is started in its own session (its own process group) so that killing the
group also ends the workers some servers fork (``hypercorn`` does). All traffic is on
127.0.0.1, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child Python: this checkout's ``trio_sse`` and ``tests`` import."""
    env = dict(os.environ)
    paths = [str(SRC), str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def port_accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process's whole group if it still runs, and reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def spawn(
    argv: Sequence[str], log: Path, env: Mapping[str, str], *, pass_fds: Sequence[int] = ()
) -> subprocess.Popen[bytes]:
    """Start *argv* in the repository with *env*, stdin closed, its output appended to *log*,
    in a process group of its own (kill it with :func:`kill_group`: servers fork workers)."""
    with log.open("ab") as output:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
            start_new_session=True,
            pass_fds=pass_fds,
        )


@contextlib.contextmanager
def server_process(
    command: Sequence[str],
    port: int,
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 20.0,
    pass_fds: Sequence[int] = (),
) -> Iterator[subprocess.Popen[bytes]]:
    """Start *command* (``sys.executable`` is used for a leading ``"python"``), wait until
    *port* accepts connections, yield the process, and kill its group on exit. *pass_fds*:
    file descriptors the child inherits (a listening socket made by the test).

    The child's output goes to *log*, which is shown when it fails to start.
    """
    argv = [
        sys.executable if index == 0 and part == "python" else part
        for index, part in enumerate(command)
    ]
    process = spawn(argv, log, child_env(env), pass_fds=pass_fds)
    try:
        deadline = time.monotonic() + startup_timeout
        while not port_accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{' '.join(argv)} did not start:\n{log.read_text(errors='replace')}"
                )
            time.sleep(0.05)
        yield process
    finally:
        kill_group(process)


async def wait_accepting(
    port: int, process: subprocess.Popen[bytes], log: Callable[[], str], seconds: float
) -> None:
    """Async form of the start-up wait: until *port* accepts within *seconds*, failing if
    *process* exits first (the bound is the caller's, as an ``anyio.fail_after``)."""
    import anyio

    with anyio.fail_after(seconds):
        while True:
            assert process.poll() is None, f"the server exited early:\n{log()}"
            try:
                stream = await anyio.connect_tcp("127.0.0.1", port)
            except OSError:
                await anyio.sleep(0.05)
            else:
                await stream.aclose()
                return
