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
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .processes import free_port
from .services import require

if TYPE_CHECKING:
    from trio_sse import Broadcaster

__all__ = ["RedisServer", "ServerTLS", "command", "free_port", "ping"]


@dataclass(frozen=True)
class ServerTLS:
    """The server side of TLS: its certificate chain and key, and the CA of client certificates."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    auth_clients: bool = False

    def client_context(self) -> ssl.SSLContext:
        """A context that trusts *ca_file*, with no client certificate (for readiness)."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def _ask(sock: socket.socket) -> bool:
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    # A server that requires a password answers too.
    return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))


def ping(port: int, timeout: float = 0.5, *, context: ssl.SSLContext | None = None) -> bool:
    """True when a Redis on *port* answers ``PING`` with ``+PONG`` (or asks who we are)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            if context is None:
                return _ask(raw)
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                return _ask(sock)
    except (OSError, ssl.SSLError):
        return False


async def command(url: str, *args: str | bytes | int) -> Any:
    """Run one command on the Redis at *url* with a fresh coredis client; the raw reply."""
    import coredis

    client = coredis.Redis.from_url(url)
    async with client:
        name = args[0].encode() if isinstance(args[0], str) else args[0]
        assert isinstance(name, bytes)
        return await client.create_request(
            name, *args[1:], callback=lambda reply: reply, execution_parameters={"decode": False}
        )


class RedisServer:
    """One ``redis-server`` process. ``start()``/``stop()`` may be called again (a restart).

    With ``data_dir`` the server persists (append-only file, fsync always) there, so a
    restart keeps the streams; without it nothing is saved.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        tls: ServerTLS | None = None,
        unix_socket: Path | None = None,
        extra: Sequence[str] = (),
    ) -> None:
        self.port = port if port is not None else free_port()
        self.data_dir = data_dir
        self.tls = tls  # with it, TLS only on self.port (--port 0: no plain TCP at all)
        self.unix_socket = unix_socket
        self.extra = list(extra)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _listen(self) -> list[str]:
        tls = self.tls
        if tls is None:
            listen = ["--port", str(self.port)]
        else:
            listen = ["--port", "0", "--tls-port", str(self.port)]
            listen += ["--tls-cert-file", str(tls.cert_file), "--tls-key-file", str(tls.key_file)]
            listen += ["--tls-ca-cert-file", str(tls.ca_file)]
            listen += ["--tls-auth-clients", "yes" if tls.auth_clients else "no"]
        if self.unix_socket is not None:
            listen += ["--unixsocket", str(self.unix_socket), "--unixsocketperm", "700"]
        return listen

    def _ready(self) -> bool:
        if self.tls is None:
            return ping(self.port)
        # With --tls-auth-clients yes the handshake needs a client certificate: the server is
        # ready once it accepts TCP connections (Redis listens only when it is ready).
        if self.tls.auth_clients:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                return False
        return ping(self.port, context=self.tls.client_context())

    def start(self, timeout: float = 10.0) -> None:
        binary = require("redis-server")  # skips or fails the test when it is missing
        command = [binary, *self._listen(), "--bind", "127.0.0.1", "--save", "", *self.extra]
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
        while not self._ready():
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


def hub_maker(server: RedisServer) -> Callable[..., Broadcaster]:
    """What a Redis suite's ``make_hub`` fixture returns: hubs on *server* under a prefix of
    one test's own (tests share the server, never a stream)."""
    from trio_sse import Broadcaster
    from trio_sse.backends import RedisBackend

    prefix = f"test-{uuid.uuid4().hex[:8]}:"

    def make(**options: Any) -> Broadcaster:
        return Broadcaster(RedisBackend(server.url, prefix=prefix), **options)

    return make
