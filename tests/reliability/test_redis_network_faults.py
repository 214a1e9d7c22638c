"""The network to Redis fails under a publish: nothing acknowledged is lost, nothing doubled.

Issue 15 item 5, the faults that need a hand on the wire (``tests/redis_proxy.py`` stands
between the backend and a real ``redis-server``) or a slow Redis (``DEBUG SLEEP``):

* **a reply lost after Redis executed the** ``XADD``: the proxy resets the connection instead
  of passing the reply on, and the client's retry sends the ``XADD`` again. A publish either
  returns, and the event is stored once, or raises a trio_sse ``RedisError``, and it is stored
  at most once; a subscriber gets every stored event once. (With ``XADD *`` it was stored
  and delivered twice, 10 times out of 10.) The same for the reader's ``XREAD`` replies;
* **the network cut while a publish is in flight**, before or after the request reached Redis:
  the publish raises (it cannot be confirmed) within the timeouts, never reports success;
* **a slow Redis**: while Redis sleeps, the publisher waits for it, and a subscriber's stream
  keeps its pings.

Redis itself restarting under load is ``test_redis_faults.py``; streams that cannot start while
Redis is down are ``tests/test_redis_down.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import anyio
import anyio.abc
import anyio.to_thread
import pytest
from starlette.applications import Starlette

from trio_sse import Broadcaster, EventSourceResponse, ServerSentEvent
from trio_sse.backends import RedisBackend, RedisConnectionError, RedisError
from trio_sse.testing import EventStream, open_event_stream

from ..broadcast_suite import take
from ..helpers import app_for
from ..redis_proxy import RedisProxy, open_redis_proxy
from ..redis_server import RedisServer, command

pytestmark = [pytest.mark.anyio, pytest.mark.service("redis-server")]

PUBLISHES = 10
# Replies lost per publish: the client's retry policy tries 3 times (retries=2), so a publish
# whose 3 replies are all lost cannot be confirmed and raises.
LOST = (1, 2, 3, 1, 2, 3, 1, 2, 3, 1)
SLEEP = 1.5  # seconds of DEBUG SLEEP
TOO_SLOW = 2.0  # seconds of DEBUG SLEEP: more than the retries' command timeouts (3 x 0.5 s)
PING = 0.2


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer(extra=["--enable-debug-command", "local"])
    server.start()
    try:
        yield server
    finally:
        server.stop()


def backend_for(url: str) -> RedisBackend:
    prefix = f"net-{uuid.uuid4().hex[:8]}:"
    return RedisBackend(url, prefix=prefix, connect_timeout=0.5, command_timeout=0.5)


async def stored(server: RedisServer, hub: Broadcaster, topic: str) -> list[tuple[str, str]]:
    """The topic's entries in Redis, as (id, data), read past the proxy."""
    key = hub.backend.prefix + topic  # type: ignore[attr-defined]
    found = []
    for raw_id, fields in await command(server.url, "XRANGE", key, "-", "+"):
        values = dict(zip(fields[::2], fields[1::2], strict=True))
        found.append((raw_id.decode(), values[b"data"].decode()))
    return found


async def test_a_lost_xadd_reply_is_never_stored_twice(redis_server: RedisServer) -> None:
    topic = "lost"
    outcomes: list[str | RedisError] = []
    with anyio.fail_after(30):
        async with (
            open_redis_proxy(redis_server.port) as proxy,
            Broadcaster(backend_for(proxy.url)) as hub,
            hub.subscribe(topic) as events,
        ):
            for number, lost in enumerate(LOST):
                proxy.lose_replies(b"XADD", times=lost)
                try:
                    outcomes.append(await hub.publish(topic, f"event {number}"))
                except RedisError as exc:
                    outcomes.append(exc)
            assert proxy.resets == sum(LOST)  # every fault happened
            tail = await hub.publish(topic, "tail")
            entries = await stored(redis_server, hub, topic)
            received = await take(events, len(entries))  # the tail last: nothing after it
    # Redis executed every first XADD: each event is stored exactly once, in order.
    assert [data for _, data in entries] == [*(f"event {n}" for n in range(PUBLISHES)), "tail"]
    assert entries.pop() == (tail, "tail")
    assert [(event.id, event.data) for event in received] == [*entries, (tail, "tail")]
    for (entry_id, _), outcome in zip(entries, outcomes, strict=True):
        if not isinstance(outcome, RedisError):
            assert outcome == entry_id  # confirmed: its id is the one stored
        else:
            assert isinstance(outcome, RedisConnectionError), outcome
    confirmed = [outcome for outcome in outcomes if isinstance(outcome, str)]
    # A reply lost once or twice is recovered by the retry and recognised by its nonce.
    assert len(confirmed) == sum(1 for lost in LOST if lost < 3)


