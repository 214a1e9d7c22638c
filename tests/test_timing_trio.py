"""The built-in timers in trio's virtual time (pytest-trio's ``autojump_clock``), and on asyncio.

Each scenario runs twice:

* ``@pytest.mark.trio`` with pytest-trio's ``autojump_clock``: the clock jumps to the next
  deadline whenever every task is blocked, so the timers are asserted *exactly* (a ping at
  5.0 s, a cancellation at 12.5 s) and the whole test takes milliseconds of real time;
* its asyncio twin (anyio's plugin, ``anyio_backend="asyncio"``) with short real intervals:
  the same order of events, and only lower bounds on times (a loaded machine can make a timer
  late, never early), so it cannot flake.

Streams are driven in-process with ``trio_sse.testing.open_event_stream``; the ASGI ``send``
is wrapped to note the loop's clock when each body message is sent (the server's side, not
the client's, which may read late).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
import trio
import trio.testing
from anyio.streams.memory import MemoryObjectSendStream

from trio_sse import Broadcaster, EventSourceResponse, SendTimeoutError, ShutdownToken
from trio_sse.testing import open_event_stream

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]
Sender = MemoryObjectSendStream[Any]

# The asyncio twins' unit of time, in seconds: the trio tests use 1 (virtual) second.
ASYNCIO_UNIT = 0.04
# The asyncio clock (loop.time) may let a timer fire up to its resolution early.
EPSILON = 1e-3

asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


@dataclass
class Body:
    at: float  # the loop's clock when the app called send()
    data: bytes
    more_body: bool

    @property
    def is_ping(self) -> bool:
        return self.data.startswith(b": ping")


@dataclass
class Recorder:
    """Wraps an ``EventSourceResponse`` in an ASGI app that notes when each message is sent."""

    started_at: float = math.nan
    bodies: list[Body] = field(default_factory=list)
    failed_at: float = math.nan

    def app(self, response: EventSourceResponse) -> ASGIApp:
        async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
            async def recording_send(message: Message) -> None:
                now = anyio.current_time()
                if message["type"] == "http.response.start":
                    self.started_at = now
                elif message["type"] == "http.response.body":
                    body = bytes(message.get("body", b""))
                    self.bodies.append(Body(now, body, bool(message.get("more_body", False))))
                await send(message)

            try:
                await response(scope, receive, recording_send)
            except SendTimeoutError:
                self.failed_at = anyio.current_time()
                raise

        return app

    def times(self) -> list[float]:
        """Body send times, relative to the response's start."""
        return [body.at - self.started_at for body in self.bodies]


# -- pings --------------------------------------------------------------------------------------


async def idle_pings(unit: float) -> Recorder:
    """A producer that never sends: three pings, one every ``5 * unit``."""
    recorder = Recorder()

    async def silent(send: Sender) -> None:
        async with send:
            await anyio.sleep_forever()

    response = EventSourceResponse(silent, ping=5 * unit)
    async with open_event_stream(recorder.app(response), comments=True) as stream:
        pings = await stream.read_events(3)
    assert [event.comment for event in pings] == ["ping"] * 3
    return recorder


@pytest.mark.trio
async def test_idle_stream_pings_exactly_every_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):  # virtual seconds
        recorder = await idle_pings(1)
    assert recorder.times() == [5.0, 10.0, 15.0]


@asyncio_only
@pytest.mark.anyio
async def test_idle_stream_pings_no_sooner_than_the_interval_asyncio() -> None:
    interval = 5 * ASYNCIO_UNIT
    with anyio.fail_after(10):
        recorder = await idle_pings(ASYNCIO_UNIT)
    times = [0.0, *recorder.times()]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(gaps) == 3
    assert all(gap >= interval - EPSILON for gap in gaps), gaps


async def ping_after_event(unit: float) -> Recorder:
    """One ping at ``5 * unit``, an event at ``7 * unit``, then two more pings."""
    recorder = Recorder()

    async def late_event(send: Sender) -> None:
        async with send:
            await anyio.sleep(7 * unit)
            await send.send("news")
            await anyio.sleep_forever()

    response = EventSourceResponse(late_event, ping=5 * unit)
    async with open_event_stream(recorder.app(response), comments=True) as stream:
        events = await stream.read_events(4)
    assert [event.comment or event.data for event in events] == ["ping", "news", "ping", "ping"]
    return recorder


