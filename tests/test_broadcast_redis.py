"""Broadcaster on Redis Streams, against a real ``redis-server``.

The shared behavioural suite runs on Redis; then what only Redis can show: hubs in one
process and in two server processes sharing a topic and its history, history surviving a
restart of the app and of Redis, few connections for many subscribers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import httpx
import pytest

import trio_sse
from trio_sse import EventDecoder, ServerSentEvent
from trio_sse._broadcast import Broadcaster
from trio_sse.backends import RedisBackend, RedisConnectionError, RedisReplyError
from trio_sse.backends.redis import parse_stream_id

from ._backends import requires_trio
from .broadcast_suite import BroadcastSuite, MakeHub, ids_of, take, topic_name
from .redis_server import RedisServer, command, free_port, hub_maker

pytestmark = pytest.mark.anyio
# The tests that talk to a real Redis; the unreachable one does not.
needs_redis = pytest.mark.service("redis-server")

REPO = Path(__file__).resolve().parent.parent
SOURCE = Path(trio_sse.__file__).resolve().parent.parent  # src/, or site-packages


@pytest.fixture
def make_hub(redis_server: RedisServer) -> MakeHub:
    return hub_maker(redis_server)


@needs_redis
class TestRedisBroadcast(BroadcastSuite):
    FOREIGN_ID = "99999999999999-0"  # a stream id far beyond anything published

    def expected_retained(self, ids: list[str], history: int) -> list[str]:
        # MAXLEN ~ trims whole stream nodes (100 entries): short streams are not trimmed.
        return ids


async def redis_command(server: RedisServer, *args: str | bytes | int) -> Any:
    return await command(server.url, *args)


# -- Redis-only behaviour ----------------------------------------------------------------------


@needs_redis
async def test_hubs_share_topics_and_history_survives_a_hub_restart(make_hub: MakeHub) -> None:
    topic = topic_name()
    async with make_hub() as first, make_hub() as second, second.subscribe(topic) as events:
        ids = [await first.publish(topic, number) for number in range(3)]
        assert ids_of(await take(events, 3)) == ids
    # Both hubs are gone ("the processes restarted"): the history is still in Redis.
    async with make_hub() as third, third.subscribe(topic, last_event_id=ids[0]) as events:
        live = await third.publish(topic, "live")
        assert ids_of(await take(events, 3)) == [*ids[1:], live]


@needs_redis
async def test_ids_are_stream_ids_and_entries_hold_the_fields(
    redis_server: RedisServer, make_hub: MakeHub
) -> None:
    topic = topic_name()
    async with make_hub() as hub:
        event_id = await hub.publish(topic, ServerSentEvent("d", event="e", retry=5, comment="c"))
        key = hub.backend.prefix + topic  # type: ignore[attr-defined]
    assert parse_stream_id(event_id) is not None
    entries = await redis_command(redis_server, "XRANGE", key, "-", "+")
    assert len(entries) == 1
    stored_id, fields = entries[0]
    assert stored_id == event_id.encode()
    # The event's fields, then the publish's nonce (what makes a retried XADD idempotent).
    assert fields[:8] == [b"data", b"d", b"event", b"e", b"retry", b"5", b"comment", b"c"]
    assert fields[8] == b"_p" and len(fields[9]) == 16 and len(fields) == 10


@needs_redis
async def test_own_ids_must_be_new_stream_ids(make_hub: MakeHub) -> None:
    topic = topic_name()
    async with make_hub() as hub:
        assert await hub.publish(topic, ServerSentEvent("a", id="99999999999990-5")) == (
            "99999999999990-5"
        )
        for bad in ("5", "007-1", "1-0", "a-b", "99999999999990-5"):
            with pytest.raises(ValueError, match="id"):
                await hub.publish(topic, ServerSentEvent("b", id=bad))
        assert await hub.publish(topic, "auto") == "99999999999990-6"


@needs_redis
@pytest.mark.parametrize(
    "last_event_id",
    [
        "18446744073709551615-18446744073709551615",
        "18446744073709551616-0",
        "-1-0",
        "1-",
        "01-0",
        "1-0-0",
        "١-٠",  # Arabic-Indic digits: str.isdigit() but not an id
    ],
)
async def test_odd_stream_ids_are_unknown(make_hub: MakeHub, last_event_id: str) -> None:
    topic = topic_name()
    async with make_hub() as hub:
        event_id = await hub.publish(topic, "x")
        async with hub.subscribe(topic, last_event_id=last_event_id) as events:
            reset, event = await take(events, 2)
    assert reset.event == "reset"
    assert event.id == event_id


@needs_redis
async def test_error_replies_raise_redis_reply_error(
    redis_server: RedisServer, make_hub: MakeHub
) -> None:
    topic = topic_name()
    async with make_hub() as hub:
        key = hub.backend.prefix + topic  # type: ignore[attr-defined]
        await redis_command(redis_server, "SET", key, "not a stream")
        with pytest.raises(RedisReplyError, match="WRONGTYPE"):
            await hub.publish(topic, "x")
        assert await hub.publish(topic_name(), "the pool still works")


@needs_redis
async def test_many_subscribers_few_connections(
    redis_server: RedisServer, make_hub: MakeHub
) -> None:
    topics = [topic_name() for _ in range(20)]
    async with make_hub() as hub, AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(hub.subscribe(topics[number % 20]))
            for number in range(200)
        ]
        ids = [await hub.publish(topic, topic) for topic in topics]
        for number, channel in enumerate(channels):
            assert ids_of(await take(channel, 1)) == [ids[number % 20]]
        clients = await redis_command(redis_server, "CLIENT LIST")
        # One reader and at most max_connections (4) pooled ones, plus the connection asking.
        assert clients.count(b"\n") <= 1 + 4 + 1


async def test_unreachable_redis_is_a_clear_error() -> None:
    port = free_port()  # nothing listens there
    with anyio.fail_after(10):
        with pytest.raises(RedisConnectionError, match=f"127.0.0.1:{port}") as info:
            async with Broadcaster(RedisBackend(f"redis://127.0.0.1:{port}/0")):
                pass
    assert isinstance(info.value, ConnectionError)
    assert "cannot connect to Redis" in str(info.value)


@needs_redis
async def test_hub_survives_a_redis_restart(tmp_path: Path) -> None:
    server = RedisServer(data_dir=tmp_path)
    await anyio.to_thread.run_sync(server.start)
    try:
        backend = RedisBackend(server.url, prefix="restart:", connect_timeout=2)
        async with Broadcaster(backend) as hub, hub.subscribe("t") as events:
            before = await hub.publish("t", "before")
            assert ids_of(await take(events, 1)) == [before]
            await anyio.to_thread.run_sync(server.stop)
            with pytest.raises(RedisConnectionError):
                await hub.publish("t", "while Redis is down")
            with pytest.raises(RedisConnectionError):
                async with hub.subscribe("t", last_event_id=before):
                    pass
            await anyio.to_thread.run_sync(server.start)
            # The pool replaces its dead connections; the reader reconnects and goes on from
            # the last event it delivered; the history was persisted by Redis.
            after = await hub.publish("t", "after")
            assert ids_of(await take(events, 1, within=15)) == [after]
            # Restarted while the pool's connection sat idle: the next command notices the
            # dead connection and is sent again on a new one, transparently.
            await anyio.to_thread.run_sync(server.stop)
            await anyio.to_thread.run_sync(server.start)
            again = await hub.publish("t", "after a second restart")
            assert ids_of(await take(events, 1, within=15)) == [again]
            async with hub.subscribe("t", last_event_id=before) as resumed:
                assert ids_of(await take(resumed, 2)) == [after, again]
    finally:
        await anyio.to_thread.run_sync(server.stop)


# -- two server processes ----------------------------------------------------------------------


class Server:
    """``python -m trio_sse serve tests.servers.broadcast_app:app`` in its own process group."""

    def __init__(self, port: int, backend: str, env: dict[str, str], log: Path) -> None:
        self.port = port
        self.backend = backend
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "trio_sse",
            "serve",
            "tests.servers.broadcast_app:app",
            "--port",
            str(self.port),
            "--backend",
            self.backend,
            "--grace",
            "1",
            "--log-level",
            "warning",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=REPO,
                env=self.env,
                start_new_session=True,
            )

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        with anyio.fail_after(20):
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"server exited:\n{self.log.read_text()}")
                try:
                    if (await client.get(f"{self.url}/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.05)

    async def stop(self) -> None:
        process = self.process
        self.process = None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            await anyio.to_thread.run_sync(process.wait, 10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            await anyio.to_thread.run_sync(process.wait)


class EventReader:
    """A minimal HTTP/1.1 event-stream client on a raw socket (chunked body, then the decoder).

    httpx's streaming iterators are nested async generators that a test cannot close
    cleanly under trio when it stops reading an endless body; a socket can just be closed.
    """

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        self._buffer = b""
        self._decoder = EventDecoder()
        self._pending: list[ServerSentEvent] = []
        self.headers: dict[str, str] = {}
        self.status = 0

    async def _more(self) -> None:
        self._buffer += await self._stream.receive()

    async def _until(self, marker: bytes) -> bytes:
        while marker not in self._buffer:
            await self._more()
        head, _, self._buffer = self._buffer.partition(marker)
        return head

    async def read_head(self) -> None:
        status_line, *lines = (await self._until(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        for line in lines:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        assert self.headers.get("transfer-encoding") == "chunked", self.headers

    async def _chunk(self) -> bytes:
        size = int((await self._until(b"\r\n")).split(b";")[0], 16)
        while len(self._buffer) < size + 2:
            await self._more()
        data, self._buffer = self._buffer[:size], self._buffer[size + 2 :]
        return data

    async def read(self, count: int, within: float = 10) -> list[ServerSentEvent]:
        with anyio.fail_after(within):
            while len(self._pending) < count:
                self._pending += self._decoder.feed(await self._chunk())
        events, self._pending = self._pending[:count], self._pending[count:]
        return events


@asynccontextmanager
async def connect(server: Server, topic: str, last_event_id: str) -> AsyncIterator[EventReader]:
    with anyio.fail_after(10):
        stream = await anyio.connect_tcp("127.0.0.1", server.port)
    async with stream:
        request = (
            f"GET /events/{topic} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Accept: text/event-stream\r\nLast-Event-ID: {last_event_id}\r\n\r\n"
        )
        await stream.send(request.encode("latin-1"))
        reader = EventReader(stream)
        with anyio.fail_after(10):
            await reader.read_head()
        assert reader.status == 200
        assert reader.headers["content-type"].startswith("text/event-stream")
        yield reader


async def post(client: httpx.AsyncClient, server: Server, topic: str, text: str) -> str:
    response = await client.post(f"{server.url}/publish/{topic}", content=text.encode())
    assert response.status_code == 200, response.text
    return response.text


@needs_redis
@requires_trio  # one of the two servers runs hypercorn's trio worker
async def test_two_server_processes_share_a_topic_and_its_history(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SOURCE), str(REPO), env.get("PYTHONPATH", "")])
    env["TRIO_SSE_REDIS_URL"] = redis_server.url
    env["TRIO_SSE_REDIS_PREFIX"] = f"procs-{uuid.uuid4().hex[:8]}:"
    # One process on hypercorn's trio worker, the other on asyncio.
    a = Server(free_port(), "trio", env, tmp_path / "a.log")
    b = Server(free_port(), "asyncio", env, tmp_path / "b.log")
    topic = "room"
    try:
        a.start()
        b.start()
        async with httpx.AsyncClient(timeout=10) as client:
            await a.wait_ready(client)
            await b.wait_ready(client)
            seed = await post(client, a, topic, "seed")
            published: list[str] = []
            async with connect(a, topic, seed) as events:
                for number in range(5):  # through both processes
                    published.append(await post(client, (a, b)[number % 2], topic, f"m{number}"))
                got = await events.read(3)
            assert ids_of(got) == published[:3]
            # Disconnected from A; more is published (through B) in the meantime.
            for number in range(5, 8):
                published.append(await post(client, b, topic, f"m{number}"))
            async with connect(b, topic, got[-1].id or "") as events:
                missed = await events.read(len(published) - 3)
                assert ids_of(missed) == published[3:]
                assert [event.data for event in missed] == [f"m{n}" for n in range(3, 8)]
                # ...and then live, across processes: nothing else came in between.
                sentinel = await post(client, a, topic, "sentinel")
                assert ids_of(await events.read(1)) == [sentinel]
            # Restart A: the history is in Redis, not in the process.
            await a.stop()
            a.start()
            await a.wait_ready(client)
            async with connect(a, topic, published[4]) as events:
                assert ids_of(await events.read(4)) == [*published[5:], sentinel]
    finally:
        await a.stop()
        await b.stop()
