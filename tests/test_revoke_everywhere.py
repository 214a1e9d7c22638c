"""Revocation in every process (issue 16 item 1): ``await hub.revoke_everywhere(...)``.

Two hubs on two ``RedisBackend`` instances with the same prefix stand for two server
processes (a real two-process run is at the end); a real ``redis-server`` carries the control
stream between them. Every stream read here is bounded by ``fail_after`` (``take``/``drain``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from trio_sse import Access, Broadcaster, Forbidden, ServerSentEvent
from trio_sse.backends import MemoryBackend, RedisBackend, RedisReplyError
from trio_sse.backends.redis import parse_stream_id
from trio_sse.client import SSEStatusError, connect

from .broadcast_suite import drain, ids_of, take
from .live import free_port, kill_process_group, start_server_process
from .redis_server import RedisServer, command

pytestmark = pytest.mark.anyio

needs_redis = pytest.mark.service("redis-server")


def grant(*principals: Hashable) -> Any:
    async def authorize(topic: str) -> Access | None:
        return Access(*principals)

    return authorize


APP = "tests.servers.revoke_app:app"
ALICE = ("user", "alice")
BOB = ("user", "bob")


MakeHubs = Callable[[int], AbstractAsyncContextManager[list[Broadcaster]]]


@pytest.fixture
def hubs(redis_server: RedisServer) -> MakeHubs:
    """``async with hubs(n) as (a, b, ...)``: *n* open hubs on one prefix, as n processes."""
    prefix = f"revoke-{uuid.uuid4().hex[:8]}:"

    @asynccontextmanager
    async def open_hubs(count: int) -> AsyncIterator[list[Broadcaster]]:
        async with AsyncExitStack() as stack:
            yield [
                await stack.enter_async_context(
                    Broadcaster(RedisBackend(redis_server.url, prefix=prefix), history=100)
                )
                for _ in range(count)
            ]

    return open_hubs


async def applied(hub: Broadcaster, count: int) -> None:
    """Wait until *hub*'s reader has read the first *count* entries of the control stream
    (each test has its own prefix, so its own control stream)."""
    backend = hub.backend
    assert isinstance(backend, RedisBackend)
    with anyio.fail_after(10):
        while True:
            found = await command(backend.address, "XRANGE", backend._control_key, "-", "+")
            if len(found) >= count:
                position = parse_stream_id(found[count - 1][0].decode())
                assert position is not None
                if position <= backend._control[1]:
                    return
            await anyio.sleep(0.01)


async def delivered(hub: Broadcaster, count: int) -> None:
    """Wait until *hub* has put *count* events into its subscribers' buffers."""
    with anyio.fail_after(10):
        while hub.stats().delivered < count:  # noqa: ASYNC110 (a counter)
            await anyio.sleep(0.005)


# -- two hubs, one Redis ------------------------------------------------------------------------


@needs_redis
async def test_a_revocation_ends_the_principals_streams_in_every_hub(hubs: MakeHubs) -> None:
    farewell = ServerSentEvent("bye", event="logout", retry=5000, comment="session ended")
    async with hubs(2) as (a, b), AsyncExitStack() as stack:
        here = await stack.enter_async_context(a.subscribe("t", authorize=grant(ALICE)))
        there = [
            await stack.enter_async_context(b.subscribe(topic, authorize=grant(ALICE, "acme")))
            for topic in ("t", "u")
        ]
        bobs = [
            await stack.enter_async_context(hub.subscribe("t", authorize=grant(BOB)))
            for hub in (a, b)
        ]
        await a.publish("t", "buffered, never read")
        for hub in (a, b):  # alice's and bob's buffers on "t" hold it
            await delivered(hub, 2)
        received: list[tuple[float, ServerSentEvent]] = []

        async def wait_on_u() -> None:  # a reader blocked on b, for the latency
            event = await there[1].receive()
            received.append((time.perf_counter(), event))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(wait_on_u)
                await anyio.wait_all_tasks_blocked()  # it waits in receive()
                started = time.perf_counter()
                assert await a.revoke_everywhere(ALICE, farewell=farewell) == 1  # A's own
        ((at, event),) = received
        print(f"revoke_everywhere -> farewell on the other hub: {(at - started) * 1000:.1f} ms")
        assert event == farewell  # the same farewell, byte for byte
        assert event.encode() == farewell.encode()
        assert await drain(here) == [farewell]  # what was buffered is discarded
        await applied(b, 1)
        assert await drain(there[0]) == [farewell]  # on b too
        assert await drain(there[1]) == []
        assert (a.stats().revoked, b.stats().revoked) == (1, 2)
        later = await b.publish("t", "bob still reads")
        for channel in bobs:
            assert ids_of(await take(channel, 2))[1] == later
        assert b.stats().subscribers == {"t": 1}
        assert await b.revoke_everywhere("acme") == 0  # alice's streams are gone already