async def test_a_lost_reply_to_an_event_with_its_own_id(redis_server: RedisServer) -> None:
    own = ServerSentEvent("mine", id="99999999999990-7")
    with anyio.fail_after(20):
        async with (
            open_redis_proxy(redis_server.port) as proxy,
            Broadcaster(backend_for(proxy.url)) as hub,
        ):
            proxy.lose_replies(b"XADD")
            assert await hub.publish("own", own) == own.id
            assert proxy.resets == 1
            assert await stored(redis_server, hub, "own") == [(own.id, "mine")]


async def test_a_lost_reply_after_another_publisher_took_the_id(
    redis_server: RedisServer,
) -> None:
    """The publish's first id is taken (by a hub whose events carry ids far ahead), so it
    asks Redis for the top and takes the next id: that ``XADD``'s reply is lost, and the
    retry recognises its own entry there, not the other publisher's."""
    topic = "taken"
    with anyio.fail_after(20):
        async with (
            open_redis_proxy(redis_server.port) as proxy,
            Broadcaster(backend_for(proxy.url)) as hub,
            Broadcaster(RedisBackend(redis_server.url, prefix=hub.backend.prefix)) as other,  # type: ignore[attr-defined]
            hub.subscribe(topic) as events,
        ):
            ahead = await other.publish(topic, ServerSentEvent("other", id="99999999999990-0"))
            proxy.lose_replies(b"XADD", argument=b"99999999999990-1")
            mine = await hub.publish(topic, "mine")
            assert (mine, proxy.resets) == ("99999999999990-1", 1)
            # The other hub's next id is taken in turn: it goes past it, too.
            last = await other.publish(topic, "other again")
            assert last == "99999999999990-2"
            entries = await stored(redis_server, hub, topic)
            received = await take(events, 3)
    assert entries == [(ahead, "other"), (mine, "mine"), (last, "other again")]
    assert [(event.id, event.data) for event in received] == entries


def filler_requests(key: str, count: int) -> bytes:
    """*count* pipelined ``XADD <key> MAXLEN ~ 1 * data filler``: another busy publisher."""
    arguments = [b"XADD", key.encode(), b"MAXLEN", b"~", b"1", b"*", b"data", b"filler"]
    request = b"*%d\r\n" % len(arguments)
    request += b"".join(b"$%d\r\n%s\r\n" % (len(argument), argument) for argument in arguments)
    return request * count


async def add_fillers(server: RedisServer, key: str, count: int) -> None:
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        await stream.send(filler_requests(key, count))
        replies = b""
        while replies.count(b"\r\n") < count:
            replies += await stream.receive()


async def test_a_lost_reply_whose_entry_was_trimmed_before_the_retry(
    redis_server: RedisServer,
) -> None:
    """The entry is stored, delivered, then trimmed away (a short history, a busy topic)
    before the resent ``XADD`` looks for it: the publish cannot be confirmed, and must not
    store the event again under a new id (delivered twice)."""
    topic = "trimmed"
    received: list[ServerSentEvent] = []
    with anyio.fail_after(20):
        async with (
            open_redis_proxy(redis_server.port) as proxy,
            Broadcaster(backend_for(proxy.url), history=1) as hub,
            hub.subscribe(topic, max_buffer_size=1000) as events,
        ):
            key = hub.backend.prefix + topic  # type: ignore[attr-defined]

            async def deliver_then_trim() -> None:
                received.append(await events.receive())  # the entry was delivered live
                await add_fillers(redis_server, key, 300)  # MAXLEN ~ 1 drops its node
                assert await command(redis_server.url, "XLEN", key) < 300

            proxy.lose_replies(b"XADD", before_reset=deliver_then_trim)
            try:
                outcome: str | RedisError = await hub.publish(topic, "mine")
            except RedisError as exc:
                outcome = exc
            assert proxy.resets == 1
            tail = await hub.publish(topic, "tail")
            while not received or received[-1].id != tail:
                received.append(await events.receive())
    assert [event.data for event in received].count("mine") == 1
    assert isinstance(outcome, RedisConnectionError), outcome
    assert "may have been trimmed" in str(outcome)


