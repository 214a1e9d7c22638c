"""A real ``redis-server`` for the tests, on a free port of 127.0.0.1.

Started in its own process group, stopped by its pid; ready once it answers ``PING``.
Debian's ``redis-server`` package provides the binary (``.ci/run`` installs it when missing);
without it a test that starts one is skipped, or failed under ``CI=true`` (``tests/services.py``;
mark the test ``@pytest.mark.service("redis-server")`` so that it is decided before its fixtures).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from .processes import free_port
from .services import require

__all__ = ["RedisServer", "free_port", "ping"]


def ping(port: int, timeout: float = 0.5) -> bool:
    """True when a Redis on *port* answers ``PING`` with ``+PONG``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process. ``start()``/``stop()`` may be called again (a restart).

    With ``data_dir`` the server persists (append-only file, fsync always) there, so a
    restart keeps the streams; without it nothing is saved.
    """

    def __init__(self, *, port: int | None = None, data_dir: Path | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        binary = require("redis-server")  # skips or fails the test when it is missing
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self.data_dir is None:
            command += ["--appendonly", "no"]
        else:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
            command += ["--dir", str(self.data_dir)]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not ping(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING within {timeout} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM by pid (Redis flushes its append-only file), SIGKILL if it lingers."""
        process = self.process
        if process is None:
            return
        self.process = None
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