@needs_redis
async def test_the_sending_hub_does_not_apply_its_own_message_again(hubs: MakeHubs) -> None:
    # It ended its subscriptions itself; reading its message back later must not end one
    # granted since (the app granted the principal again, say).
    async with hubs(1) as (a,):
        assert await a.revoke_everywhere(ALICE) == 0
        async with a.subscribe("t", authorize=grant(ALICE)) as events:
            await applied(a, 1)
            event_id = await a.publish("t", "granted again")
            assert ids_of(await take(events, 1)) == [event_id]
        assert a.stats().revoked == 0


@needs_redis
async def test_a_revocation_stops_a_replay_on_the_other_hub(hubs: MakeHubs) -> None:
    async with hubs(2) as (a, b):
        ids = [await a.publish("t", number) for number in range(60)]
        async with b.subscribe(
            "t", last_event_id=ids[0], max_buffer_size=2, authorize=grant(ALICE)
        ) as events:
            with anyio.fail_after(10):
                first = await events.receive()  # b's replay task now sends the rest
            await a.revoke_everywhere(ALICE)
            rest = await drain(events)
    assert first.id == ids[1]
    assert rest[-1].event == "revoked"
    # What was buffered when the revocation arrived was discarded: the replay did not finish.
    assert [event.id for event in rest[:-1]] == ids[2 : 2 + len(rest) - 1]
    assert len(rest) - 1 < len(ids) - 2


@needs_redis
async def test_control_messages_never_reach_a_subscriber(hubs: MakeHubs) -> None:
    # Topics whose names look like the control stream's key still are other keys.
    topics = ["control", "\xffcontrol", "_control", "trio_sse:\xffcontrol"]
    async with hubs(2) as (a, b), AsyncExitStack() as stack:
        plain = [await stack.enter_async_context(b.subscribe(topic)) for topic in topics]
        resumed = await stack.enter_async_context(b.subscribe("t", last_event_id="0-0"))
        await a.revoke_everywhere(ALICE)
        await b.revoke_everywhere(("tenant", 1, None, 2.5, True))
        await applied(b, 2)
        await applied(a, 2)
        for topic, channel in zip(topics, plain, strict=True):
            sentinel = await a.publish(topic, "sentinel")
            assert ids_of(await take(channel, 1)) == [sentinel]
        sentinel = await a.publish("t", "sentinel")
        reset, replayed = await take(resumed, 2)  # "0-0" is not in the topic: a reset
        assert (reset.event, replayed.id) == ("reset", sentinel)
        assert (a.stats().revoked, b.stats().revoked) == (0, 0)


@needs_redis
async def test_a_hub_started_after_a_revocation_is_not_affected(hubs: MakeHubs) -> None:
    async with hubs(2) as (a, idle):
        assert await a.revoke_everywhere(ALICE) == 0
        await applied(idle, 1)  # read by a hub with no stream at all, too
        async with hubs(1) as (late,), AsyncExitStack() as stack:
            channels = [
                await stack.enter_async_context(hub.subscribe("t", authorize=grant(ALICE)))
                for hub in (idle, late)
            ]
            event_id = await a.publish("t", "still granted")
            for channel in channels:
                assert ids_of(await take(channel, 1)) == [event_id]
            assert (idle.stats().revoked, late.stats().revoked) == (0, 0)


@needs_redis
async def test_a_hook_deciding_while_the_revocation_arrives_is_refused(hubs: MakeHubs) -> None:
    entered, answer = anyio.Event(), anyio.Event()

    async def authorize(topic: str) -> Access | None:
        entered.set()
        await answer.wait()  # the app read its record before the revocation
        return Access(ALICE)

    async with hubs(2) as (a, b):
        outcome: list[object] = []

        async def subscribe() -> None:
            try:
                async with b.subscribe("t", authorize=authorize):
                    outcome.append("entered")
            except Forbidden as exc:
                outcome.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(subscribe)
                await entered.wait()
                await a.revoke_everywhere(ALICE)
                await applied(b, 1)
                answer.set()
    assert len(outcome) == 1 and isinstance(outcome[0], Forbidden)


