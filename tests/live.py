"""Real servers for the client, conformance and browser tests: in-process and as subprocesses.

All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

import trio_sse
from trio_sse import ShutdownToken

REPO = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve *app* with hypercorn in the current loop (trio or asyncio); yield its base URL.

    Leaving stops the server at once by cancellation (streams still end their bodies).
    """
    token = ShutdownToken()
    async with anyio.create_task_group() as group:
        urls = await group.start(
            partial(
                trio_sse.serve,
                app,
                host="127.0.0.1",
                port=0,
                handle_signals=False,
                shutdown=token,
                shutdown_grace_period=0.5,
            )
        )
        try:
            yield str(urls[0])
        finally:
            # A graceful stop (hypercorn waits up to 1 s for open connections), then a hard one.
            token.trigger("test over")
            group.cancel_scope.deadline = anyio.current_time() + 2


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of asking)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def subprocess_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child Python: this checkout's ``trio_sse`` and tests importable."""
    env = dict(os.environ)
    package_root = str(Path(trio_sse.__file__).resolve().parent.parent)
    paths = [package_root, str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


async def start_server_process(
    target: str, port: int, *, backend: str = "trio", log: Path | None = None
) -> anyio.abc.Process:
    """``python -m trio_sse serve TARGET --port PORT`` in its own session (process group)."""
    command = [
        sys.executable,
        "-m",
        "trio_sse",
        "serve",
        target,
        "--port",
        str(port),
        "--backend",
        backend,
        "--log-level",
        "warning",
    ]
    output = subprocess.DEVNULL if log is None else log.open("ab")
    try:
        return await anyio.open_process(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            cwd=REPO,
            env=subprocess_env(),
            start_new_session=True,
        )
    finally:
        if log is not None and not isinstance(output, int):
            output.close()


async def kill_process_group(process: anyio.abc.Process) -> None:
    """SIGKILL the process's whole group (it was started in a new session) and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    with anyio.move_on_after(10, shield=True):
        await process.wait()
    await process.aclose()
