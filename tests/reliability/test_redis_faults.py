"""Redis restarted under a live broadcast: no event that Redis acknowledged is lost.

Two hubs share one persistent Redis (append-only file, ``fsync`` always): one publishes an event
every few milliseconds, the other serves subscribers of two kinds:

* **live** subscribers keep one subscription for the whole test: when Redis goes away the hub's
  reader retries, and once Redis is back it reads on from the last position it delivered;
* **resuming** subscribers act like ``EventSource`` clients whose connection dropped: at each
  outage they leave, try to subscribe again with their last id (``RedisConnectionError`` while
  Redis is down: they wait and retry), and resume from that id once it is back.

Redis is stopped twice, once with SIGTERM and once with SIGKILL, and restarted from its data
directory. The publisher gets ``RedisConnectionError`` while Redis is down (and retries with the
next event). In the end every subscriber has every acknowledged id (``publish`` returned it),
in order, without duplicates; events that Redis stored without the publisher hearing back
(the reply was lost with the connection) may be delivered too, in order like the others.
"""

from __future__ import annotations

import collections
import functools
import os
import signal
import time
import uuid
from pathlib import Path

import anyio
import anyio.abc
import anyio.to_thread
import pytest

from trio_sse import Broadcaster
from trio_sse.backends import RedisBackend, RedisConnectionError, RedisReplyError

from ..redis_server import RedisServer
from ._support import report, until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PUBLISH_EVERY = 0.005
RUNNING = 0.6  # seconds of publishing between faults
DOWN = 0.5  # seconds Redis stays down
LIVE = 2
RESUMING = 2