@needs_redis
async def test_the_revoked_user_reconnecting_with_its_cursor_is_refused(hubs: MakeHubs) -> None:
    revoked: set[str] = set()  # the app's own record, shared by its processes (a database)

    async def authorize(topic: str) -> Access | None:
        return None if "alice" in revoked else Access(ALICE)

    async with hubs(2) as (a, b):
        async with b.subscribe("t", authorize=authorize) as events:
            first = await a.publish("t", "one")
            assert ids_of(await take(events, 1)) == [first]
            revoked.add("alice")
            await a.revoke_everywhere(ALICE)
            assert [event.event for event in await drain(events)] == ["revoked"]
        with pytest.raises(Forbidden):
            async with b.subscribe("t", last_event_id=first, authorize=authorize):
                pass  # pragma: no cover


@needs_redis
async def test_a_principal_that_cannot_cross_processes(hubs: MakeHubs) -> None:
    async with hubs(2) as (a, b):
        async with a.subscribe("t", authorize=grant(frozenset({"x"}))) as events:
            with pytest.raises(TypeError, match="frozenset"):
                await a.revoke_everywhere(frozenset({"x"}))
            with pytest.raises(TypeError, match="hashable"):
                await a.revoke_everywhere(["x"])  # type: ignore[arg-type]
            assert a.stats().revoked == 0  # nothing revoked here either
            assert a.revoke(frozenset({"x"})) == 1  # this process alone still can
            assert [event.event for event in await drain(events)] == ["revoked"]
        backend = b.backend
        assert isinstance(backend, RedisBackend)
        control = await command(backend.address, "XRANGE", backend._control_key, "-", "+")
        assert control == []  # nothing was sent


@needs_redis
async def test_a_malformed_control_entry_is_skipped(
    hubs: MakeHubs, caplog: pytest.LogCaptureFixture
) -> None:
    async with hubs(2) as (a, b), b.subscribe("t", authorize=grant(ALICE)) as events:
        backend = b.backend
        assert isinstance(backend, RedisBackend)
        key = backend._control_key
        await command(backend.address, "XADD", key, "*", "kind", "something else")
        await command(
            backend.address, "XADD", key, "*", "kind", "revoke", "origin", "x", "principal", "{"
        )
        await a.revoke_everywhere(ALICE)
        assert [event.event for event in await drain(events)] == ["revoked"]
        await applied(a, 3)
    skipped = [r for r in caplog.records if "skipping control entry" in r.getMessage()]
    assert len(skipped) == 4  # two entries, read by each hub


@needs_redis
async def test_an_acl_that_leaves_out_the_control_stream_fails_at_start(
    redis_server: RedisServer,
) -> None:
    # Topics are lowercase here: the pattern lets every topic through, not the control key.
    prefix = f"acl-{uuid.uuid4().hex[:8]}:"
    user = f"user-{uuid.uuid4().hex[:8]}"
    rules = ("+xadd", "+xrange", "+xrevrange", "+xread", "+client|unblock")
    await command(redis_server.url, "ACL SETUSER", user, "on", ">pw", f"~{prefix}[a-z]*", *rules)
    url = f"redis://{user}:pw@127.0.0.1:{redis_server.port}/0"
    with anyio.fail_after(10), pytest.raises(RedisReplyError, match=f"XADD on the keys {prefix}"):
        async with Broadcaster(RedisBackend(url, prefix=prefix)):
            pass  # pragma: no cover


# -- memory, and backends without revocations ---------------------------------------------------


async def test_on_memory_it_is_revoke_with_a_checkpoint() -> None:
    async with Broadcaster() as hub:
        async with hub.subscribe("t", authorize=grant(frozenset({"x"}))) as events:
            assert await hub.revoke_everywhere(frozenset({"x"}), farewell=None) == 1
            assert await drain(events) == []
        assert await hub.revoke_everywhere("nobody") == 0
    with pytest.raises(RuntimeError, match="closed"):
        await hub.revoke_everywhere("u")


class LocalOnly(MemoryBackend):
    revoke = None  # type: ignore[assignment]  # a backend that cannot tell other processes


async def test_a_backend_without_revoke_is_a_type_error() -> None:
    hub = Broadcaster(LocalOnly())
    async with hub, hub.subscribe("t", authorize=grant("u")) as events:
        with pytest.raises(TypeError, match="LocalOnly cannot send revocations"):
            await hub.revoke_everywhere("u")
        assert hub.revoke("u") == 1
        assert [event.event for event in await drain(events)] == ["revoked"]


