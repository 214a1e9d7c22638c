"""``max_duration`` (a stream's lifetime) in trio's virtual time, with asyncio twins, and
``seconds_until`` (issue 16 item 3).

As in ``test_timing_trio``: each scenario runs under pytest-trio's ``autojump_clock``, where
the times are asserted exactly, and on asyncio with short real intervals, where only lower
bounds are asserted (a loaded machine makes a timer late, never early).
"""

from __future__ import annotations

import datetime
import random
import time
from dataclasses import dataclass

import anyio
import pytest
import trio
import trio.testing

from trio_sse import EventSourceResponse, ServerSentEvent, ShutdownToken, seconds_until
from trio_sse.testing import open_event_stream

from .test_timing_trio import ASYNCIO_UNIT, EPSILON, Recorder, Sender, asyncio_only

FAREWELL = ServerSentEvent("see you", event="bye")


@dataclass
class Lifetime:
    recorder: Recorder
    data: list[str]
    cancelled_at: float
    closed: bool


async def short_lived_stream(unit: float, **options: object) -> Lifetime:
    """A producer that sends an event every ``unit`` forever, on a stream that may live
    ``10.5 * unit`` (between two events: no tie); the client reads until the body ends."""
    recorder = Recorder()
    seen = {"cancelled_at": -1.0, "closed": False}

    async def ticking(send: Sender) -> None:
        async with send:
            try:
                for number in range(1000):
                    await send.send(str(number))
                    await anyio.sleep(unit)
            except anyio.get_cancelled_exc_class():
                seen["cancelled_at"] = anyio.current_time()
                raise
            finally:
                seen["closed"] = True

    options.setdefault("max_duration", 10.5 * unit)
    response = EventSourceResponse(ticking, ping=0, farewell=FAREWELL, **options)  # type: ignore[arg-type]
    async with open_event_stream(recorder.app(response)) as stream:
        data = [f"{event.event or 'message'}:{event.data}" for event in [e async for e in stream]]
    return Lifetime(recorder, data, float(seen["cancelled_at"]), bool(seen["closed"]))


@pytest.mark.trio
async def test_the_stream_ends_exactly_at_its_max_duration(
    autojump_clock: trio.testing.MockClock,
) -> None:
    with trio.fail_after(100):
        run = await short_lived_stream(1, farewell_retry=3000)
    started = run.recorder.started_at
    last = run.recorder.bodies[-1]
    assert (last.at - started, last.more_body) == (10.5, False)
    assert run.cancelled_at - started == 10.5  # no grace: the producer is told by cancelling
    assert run.closed
    # Events 0..10 (sent at 0..10 s); at 10.5 s the stream ends with the farewell and hint.
    assert run.data == [*(f"message:{number}" for number in range(11)), "bye:see you"]
    assert b"retry: 3000" in last.data and b"event: bye" in last.data


@asyncio_only
@pytest.mark.anyio
async def test_the_stream_ends_no_sooner_than_its_max_duration_asyncio() -> None:
    with anyio.fail_after(10):
        run = await short_lived_stream(ASYNCIO_UNIT, farewell_retry=3000)
    last = run.recorder.bodies[-1]
    assert not last.more_body
    assert last.at - run.recorder.started_at >= 10.5 * ASYNCIO_UNIT - EPSILON
    assert run.closed and run.data[-1] == "bye:see you"
    assert b"retry: 3000" in last.data


@pytest.mark.trio
async def test_a_lifetime_range_is_picked_per_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    random.seed(7)
    lifetimes = []
    with trio.fail_after(1000):
        for _ in range(5):
            run = await short_lived_stream(1, max_duration=(20, 40))
            lifetimes.append(run.recorder.bodies[-1].at - run.recorder.started_at)
    assert all(20 <= lifetime <= 40 for lifetime in lifetimes), lifetimes
    assert len(set(lifetimes)) == 5  # spread: not all streams end (and come back) together


@pytest.mark.trio
async def test_an_idle_stream_still_ends_and_pings_keep_their_schedule(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()

    async def silent(send: Sender) -> None:
        async with send:
            await anyio.sleep_forever()

    response = EventSourceResponse(silent, ping=4, max_duration=10, farewell=FAREWELL)
    with trio.fail_after(100):
        async with open_event_stream(recorder.app(response), comments=True) as stream:
            events = [event async for event in stream]
    assert [event.comment or event.event for event in events] == ["ping", "ping", "bye"]
    assert recorder.times() == [4.0, 8.0, 10.0]


@pytest.mark.trio
async def test_shutdown_before_the_lifetime_keeps_its_grace_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Shutdown at 2 s with a grace of 5 s: the stream ends at 7 s (shutdown's rule), not at
    # its lifetime's end (20 s), and not at once.
    recorder = Recorder()
    token = ShutdownToken()

    async def stubborn(send: Sender) -> None:
        async with send:
            await anyio.sleep_forever()

    response = EventSourceResponse(
        stubborn, ping=0, shutdown=token, shutdown_grace_period=5, max_duration=20
    )
    with trio.fail_after(100):
        async with anyio.create_task_group() as group:
            group.start_soon(_trigger_after, token, 2.0)
            async with open_event_stream(recorder.app(response)) as stream:
                assert [event async for event in stream] == []
    assert recorder.times() == [7.0]


async def _trigger_after(token: ShutdownToken, delay: float) -> None:
    await anyio.sleep(delay)
    token.trigger()


def test_max_duration_is_checked_like_the_other_options() -> None:
    response = EventSourceResponse([], max_duration=(1, 2.5))
    assert response.max_duration == (1.0, 2.5)
    response.max_duration = 3
    assert response.max_duration == 3.0
    with pytest.raises(ValueError, match=r"max_duration must be > 0 \(seconds\), got 0"):
        EventSourceResponse([], max_duration=0)
    with pytest.raises(ValueError, match="max_duration must be a range 0 < low <= high"):
        response.max_duration = (5, 1)
    with pytest.raises(TypeError, match="max_duration must be seconds"):
        response.max_duration = "1h"
    with pytest.raises(TypeError, match="max_duration must be seconds"):
        EventSourceResponse([], max_duration=(1, 2, 3))  # type: ignore[arg-type]


def test_seconds_until_an_expiry() -> None:
    now = time.time()
    assert 99 <= seconds_until(now + 100) <= 100
    assert 89 <= seconds_until(now + 100, early=10) <= 90
    aware = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=1)
    assert 59 <= seconds_until(aware) <= 60
    assert seconds_until(now - 5) == 0.001  # already expired: a stream that ends at once
    with pytest.raises(ValueError, match="aware datetime"):
        seconds_until(datetime.datetime.now())  # naive: the point of the test
    with pytest.raises(TypeError, match="aware datetime or a POSIX timestamp"):
        seconds_until("tomorrow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="early"):
        seconds_until(now, early=-1)
