"""A primary, a replica and three ``redis-sentinel`` processes on free ports of 127.0.0.1.

Each process is started in its own process group with its own temporary directory and killed
by its pid. The sentinels are quick to act (``down-after-milliseconds 500``): a primary killed
with ``SIGKILL`` is replaced by its replica within a few seconds. Debian's ``redis-sentinel``
package provides the sentinel binary; without it (or ``redis-server``) a test is skipped, or
failed under ``CI=true`` (``tests/services.py``; mark the test
``@pytest.mark.service("redis-server", "redis-sentinel")``).
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .processes import free_port
from .redis_server import RedisServer
from .services import require

__all__ = ["SERVICE", "SentinelGroup", "ask"]

SERVICE = "trio-sse-test"


def _read(stream: BinaryIO) -> object:
    line = stream.readline()
    kind, rest = line[:1], line[1:-2]
    if kind in (b"+", b"-"):
        return rest.decode()
    if kind == b":":
        return int(rest)
    if kind == b"$":
        if int(rest) < 0:
            return None
        return stream.read(int(rest) + 2)[:-2].decode()
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [_read(stream) for _ in range(count)]
    raise RuntimeError(f"unexpected reply from Redis: {line!r}")


def ask(
    port: int, *args: str, timeout: float = 1.0, context: ssl.SSLContext | None = None
) -> object:
    """One command to the Redis (or sentinel) on *port*, over TLS with *context*; its RESP2
    reply (``None`` when it cannot be reached)."""
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        with raw, _wrapped(raw, context) as sock:
            sock.sendall(request.encode())
            with sock.makefile("rb") as stream:
                return _read(stream)
    except OSError:  # ssl.SSLError is one
        return None


def _wrapped(sock: socket.socket, context: ssl.SSLContext | None) -> socket.socket:
    if context is None:
        return sock
    return context.wrap_socket(sock, server_hostname="127.0.0.1")


def _until(check: Callable[[], bool], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout} s")
        time.sleep(0.05)


class SentinelGroup:
    """``primary``, ``replica`` (``--replicaof`` the primary) and three sentinels watching
    :data:`SERVICE`. ``start()`` returns once every sentinel knows the replica and the
    two other sentinels; ``stop()`` kills what is still running."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        primary_dir, replica_dir = directory / "primary", directory / "replica"
        primary_dir.mkdir()
        replica_dir.mkdir()
        self.primary = RedisServer(extra=["--dir", str(primary_dir)])
        self.replica = RedisServer(
            extra=["--dir", str(replica_dir), "--replicaof", "127.0.0.1", str(self.primary.port)]
        )
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def _sentinel_config(self, index: int, port: int) -> Path:
        folder = self.directory / f"sentinel-{index}"
        folder.mkdir()
        config = folder / "sentinel.conf"
        lines = [
            f"port {port}",
            "bind 127.0.0.1",
            f"dir {folder}",
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2",
            f"sentinel down-after-milliseconds {SERVICE} 500",
            f"sentinel failover-timeout {SERVICE} 3000",
            f"sentinel parallel-syncs {SERVICE} 1",
        ]
        config.write_text("\n".join(lines) + "\n")
        return config

    def _linked(self) -> bool:
        info = ask(self.replica.port, "INFO", "replication")
        return isinstance(info, str) and "master_link_status:up" in info

    def _informed(self) -> bool:
        for port in self.sentinel_ports:
            replicas = ask(port, "SENTINEL", "REPLICAS", SERVICE)
            others = ask(port, "SENTINEL", "SENTINELS", SERVICE)
            if not (isinstance(replicas, list) and len(replicas) == 1):
                return False
            if not (isinstance(others, list) and len(others) == 2):
                return False
        return True

    def start(self, timeout: float = 20.0) -> None:
        binary = require("redis-sentinel")
        self.primary.start()
        self.replica.start()
        _until(self._linked, "the replica did not sync with the primary", timeout)
        for index, port in enumerate(self.sentinel_ports):
            self.sentinels.append(
                subprocess.Popen(
                    [binary, str(self._sentinel_config(index, port))],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        _until(self._informed, "the sentinels did not find each other and the replica", timeout)

    def restart_replica(self, timeout: float = 10.0) -> None:
        """Start the stopped replica again; returns once it synced with the primary."""
        self.replica.start()
        _until(self._linked, "the replica did not sync with the primary", timeout)

    def primary_port(self) -> int | None:
        """The primary's port according to the first sentinel that answers."""
        for port in self.sentinel_ports:
            reply = ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
            if isinstance(reply, list) and len(reply) == 2:
                return int(str(reply[1]))
        return None

    def kill_primary(self) -> None:
        """``SIGKILL`` the primary by its pid: no goodbye to its replica or clients."""
        process = self.primary.process
        assert process is not None
        self.primary.process = None
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    def wait_promoted(self, timeout: float = 15.0) -> None:
        """Until every sentinel names the replica as the primary and it says it is one."""

        def promoted() -> bool:
            for port in self.sentinel_ports:
                reply = ask(port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                if not (isinstance(reply, list) and str(reply[1]) == str(self.replica.port)):
                    return False
            role = ask(self.replica.port, "ROLE")
            return isinstance(role, list) and role[0] == "master"

        _until(promoted, "the replica was not promoted", timeout)

    def stop(self) -> None:
        for process in self.sentinels:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
            process.wait()
        self.sentinels.clear()
        for server in (self.primary, self.replica):
            running, server.process = server.process, None
            if running is not None:
                if running.poll() is None:
                    os.kill(running.pid, signal.SIGKILL)
                running.wait()