@pytest.mark.trio
async def test_an_event_resets_the_ping_timer(autojump_clock: trio.testing.MockClock) -> None:
    # "any data resets the timer" (EventSourceResponse's docstring): the ping after the event
    # comes a full interval after it (12 s), not on the idle schedule (10 s).
    with trio.fail_after(100):
        recorder = await ping_after_event(1)
    assert recorder.times() == [5.0, 7.0, 12.0, 17.0]
    assert [body.is_ping for body in recorder.bodies] == [True, False, True, True]


@asyncio_only
@pytest.mark.anyio
async def test_no_ping_comes_sooner_than_the_interval_after_any_send_asyncio() -> None:
    interval = 5 * ASYNCIO_UNIT
    with anyio.fail_after(10):
        recorder = await ping_after_event(ASYNCIO_UNIT)
    times = [0.0, *recorder.times()]
    for index, body in enumerate(recorder.bodies, start=1):
        if body.is_ping:
            assert times[index] - times[index - 1] >= interval - EPSILON, times
    # The event came 7 units in: the ping after it was a full interval after the event.
    event_at = times[2]
    assert event_at >= 7 * ASYNCIO_UNIT - EPSILON
    assert times[3] >= event_at + interval - EPSILON


# -- the shutdown grace period ------------------------------------------------------------------


@dataclass
class GraceRun:
    recorder: Recorder
    triggered_at: float
    saw_shutdown_at: float
    cancelled_at: float
    data: list[str]


FAREWELL = {"event": "bye", "data": "restarting"}


async def stubborn_producer_under_shutdown(unit: float) -> GraceRun:
    """Trigger at ``2.5 * unit``; the producer keeps going; grace ``10 * unit``."""
    recorder = Recorder()
    token = ShutdownToken()
    shutdown_event = anyio.Event()
    seen: dict[str, float] = {}

    async def stubborn(send: Sender) -> None:
        async with send:
            await send.send("hello")
            await shutdown_event.wait()
            seen["shutdown"] = anyio.current_time()
            await send.send("still here")  # the cooperative phase: events still flow
            try:
                await anyio.sleep_forever()
            finally:
                seen["cancelled"] = anyio.current_time()

    response = EventSourceResponse(
        stubborn,
        ping=0,
        shutdown=token,
        shutdown_event=shutdown_event,
        shutdown_grace_period=10 * unit,
        farewell=FAREWELL,
    )
    async with open_event_stream(recorder.app(response)) as stream:
        [hello] = await stream.read_events(1)
        await anyio.sleep(2.5 * unit)
        triggered_at = anyio.current_time()
        token.trigger("deploy")
        rest = [event async for event in stream]
        assert stream.complete
    return GraceRun(
        recorder,
        triggered_at,
        seen["shutdown"],
        seen["cancelled"],
        [str(hello.data), *(f"{event.event or 'message'}:{event.data}" for event in rest)],
    )


@pytest.mark.trio
async def test_grace_period_cancels_the_producer_exactly_when_it_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):
        run = await stubborn_producer_under_shutdown(1)
    assert run.triggered_at - run.recorder.started_at == 2.5
    # The cooperative phase starts at the trigger, the hard phase exactly 10 s later.
    assert run.saw_shutdown_at == run.triggered_at
    assert run.cancelled_at == run.triggered_at + 10
    assert run.data == ["hello", "message:still here", "bye:restarting"]
    last = run.recorder.bodies[-1]
    assert (last.at, last.more_body) == (run.triggered_at + 10, False)
    assert b"event: bye" in last.data


