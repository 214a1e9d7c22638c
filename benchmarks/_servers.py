"""Server processes for the benchmarks: started on 127.0.0.1, each in its own session.

Every server is ``subprocess.Popen(..., start_new_session=True)`` and is stopped by killing
its process group (``os.killpg(pid, ...)``, the group id being the server's own pid), so that
hypercorn's worker processes go with it. Nothing here listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._node import NODE_APPS, NODE_DIR

__all__ = ["APPS", "ROOT", "SERVERS", "Server", "free_port", "running"]

ROOT = Path(__file__).resolve().parent.parent

#: contestant app -> module (each module has an ``app``)
APPS = {
    "trio_sse": "benchmarks.app_trio_sse",
    "sse-starlette": "benchmarks.app_sse_starlette",
    "raw": "benchmarks.app_raw",
    # any of the above (TRIO_SSE_BENCH_GC_APP) with a /gc route: benchmarks.gc_probe
    "gc-probe": "benchmarks._gc_app",
}

#: server name -> how it is started (see ``Server.command``)
SERVERS = (
    "uvicorn",
    "hypercorn-asyncio",
    "hypercorn-trio",
    "trio_sse-serve-trio",
    "trio_sse-serve-asyncio",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One server process serving one app module."""

    def __init__(
        self,
        server: str,
        app: str,
        *,
        grace: int = 2,
        log: Path | None = None,
        env: dict[str, str] | None = None,
        src: str | None = None,
    ) -> None:
        self.server = server
        self.env = env or {}  # added to the server's environment
        self.src = src  # where trio_sse is imported from (default: this checkout's src/)
        self.app = app
        self.grace = grace
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []
        self.stats: dict[str, Any] = {}

    def command(self) -> list[str]:
        if self.server == "node":  # Node.js serves itself (benchmarks/node/)
            return ["node", str(NODE_DIR / NODE_APPS[self.app]), "--port", str(self.port)]
        target = f"{APPS[self.app]}:app"
        python = sys.executable
        port = str(self.port)
        grace = str(self.grace)
        if self.server == "uvicorn":
            return [
                python, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", port,
                "--http", "httptools", "--loop", "asyncio", "--log-level", "warning",
                "--no-access-log", "--backlog", "4096", "--timeout-graceful-shutdown", grace,
            ]  # fmt: skip
        if self.server in ("hypercorn-asyncio", "hypercorn-trio"):
            worker = self.server.split("-", 1)[1]
            return [
                python, "-m", "hypercorn", target, "--bind", f"127.0.0.1:{port}",
                "--worker-class", worker, "--backlog", "4096", "--graceful-timeout", grace,
                "--log-level", "warning",
            ]  # fmt: skip
        if self.server.startswith("trio_sse-serve-"):
            backend = self.server.rsplit("-", 1)[1]
            return [
                python, "-m", "trio_sse", "serve", target, "--backend", backend,
                "--host", "127.0.0.1", "--port", port, "--grace", grace, "--log-level", "warning",
            ]  # fmt: skip
        raise ValueError(f"unknown server {self.server!r}")

    def start(self, timeout: float = 30.0) -> None:
        env = dict(os.environ) | self.env
        paths = [self.src or str(ROOT / "src"), str(ROOT)]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        stderr: Any = subprocess.DEVNULL
        if self.log is not None:
            stderr = self.log.open("ab")
        try:
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        finally:
            if self.log is not None:
                stderr.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.server} serving {self.app} exited at start")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}/stats", timeout=2
                ) as response:
                    self.stats = json.loads(response.read())
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.server} serving {self.app} did not start") from None
                time.sleep(0.1)
        self.pids = [self.process.pid, *_descendants(self.process.pid)]

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # The group may outlive its leader (a hypercorn worker): make sure it is gone.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        self.process = None

    def wait_exit(self, timeout: float) -> int | None:
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None


def _descendants(pid: int) -> list[int]:
    """The pids of *pid*'s children, grandchildren... (hypercorn's workers)."""
    try:
        psutil: Any = importlib.import_module("psutil")
    except ImportError:
        return _descendants_from_proc(pid)
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _descendants_from_proc(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_bytes()
        except OSError:
            continue
        parent = int(raw[raw.rindex(b")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    """Start *servers* (one after the other), stop them all on the way out."""
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()