async def kill_reader(hub: Broadcaster) -> None:
    """Cut *hub*'s reader connection (``CLIENT KILL``): its reader reconnects after 50 ms."""
    backend = hub.backend
    assert isinstance(backend, RedisBackend)
    with anyio.fail_after(10):
        while backend._reader_client_id is None:  # noqa: ASYNC110 (a plain attribute)
            await anyio.sleep(0.01)
    killed = await command(backend.address, "CLIENT", "KILL", "ID", backend._reader_client_id)
    assert killed == 1


def reader_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "Redis stream reader" in r.getMessage()]


@needs_redis
async def test_a_revocation_sent_while_a_reader_reconnects_is_not_lost(
    hubs: MakeHubs, caplog: pytest.LogCaptureFixture
) -> None:
    async with hubs(2) as (a, b), b.subscribe("t", authorize=grant(ALICE)) as events:
        await kill_reader(b)
        await a.revoke_everywhere(ALICE)  # most likely before b's reader is back
        assert [event.event for event in await drain(events)] == ["revoked"]
    # A topic was followed: its subscribers wait for the reader, that is a warning.
    assert [r.levelno for r in reader_records(caplog)] == [logging.WARNING]


@needs_redis
async def test_an_idle_reader_that_loses_redis_says_so_at_info(
    hubs: MakeHubs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trio_sse")
    async with hubs(2) as (a, b):
        await kill_reader(b)  # b follows no topic: nobody waits for its reader
        with anyio.fail_after(10):
            while not reader_records(caplog):  # noqa: ASYNC110 (log records, a plain list)
                await anyio.sleep(0.01)
        async with b.subscribe("t", authorize=grant(ALICE)) as events:
            await a.revoke_everywhere(ALICE)
            assert [event.event for event in await drain(events)] == ["revoked"]
    assert [r.levelno for r in reader_records(caplog)] == [logging.INFO]


# -- two real server processes ------------------------------------------------------------------


async def wait_healthy(http: httpx.AsyncClient, url: str) -> None:
    while True:
        try:
            if (await http.get(f"{url}/health")).status_code == 200:
                return
        except httpx.TransportError:
            await anyio.sleep(0.05)


@needs_redis
async def test_two_server_processes_revoke_on_one_ends_the_stream_on_the_other(
    anyio_backend: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    # Process A on the test's event loop, B on the other one (hypercorn's trio and asyncio
    # workers), one Redis; the app's record of revoked users is a file both read.
    other = "asyncio" if anyio_backend == "trio" else "trio"
    env = {
        "TRIO_SSE_REDIS_URL": redis_server.url,
        "TRIO_SSE_REDIS_PREFIX": f"procs-{uuid.uuid4().hex[:8]}:",
        "TRIO_SSE_REVOKED_FILE": str(tmp_path / "revoked"),
    }
    ports = (free_port(), free_port())
    logs = (tmp_path / "a.log", tmp_path / "b.log")
    servers = [
        await start_server_process(APP, port, backend=loop, log=log, env=env)
        for port, loop, log in zip(ports, (anyio_backend, other), logs, strict=True)
    ]
    a, b = (f"http://127.0.0.1:{port}" for port in ports)
    alice: list[ServerSentEvent] = []
    times: list[float] = []
    bob: list[ServerSentEvent] = []
    try:
        with anyio.fail_after(30):
            async with httpx.AsyncClient() as http:
                for url in (a, b):
                    await wait_healthy(http, url)
                options: dict[str, Any] = {"backoff": 0.01, "jitter": 0.0}
                async with connect(http, f"{b}/events/news?user=bob", **options) as bobs:

                    async def read_alice() -> None:
                        async with connect(
                            http, f"{b}/events/news?user=alice", **options
                        ) as source:
                            await http.post(f"{a}/publish/news", content="one")
                            async for event in source:
                                alice.append(event)
                                times.append(time.perf_counter())
                                if event.data == "one":
                                    answer = await http.post(f"{a}/revoke/alice")
                                    assert answer.text == "0"  # no stream of alice on A

                    with pytest.raises(SSEStatusError) as refused:
                        await read_alice()
                    await http.post(f"{a}/publish/news", content="two")
                    async for event in bobs:
                        bob.append(event)
                        if event.data == "two":
                            break
    finally:
        for server in servers:
            await kill_process_group(server)
    details = "\n".join(log.read_text() for log in logs if log.exists())
    assert refused.value.status_code == 403, details  # the reconnection, with its cursor
    assert [(event.event, event.data) for event in alice] == [
        (None, "one"),
        ("revoked", "goodbye alice"),
    ], details
    assert [event.data for event in bob] == ["one", "two"]
    latency = times[1] - times[0]  # includes the POST's own round trip
    print(f"POST /revoke on A -> farewell on B's stream: {latency * 1000:.1f} ms")