@asyncio_only
@pytest.mark.anyio
async def test_grace_period_cancels_the_producer_no_sooner_than_it_ends_asyncio() -> None:
    grace = 10 * ASYNCIO_UNIT
    with anyio.fail_after(10):
        run = await stubborn_producer_under_shutdown(ASYNCIO_UNIT)
    assert run.saw_shutdown_at >= run.triggered_at
    assert run.cancelled_at >= run.triggered_at + grace - EPSILON
    assert run.data == ["hello", "message:still here", "bye:restarting"]
    last = run.recorder.bodies[-1]
    assert not last.more_body
    assert last.at >= run.triggered_at + grace - EPSILON
    assert b"event: bye" in last.data


async def cooperative_producer_under_shutdown(grace: float) -> tuple[float, Recorder]:
    """A producer that says goodbye and closes its channel as soon as shutdown begins."""
    recorder = Recorder()
    token = ShutdownToken()
    shutdown_event = anyio.Event()

    async def polite(send: Sender) -> None:
        async with send:
            await send.send("hello")
            await shutdown_event.wait()
            await send.send("goodbye")

    response = EventSourceResponse(
        polite,
        ping=0,
        shutdown=token,
        shutdown_event=shutdown_event,
        shutdown_grace_period=grace,
        farewell=FAREWELL,
    )
    async with open_event_stream(recorder.app(response)) as stream:
        await stream.read_events(1)
        triggered_at = anyio.current_time()
        token.trigger()
        rest = [event.data async for event in stream]
    assert rest == ["goodbye", "restarting"]  # the farewell is sent at a cooperative end too
    return triggered_at, recorder


@pytest.mark.trio
async def test_cooperative_end_does_not_wait_for_the_grace_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):
        triggered_at, recorder = await cooperative_producer_under_shutdown(30)
    last = recorder.bodies[-1]
    assert (last.at, last.more_body) == (triggered_at, False)


@asyncio_only
@pytest.mark.anyio
async def test_cooperative_end_does_not_wait_for_the_grace_period_asyncio() -> None:
    with anyio.fail_after(10):
        triggered_at, recorder = await cooperative_producer_under_shutdown(30)
    last = recorder.bodies[-1]
    assert not last.more_body
    assert last.at - triggered_at < 30  # the grace period did not run out


# -- send_timeout -------------------------------------------------------------------------------


async def client_that_stops_reading(
    send_timeout: float, wait: float
) -> tuple[Recorder, float, float]:
    """The client reads nothing: the app's second body send blocks and times out.

    Returns the recorder, when the blocked send began and when the producer was closed.
    """
    recorder = Recorder()
    closed: dict[str, float] = {}

    async def endless(send: Sender) -> None:
        try:
            async with send:
                while True:
                    await send.send("x" * 1000)
        finally:
            closed["at"] = anyio.current_time()

    response = EventSourceResponse(endless, ping=0, send_timeout=send_timeout)
    # One message of room: the first body message fills it, the next send blocks.
    with pytest.raises(SendTimeoutError, match="longer than"):
        async with open_event_stream(recorder.app(response), max_buffered_messages=1):
            await anyio.sleep(wait)
    return recorder, recorder.bodies[-1].at, closed["at"]


@pytest.mark.trio
async def test_send_timeout_fails_exactly_after_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):
        recorder, blocked_at, closed_at = await client_that_stops_reading(3, wait=50)
    assert len(recorder.bodies) == 2
    # The call fails exactly 3 s into the blocked send, and the producer is closed then.
    assert recorder.failed_at == closed_at == blocked_at + 3


@asyncio_only
@pytest.mark.anyio
async def test_send_timeout_fails_no_sooner_than_the_timeout_asyncio() -> None:
    timeout = 5 * ASYNCIO_UNIT
    with anyio.fail_after(10):
        recorder, blocked_at, closed_at = await client_that_stops_reading(timeout, wait=1)
    assert recorder.failed_at >= blocked_at + timeout - EPSILON
    assert closed_at >= blocked_at + timeout - EPSILON


async def slow_reader(send_timeout: float, delay: float, count: int) -> float:
    """A client that reads one message every *delay*: each send waits, none for *send_timeout*.

    Returns how long the stream took, from the response's start to the client's last read.
    """
    recorder = Recorder()
    big = "x" * (70 * 1024)  # over the writer's batch limit: one event per body message

    async def events(send: Sender) -> None:
        async with send:
            for _ in range(count):
                await send.send(big)

    response = EventSourceResponse(events, ping=0, send_timeout=send_timeout)
    async with open_event_stream(recorder.app(response), max_buffered_messages=1) as stream:
        received = 0
        while await stream.receive_body() is not None:
            received += 1
            await anyio.sleep(delay)
        assert stream.complete
        took = anyio.current_time() - recorder.started_at
    assert received == count
    assert math.isnan(recorder.failed_at)
    return took