async def test_lost_xread_replies_deliver_each_event_once(redis_server: RedisServer) -> None:
    topic = "reader"
    with anyio.fail_after(30):
        async with (
            open_redis_proxy(redis_server.port) as proxy,
            Broadcaster(backend_for(proxy.url)) as hub,
            hub.subscribe(topic) as events,
        ):
            ids = []
            for number in range(5):
                proxy.lose_replies(b"XREAD")  # the reader's blocked read, answered by this event
                ids.append(await hub.publish(topic, f"event {number}"))
                assert [event.id for event in await take(events, 1)] == ids[-1:]
            tail = await hub.publish(topic, "tail")
            assert [event.id for event in await take(events, 1)] == [tail]
            assert proxy.resets >= 4, proxy.resets


async def cut_publish(proxy: RedisProxy, hub: Broadcaster, topic: str) -> RedisError:
    """Publish across a network cut; the error it raised (it must raise)."""
    try:
        event_id = await hub.publish(topic, "cut")
    except RedisError as exc:
        return exc
    raise AssertionError(f"a publish that Redis could not confirm returned {event_id!r}")


@pytest.mark.parametrize("reached_redis", [True, False], ids=["after-request", "before-request"])
async def test_a_publish_across_a_network_cut_raises(
    redis_server: RedisServer, reached_redis: bool
) -> None:
    topic = "cut"
    with anyio.fail_after(30):
        async with (
            open_redis_proxy(redis_server.port) as proxy,
            Broadcaster(backend_for(proxy.url)) as hub,
            hub.subscribe(topic) as events,
        ):
            proxy.cut_at(b"XADD", forward=reached_redis)
            with anyio.fail_after(10):  # connect and command timeouts, a few retries
                error = await cut_publish(proxy, hub, topic)
            assert proxy.is_cut
            assert isinstance(error, RedisConnectionError), error
            assert "127.0.0.1" in str(error)
            proxy.restore()
            after = await hub.publish(topic, "after")
            entries = await stored(redis_server, hub, topic)
            received = await take(events, len(entries))
    # Unconfirmed, the event is stored at most once (the held bytes may reach Redis when
    # the network comes back); a subscriber gets what is stored, once.
    assert [data for _, data in entries] in (["cut", "after"], ["after"])
    if reached_redis:
        assert [data for _, data in entries] == ["cut", "after"]
    assert entries[-1][0] == after
    assert [(event.id, event.data) for event in received] == entries


