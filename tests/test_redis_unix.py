"""The Redis backend over a unix socket: ``unix:///path/to/redis.sock?db=n``.

A ``redis-server`` that listens on a unix socket only (``--port 0``): the hub publishes,
subscribes and replays through it, in the database the URL names; a socket that is not
there, or goes away, is a ``RedisConnectionError`` that names its path.
"""

from __future__ import annotations

import re
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from trio_sse import Broadcaster
from trio_sse.backends import RedisBackend, RedisConnectionError

from .broadcast_suite import ids_of, take
from .redis_server import RedisServer, command

pytestmark = pytest.mark.anyio


class UnixSocketRedis(RedisServer):
    """``redis-server --port 0 --unixsocket <path>``: no TCP at all."""

    def __init__(self, path: Path) -> None:
        super().__init__(unix_socket=path)
        self.path = path

    def url_for(self, db: int) -> str:
        return f"unix://{self.path}?db={db}"

    def _listen(self) -> list[str]:
        return ["--port", "0", "--unixsocket", str(self.path), "--unixsocketperm", "700"]

    def _ready(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(0.5)
                sock.connect(str(self.path))
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Not tmp_path: a unix socket's path must fit in about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="trio-sse-") as directory:
        yield Path(directory)


@pytest.mark.service("redis-server")
async def test_publish_and_subscribe_over_a_unix_socket(socket_dir: Path) -> None:
    server = UnixSocketRedis(socket_dir / "redis.sock")
    await anyio.to_thread.run_sync(server.start)
    prefix = f"unix-{uuid.uuid4().hex[:8]}:"
    try:
        with anyio.fail_after(20):
            backend = RedisBackend(server.url_for(3), prefix=prefix)
            assert backend.address == f"unix://{server.path}?db=3"
            async with Broadcaster(backend) as hub:
                async with hub.subscribe("t") as events:
                    first = await hub.publish("t", "one")
                    second = await hub.publish("t", "two")
                    assert ids_of(await take(events, 2)) == [first, second]
                async with hub.subscribe("t", last_event_id=first) as resumed:
                    assert [event.data for event in await take(resumed, 1)] == ["two"]
            # In the database the URL names, and only there.
            assert await command(server.url_for(3), "XLEN", prefix + "t") == 2
            assert await command(server.url_for(0), "XLEN", prefix + "t") == 0
            async with Broadcaster(RedisBackend(server.url_for(3), prefix=prefix)) as hub:
                await anyio.to_thread.run_sync(server.stop)
                with pytest.raises(RedisConnectionError, match=re.escape(str(server.path))):
                    await hub.publish("t", "Redis is gone")
    finally:
        await anyio.to_thread.run_sync(server.stop)


async def test_a_missing_unix_socket_is_named(socket_dir: Path) -> None:
    path = socket_dir / "nobody-listens.sock"
    with anyio.fail_after(10):
        with pytest.raises(RedisConnectionError) as info:
            async with Broadcaster(RedisBackend(f"unix://{path}")):
                pass
    assert str(info.value) == (
        f"cannot connect to Redis at unix://{path}?db=0: No such file or directory"
    )