@pytest.mark.trio
async def test_send_timeout_bounds_each_send_not_the_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):
        took = await slow_reader(send_timeout=3, delay=2, count=6)
    # Six events read 2 s apart: 12 s in all, four times the timeout, and no failure.
    assert took == 12


@asyncio_only
@pytest.mark.anyio
async def test_send_timeout_bounds_each_send_not_the_stream_asyncio() -> None:
    with anyio.fail_after(20):
        # Each send waits about 0.2 s: a margin of 1.8 s against a loaded machine's stalls.
        took = await slow_reader(send_timeout=2.0, delay=0.2, count=12)
    assert took >= 2.4 - EPSILON


# -- the Broadcaster's block_timeout -----------------------------------------------------------


async def publish_to_a_full_block_subscriber(
    block_timeout: float, read_after: float | None
) -> tuple[float, list[str], bool, int]:
    """Publish twice to a ``block`` subscriber with room for one; it reads after *read_after*.

    Returns the seconds the second publish took, the events the subscriber got, whether its
    channel ended, and the hub's count of disconnected subscribers.
    """
    async with (
        Broadcaster() as hub,
        hub.subscribe(
            "t", max_buffer_size=1, on_overflow="block", block_timeout=block_timeout
        ) as events,
        anyio.create_task_group() as group,
    ):
        await hub.publish("t", "one")
        received: list[str] = []

        async def read_later(delay: float) -> None:
            await anyio.sleep(delay)
            received.append(str((await events.receive()).data))

        if read_after is not None:
            group.start_soon(read_later, read_after)
        start = anyio.current_time()
        await hub.publish("t", "two")
        took = anyio.current_time() - start
        # The reader took "one" before "two" was put in, but appends it after its receive's
        # pass; publish returns with no pass of its own (issue 18): let it finish first.
        await anyio.wait_all_tasks_blocked()
        ended = False
        while True:
            try:
                received.append(str(events.receive_nowait().data))
            except anyio.WouldBlock:
                break  # still subscribed: nothing more for now
            except anyio.EndOfStream:
                ended = True
                break
        disconnected = hub.stats().disconnected
    return took, received, ended, disconnected


@pytest.mark.trio
async def test_block_subscriber_is_disconnected_exactly_at_its_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):
        took, received, ended, disconnected = await publish_to_a_full_block_subscriber(4, None)
    assert took == 4
    # It keeps what it had buffered; "two" is for its resume (Last-Event-ID) to fetch.
    assert (received, ended, disconnected) == (["one"], True, 1)


@pytest.mark.trio
async def test_block_subscriber_that_reads_in_time_gets_every_event(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):
        took, received, ended, disconnected = await publish_to_a_full_block_subscriber(4, 1)
    assert took == 1  # publish waited for the reader, exactly as long as it took
    assert (received, ended, disconnected) == (["one", "two"], False, 0)


@asyncio_only
@pytest.mark.anyio
async def test_block_subscriber_is_disconnected_no_sooner_than_its_timeout_asyncio() -> None:
    timeout = 5 * ASYNCIO_UNIT
    with anyio.fail_after(10):
        took, received, ended, disconnected = await publish_to_a_full_block_subscriber(
            timeout, None
        )
    assert took >= timeout - EPSILON
    assert (received, ended, disconnected) == (["one"], True, 1)


@asyncio_only
@pytest.mark.anyio
async def test_block_subscriber_that_reads_in_time_gets_every_event_asyncio() -> None:
    with anyio.fail_after(10):
        took, received, ended, disconnected = await publish_to_a_full_block_subscriber(5.0, 0.01)
    assert took >= 0.01 - EPSILON
    assert (received, ended, disconnected) == (["one", "two"], False, 0)