async def debug_sleep(server: RedisServer, seconds: float, done: anyio.Event) -> None:
    """``DEBUG SLEEP`` on a connection of its own; sets *done* once Redis answers."""
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        await stream.send(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$3\r\n%.1f\r\n" % seconds)
        assert (await stream.receive()).startswith(b"+OK")
    done.set()


async def until_asleep(server: RedisServer) -> None:
    """Return once Redis is busy: a ``PING`` on another connection gets no answer."""
    async with await anyio.connect_tcp("127.0.0.1", server.port) as stream:
        while True:
            await stream.send(b"*1\r\n$4\r\nPING\r\n")
            with anyio.move_on_after(0.1):
                assert (await stream.receive()).startswith(b"+PONG")
                continue
            return


async def read_into(
    stream: EventStream, seen: list[tuple[float, ServerSentEvent]], got_data: anyio.Event
) -> None:
    """Note each event with the time it came; set *got_data* at the first one with data."""
    async for event in stream:
        seen.append((time.monotonic(), event))
        if event.data is not None:
            got_data.set()


async def test_a_slow_redis_slows_publishers_not_pings(redis_server: RedisServer) -> None:
    topic = "slow"
    seen: list[tuple[float, ServerSentEvent]] = []
    awake, got_data = anyio.Event(), anyio.Event()
    with anyio.fail_after(30):
        async with Broadcaster(backend_for(redis_server.url)) as hub:
            app = app_for(lambda: EventSourceResponse(hub.stream(topic), ping=PING))
            async with open_event_stream(app, comments=True) as stream:
                await until_subscribed(hub, topic, stream)
                async with anyio.create_task_group() as group:
                    group.start_soon(read_into, stream, seen, got_data)
                    asked = time.monotonic()
                    group.start_soon(debug_sleep, redis_server, SLEEP, awake)
                    await until_asleep(redis_server)
                    event_id = await hub.publish(topic, "during")
                    returned = time.monotonic()
                    await got_data.wait()
                    await awake.wait()
                    group.cancel_scope.cancel()
    # The publish waited for Redis: it returned after the sleep could have ended (a lower
    # bound, however loaded the machine).
    assert returned - asked >= SLEEP - 0.05
    pings = [at for at, event in seen if event.comment == "ping" and asked <= at <= returned]
    assert len(pings) >= 3, pings  # about SLEEP / PING of them
    assert [(event.id, event.data) for _, event in seen if event.data] == [(event_id, "during")]


async def until_subscribed(hub: Broadcaster, topic: str, stream: EventStream) -> None:
    """Publish a comment until the stream shows one: its subscription is live from then on."""
    while True:
        await hub.publish(topic, ServerSentEvent(comment="ready"))
        with anyio.move_on_after(0.5):
            async for event in stream:
                if event.comment == "ready":
                    return


async def test_a_redis_slower_than_the_command_timeout(redis_server: RedisServer) -> None:
    """The publish gives up in time (stored at most once); the replies that come late on the
    connections it gave up do not answer later commands."""
    topic = "too-slow"
    awake = anyio.Event()
    with anyio.fail_after(30):
        async with (
            Broadcaster(backend_for(redis_server.url)) as hub,
            hub.subscribe(topic) as events,
            anyio.create_task_group() as group,
        ):
            group.start_soon(debug_sleep, redis_server, TOO_SLOW, awake)
            await until_asleep(redis_server)
            with pytest.raises(RedisConnectionError, match="did not answer XADD in time"):
                await hub.publish(topic, "timed out")
            await awake.wait()
            after = [await hub.publish(topic, f"after {number}") for number in range(5)]
            entries = await stored(redis_server, hub, topic)
            received = await take(events, len(entries))
    assert [data for _, data in entries] in (
        [f"after {number}" for number in range(5)],
        ["timed out", *(f"after {number}" for number in range(5))],
    )
    assert [entry_id for entry_id, _ in entries[-5:]] == after
    assert [(event.id, event.data) for event in received] == entries


STREAMS = 10


async def open_and_drain(app: Starlette, ended: list[bool]) -> None:
    async with open_event_stream(app) as stream:
        assert [event async for event in stream] == []
    ended.append(stream.complete)


async def test_streams_starting_across_a_cut_share_one_failure(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streams of one topic that start while the network is cut wait for one lookup of the
    topic's end, and all fail with it (each one used to try again in turn, after the one
    before had timed out: the last of N waited N times the timeouts); one log line."""
    lookups: list[bytes] = []
    ended: list[bool] = []
    with anyio.fail_after(30):
        async with open_redis_proxy(redis_server.port) as proxy:
            backend = backend_for(proxy.url)
            top = backend._top

            async def counted_top(key: bytes) -> tuple[str, tuple[int, int]]:
                if key != backend._control_key:  # read once at start (revocations)
                    lookups.append(key)
                return await top(key)

            monkeypatch.setattr(backend, "_top", counted_top)
            async with Broadcaster(backend) as hub:
                app = app_for(lambda: EventSourceResponse(hub.stream("cut-streams")))
                proxy.cut()
                async with anyio.create_task_group() as group:
                    for _ in range(STREAMS):
                        group.start_soon(open_and_drain, app, ended)
    assert ended == [True] * STREAMS  # each body ended cleanly: EventSource reconnects
    assert len(lookups) == 1, lookups
    unopened = [r for r in caplog.records if "channel could not be opened" in r.getMessage()]
    assert len(unopened) == 1, [r.getMessage() for r in unopened]


async def test_concurrent_first_subscribers_share_one_lookup(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, when the lookup succeeds: one ``XREVRANGE``, every subscriber live."""
    backend = backend_for(redis_server.url)
    lookups: list[bytes] = []
    top = backend._top  # counted

    async def counted_top(key: bytes) -> tuple[str, tuple[int, int]]:
        if key != backend._control_key:  # read once at start (revocations)
            lookups.append(key)
        return await top(key)

    monkeypatch.setattr(backend, "_top", counted_top)
    got: list[str | None] = []

    async def subscriber(hub: Broadcaster, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        async with hub.subscribe("shared") as events:
            task_status.started()
            got.extend(event.data for event in await take(events, 1))

    with anyio.fail_after(20):
        async with Broadcaster(backend) as hub, anyio.create_task_group() as group:
            async with anyio.create_task_group() as starting:
                for _ in range(STREAMS):
                    starting.start_soon(group.start, subscriber, hub)
            await hub.publish("shared", "to all")
    assert got == ["to all"] * STREAMS
    assert len(lookups) == 1, lookups