def stream_position(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


class Subscriber:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ids: list[str] = []
        self.payloads: list[str] = []
        self.resumes = 0
        self.failed_attempts = 0
        self.loading_replies = 0


def is_loading(error: RedisReplyError) -> bool:
    """Redis answers ``-LOADING`` while it reads its data back after a restart."""
    return str(error).startswith("LOADING")


def has_all(subscriber: Subscriber, wanted: set[str]) -> bool:
    return wanted <= set(subscriber.ids)


async def live(hub: Broadcaster, topic: str, subscriber: Subscriber, ready: anyio.Event) -> None:
    async with hub.subscribe(topic, max_buffer_size=100_000) as events:
        ready.set()
        async for event in events:
            assert event.id is not None
            subscriber.ids.append(event.id)
            subscriber.payloads.append(event.data or "")


async def resuming(
    hub: Broadcaster,
    topic: str,
    subscriber: Subscriber,
    ready: anyio.Event,
    outages: list[anyio.Event],
) -> None:
    last: str | None = None
    outage = 0
    while True:
        try:
            async with hub.subscribe(topic, last_event_id=last, max_buffer_size=100_000) as events:
                ready.set()
                if last is not None:
                    subscriber.resumes += 1
                with anyio.CancelScope() as scope:

                    async def leave_at_outage(number: int) -> None:
                        await outages[number].wait()
                        scope.cancel()  # the "connection" drops with Redis

                    async with anyio.create_task_group() as group:
                        if outage < len(outages):
                            group.start_soon(leave_at_outage, outage)
                        async for event in events:
                            if event.event == "reset":
                                raise AssertionError(f"{subscriber.name} could not resume: {event}")
                            assert event.id is not None
                            subscriber.ids.append(event.id)
                            subscriber.payloads.append(event.data or "")
                            last = event.id
                outage += 1
        except RedisConnectionError:
            subscriber.failed_attempts += 1
            await anyio.sleep(0.05)
        except RedisReplyError as exc:
            if not is_loading(exc):
                raise
            subscriber.loading_replies += 1  # see test_loading_is_a_connection_error
            await anyio.sleep(0.05)


@pytest.mark.service("redis-server")
async def test_no_acknowledged_event_is_lost_when_redis_restarts(
    anyio_backend: str, tmp_path: Path
) -> None:
    redis = RedisServer(data_dir=tmp_path)
    await anyio.to_thread.run_sync(redis.start)
    prefix = f"faults-{uuid.uuid4().hex[:8]}:"
    topic = "live"
    acknowledged: list[str] = []
    attempts = 0
    refused = 0
    loading = 0
    outages = [anyio.Event(), anyio.Event()]
    downtime: list[float] = []

    def backend() -> RedisBackend:
        return RedisBackend(redis.url, prefix=prefix, connect_timeout=1, command_timeout=2)

    async def publisher(stop: anyio.Event, stopped: anyio.Event) -> None:
        nonlocal attempts, refused, loading
        while not stop.is_set():
            attempts += 1
            try:
                acknowledged.append(await publisher_hub.publish(topic, f"event {attempts}"))
            except RedisConnectionError:
                refused += 1
            except RedisReplyError as exc:
                if not is_loading(exc):
                    raise
                loading += 1  # see test_loading_is_a_connection_error
            await anyio.sleep(PUBLISH_EVERY)
        stopped.set()

    async def restart(kill: bool) -> None:
        process = redis.process
        assert process is not None
        if kill:
            # SIGKILL: no shutdown at all; only what was fsync'ed survives (all acknowledged).
            os.kill(process.pid, signal.SIGKILL)
            await anyio.to_thread.run_sync(process.wait)
            redis.process = None
        else:
            await anyio.to_thread.run_sync(redis.stop)
        went_down = time.monotonic()
        await anyio.sleep(DOWN)
        await anyio.to_thread.run_sync(redis.start)
        downtime.append(time.monotonic() - went_down)

    subscribers = [Subscriber(f"live-{n}") for n in range(LIVE)]
    subscribers += [Subscriber(f"resuming-{n}") for n in range(RESUMING)]
    try:
        with anyio.fail_after(60):
            async with (
                Broadcaster(backend(), history=100_000) as publisher_hub,
                Broadcaster(backend(), history=100_000) as subscriber_hub,
                anyio.create_task_group() as group,
            ):
                for subscriber in subscribers:
                    ready = anyio.Event()
                    if subscriber.name.startswith("live"):
                        group.start_soon(live, subscriber_hub, topic, subscriber, ready)
                    else:
                        group.start_soon(
                            resuming, subscriber_hub, topic, subscriber, ready, outages
                        )
                    await ready.wait()
                stop, stopped = anyio.Event(), anyio.Event()
                group.start_soon(publisher, stop, stopped)
                for number, kill in enumerate((False, True)):
                    await anyio.sleep(RUNNING)
                    outages[number].set()
                    await restart(kill)
                await anyio.sleep(RUNNING)
                stop.set()
                # A publish in flight when told to stop is acknowledged after this: wait for it,
                # else its id is wanted below without having been waited for.
                await stopped.wait()
                caught_up_from = time.monotonic()
                wanted = set(acknowledged)
                for subscriber in subscribers:
                    await until(functools.partial(has_all, subscriber, wanted))
                caught_up = time.monotonic() - caught_up_from
                group.cancel_scope.cancel()
    finally:
        await anyio.to_thread.run_sync(redis.stop)

    figures = {
        "backend": anyio_backend,
        "publish_attempts": attempts,
        "acknowledged": len(acknowledged),
        "refused_with_RedisConnectionError": refused,
        "refused_with_LOADING_reply": loading + sum(s.loading_replies for s in subscribers),
        "redis_downtime_seconds": [round(value, 2) for value in downtime],
        "seconds_to_catch_up_after_last_publish": round(caught_up, 2),
        "resumes": {s.name: s.resumes for s in subscribers if s.name.startswith("resuming")},
        "failed_resume_attempts": sum(s.failed_attempts for s in subscribers),
        "stored_but_unacknowledged": max(len(s.ids) for s in subscribers) - len(acknowledged),
        "duplicate_payloads": max(
            sum(count - 1 for count in collections.Counter(s.payloads).values())
            for s in subscribers
        ),
    }
    report(f"redis-faults-{anyio_backend}", figures)
    assert refused > 0, "Redis was never seen down: the test did not test anything"
    assert all(s.resumes >= 2 for s in subscribers if s.name.startswith("resuming")), figures
    for subscriber in subscribers:
        ids = subscriber.ids
        assert len(ids) == len(set(ids)), f"{subscriber.name}: duplicates"
        assert ids == sorted(ids, key=stream_position), f"{subscriber.name}: out of order"
        missing = [event_id for event_id in acknowledged if event_id not in set(ids)]
        assert not missing, f"{subscriber.name} lost {len(missing)} acknowledged events"
        # Acknowledged ids arrive in the order they were acknowledged.
        position = {event_id: index for index, event_id in enumerate(ids)}
        assert [position[event_id] for event_id in acknowledged] == sorted(
            position[event_id] for event_id in acknowledged
        )


HELLO_REPLY = (
    b"%7\r\n+server\r\n+redis\r\n+version\r\n+7.0.0\r\n+proto\r\n:3\r\n+id\r\n:1\r\n"
    b"+mode\r\n+standalone\r\n+role\r\n+master\r\n+modules\r\n*0\r\n"
)


def commands_in(buffer: bytearray) -> list[list[bytes]]:
    """Take the complete RESP commands (arrays of bulk strings) off the front of *buffer*."""
    found: list[list[bytes]] = []
    while True:
        position, parts = 0, []
        end = buffer.find(b"\r\n", position)
        if end < 0:
            return found
        count = int(buffer[1:end])
        position = end + 2
        for _ in range(count):
            end = buffer.find(b"\r\n", position)
            if end < 0:
                return found
            size = int(buffer[position + 1 : end])
            if len(buffer) < end + 2 + size + 2:
                return found
            parts.append(bytes(buffer[end + 2 : end + 2 + size]))
            position = end + 2 + size + 2
        del buffer[:position]
        found.append(parts)


def loading_reply(command: list[bytes]) -> bytes:
    """A restarted Redis, still loading: it greets, and refuses the data commands."""
    name = command[0].upper()
    if name == b"HELLO":
        return HELLO_REPLY
    if name == b"XADD" and command[2:3] == [b"0-0"]:  # the backend's access check at start
        return b"-ERR The ID specified in XADD must be greater than 0-0\r\n"
    if name in (b"XRANGE", b"XREVRANGE"):
        return b"*0\r\n"
    if name in (b"XREAD",):
        return b"_\r\n"
    if name == b"CLIENT":
        return b":0\r\n"
    return b"-LOADING Redis is loading the dataset in memory\r\n"


async def test_loading_is_a_connection_error() -> None:
    """A stand-in Redis that greets, then answers ``-LOADING`` as a restarted Redis does."""

    async def fake_redis(client: anyio.abc.SocketStream) -> None:
        buffer = bytearray()
        async with client:
            while True:
                try:
                    buffer += await client.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    return
                for command in commands_in(buffer):
                    await client.send(loading_reply(command))

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    with anyio.fail_after(10):
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, fake_redis)
            try:
                async with Broadcaster(RedisBackend(f"redis://127.0.0.1:{port}/0")) as hub:
                    with pytest.raises(RedisConnectionError, match="unavailable: LOADING"):
                        await hub.publish("t", "while Redis loads")
            finally:
                group.cancel_scope.cancel()
