"""Broadcaster on the memory backend: the shared suite, plus what only memory can show."""

from __future__ import annotations

import logging
import math
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from trio_sse import EventSourceResponse, ServerSentEvent
from trio_sse._broadcast import Broadcaster, BroadcastStats, Overflow
from trio_sse._channels import DirectSource
from trio_sse.backends import MemoryBackend
from trio_sse.testing import open_event_stream

from .broadcast_suite import BroadcastSuite, MakeHub, drain, ids_of, reset_data, take
from .helpers import app_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def make_hub() -> MakeHub:
    def make(**options: Any) -> Broadcaster:
        return Broadcaster(**options)

    return make


class TestMemoryBroadcast(BroadcastSuite):
    FOREIGN_ID = "0badcafe-1"  # the format of a memory id, from another epoch


# -- memory ids ------------------------------------------------------------------------------


async def test_ids_carry_the_hub_epoch_and_other_hubs_ids_are_unknown() -> None:
    async with Broadcaster() as first, Broadcaster() as second:
        old = await first.publish("t", "from the first process")
        new = await second.publish("t", "from the second")
        assert old.split("-")[0] != new.split("-")[0]
        assert [int(first_id.split("-")[1]) for first_id in (old, new)] == [1, 1]
        # An id from "before the restart" is not read as position 1 of the new history.
        async with second.subscribe("t", last_event_id=old) as events:
            reset, event = await take(events, 2)
    assert reset_data(reset) == {"reason": "unknown-id", "last_event_id": old}
    assert event.id == new


async def test_ids_increase_across_topics() -> None:
    async with Broadcaster() as hub:
        ids = [await hub.publish(topic, "x") for topic in ("a", "b", "a", "c")]
    assert [int(event_id.split("-")[1]) for event_id in ids] == [1, 2, 3, 4]


async def test_own_ids_are_kept_and_duplicates_refused() -> None:
    async with Broadcaster(history=2) as hub:
        assert await hub.publish("t", ServerSentEvent("a", id="mine-1")) == "mine-1"
        assert await hub.publish("t", {"data": "b", "id": 7}) == "7"
        with pytest.raises(ValueError, match="already in the history"):
            await hub.publish("t", ServerSentEvent("again", id="mine-1"))
        generated = await hub.publish("t", "c")  # evicts mine-1
        assert await hub.publish("t", ServerSentEvent("a2", id="mine-1")) == "mine-1"
        async with hub.subscribe("t", last_event_id=generated) as events:
            assert ids_of(await take(events, 1)) == ["mine-1"]


async def test_expired_versus_unknown_on_memory() -> None:
    async with Broadcaster(history=2) as hub:
        ids = [await hub.publish("t", number) for number in range(5)]
        backend = hub.backend
        assert isinstance(backend, MemoryBackend)
        future = f"{backend.epoch}-999"
        for last_event_id, reason in ((ids[0], "expired"), (future, "unknown-id")):
            async with hub.subscribe("t", last_event_id=last_event_id) as events:
                reset, *rest = await take(events, 3)
            assert reset_data(reset)["reason"] == reason
            assert ids_of(rest) == ids[-2:]


# -- the block policy on memory: publish waits ----------------------------------------------


async def test_block_makes_publish_wait_until_the_timeout() -> None:
    async with (
        Broadcaster() as hub,
        hub.subscribe(
            "t", max_buffer_size=1, on_overflow=Overflow.BLOCK, block_timeout=0.2
        ) as slow,
    ):
        await hub.publish("t", 0)
        start = anyio.current_time()
        with anyio.fail_after(5):
            await hub.publish("t", 1)
        assert anyio.current_time() - start >= 0.15
        assert hub.stats().disconnected == 1
        with anyio.fail_after(5):
            await hub.publish("t", 2)  # the slow one is gone: no wait any more
        assert ids_of(await drain(slow)) != []


async def test_cancelled_publish_disconnects_the_blocked_subscriber() -> None:
    async with (
        Broadcaster() as hub,
        hub.subscribe("t", max_buffer_size=1, on_overflow="block", block_timeout=60) as slow,
    ):
        first = await hub.publish("t", 0)
        with anyio.move_on_after(0.05):
            await hub.publish("t", 1)
        # Stored, but the blocked subscriber could not take it: rather than a silent gap, it
        # is disconnected, and resumes from its last event.
        assert hub.stats().disconnected == 1
        assert ids_of(await drain(slow)) == [first]
        async with hub.subscribe("t", last_event_id=first) as events:
            assert [event.data for event in await take(events, 1)] == ["1"]


async def test_block_during_a_replay_waits_for_the_queue() -> None:
    async with Broadcaster() as hub:
        ids = [await hub.publish("t", number) for number in range(10)]
        async with hub.subscribe(
            "t", last_event_id=ids[0], max_buffer_size=2, on_overflow="block", block_timeout=5
        ) as events:
            received: list[ServerSentEvent] = []

            async def read() -> None:
                for _ in range(9 + 6):
                    received.append(await events.receive())
                    await anyio.lowlevel.checkpoint()

            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    group.start_soon(read)
                    for number in range(6):
                        ids.append(await hub.publish("t", f"live{number}"))
        assert ids_of(received) == ids[1:]
        assert hub.stats().disconnected == 0


# -- lifetime --------------------------------------------------------------------------------


async def test_not_open_and_entered_once() -> None:
    hub = Broadcaster()
    with pytest.raises(RuntimeError, match="not open"):
        await hub.publish("t", "x")
    with pytest.raises(RuntimeError, match="not open"):
        async with hub.subscribe("t"):
            pass
    async with hub:
        with pytest.raises(RuntimeError, match="entered once"):
            async with hub:
                pass
    with pytest.raises(RuntimeError, match="entered once"):
        async with hub:
            pass


async def test_a_subscription_is_entered_once() -> None:
    async with Broadcaster() as hub:
        subscription = hub.subscribe("t")
        async with subscription:
            with pytest.raises(RuntimeError, match="only once"):
                async with subscription:
                    pass


async def test_an_error_in_the_body_propagates_unwrapped() -> None:
    with pytest.raises(KeyError):
        async with Broadcaster():
            raise KeyError("boom")


async def test_outer_cancellation_closes_the_hub() -> None:
    with anyio.move_on_after(0.05) as scope:
        async with Broadcaster() as hub, hub.subscribe("t"):
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    with pytest.raises(RuntimeError, match="closed"):
        await hub.publish("t", "x")


# -- argument checks -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"max_buffer_size": 0}, ValueError, "max_buffer_size must be >= 1"),
        ({"max_buffer_size": -3}, ValueError, "max_buffer_size"),
        ({"max_buffer_size": True}, TypeError, "max_buffer_size must be an int"),
        ({"max_buffer_size": 2.5}, TypeError, "max_buffer_size"),
        ({"max_buffer_size": math.inf}, TypeError, "max_buffer_size"),
        ({"max_buffer_size": "8"}, TypeError, "max_buffer_size must be an int, got '8'"),
        ({"max_buffer_size": None}, TypeError, "max_buffer_size must be an int, got None"),
        ({"on_overflow": "explode"}, ValueError, "'disconnect', 'drop_oldest', 'block'"),
        # The wrong type is a TypeError (issue 12), whatever the other arguments are.
        ({"on_overflow": None}, TypeError, "on_overflow must be a trio_sse.Overflow .*got None"),
        ({"on_overflow": 5}, TypeError, "on_overflow .*got 5"),
        ({"max_buffer_size": 0, "on_overflow": 5}, TypeError, "on_overflow"),
        ({"block_timeout": "1"}, TypeError, "block_timeout must be a number .*got '1'"),
        ({"block_timeout": True}, TypeError, "block_timeout"),
        ({"block_timeout": 1}, ValueError, "only applies to on_overflow='block'.*block_timeout=1"),
        ({"on_overflow": "block", "block_timeout": 0}, ValueError, "block_timeout must be > 0"),
        ({"on_overflow": "block", "block_timeout": -1}, ValueError, "block_timeout .*got -1"),
        ({"on_overflow": "block", "block_timeout": math.nan}, ValueError, "block_timeout"),
        ({"on_overflow": "block", "block_timeout": "1"}, TypeError, "block_timeout"),
        ({"last_event_id": 1.5}, TypeError, "last_event_id"),
    ],
)
async def test_subscribe_checks_its_arguments(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    hub = Broadcaster()
    with pytest.raises(error, match=match):
        hub.subscribe("t", **options)
    stream_options = {key: value for key, value in options.items() if key != "last_event_id"}
    if stream_options:
        with pytest.raises(error, match=match):
            hub.stream("t", None, **stream_options)


@pytest.mark.parametrize(
    ("history", "error", "match"),
    [
        (0, ValueError, "history must be >= 1 .*got 0"),
        (-5, ValueError, "history must be >= 1 .*got -5"),
        (True, TypeError, "history must be an int, got True"),
        (1.5, TypeError, "history must be an int, got 1.5"),
        ("10", TypeError, "history must be an int, got '10'"),
        (None, TypeError, "history must be an int, got None"),
    ],
)
async def test_history_is_checked(history: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Broadcaster(history=history)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("topic", "error", "match"),
    [
        ("", ValueError, "topic must not be empty"),
        (None, TypeError, "topic must be a str, got NoneType None"),
        (b"t", TypeError, "topic must be a str, got bytes b't'"),
        (7, TypeError, "topic must be a str, got int 7"),
    ],
)
async def test_topic_is_checked(topic: object, error: type[Exception], match: str) -> None:
    hub = Broadcaster()
    with pytest.raises(error, match=match):
        hub.subscribe(topic)  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        hub.stream(topic, None)  # type: ignore[arg-type]
    async with hub:
        with pytest.raises(error, match=match):
            await hub.publish(topic, "x")  # type: ignore[arg-type]


async def test_other_argument_checks() -> None:
    with pytest.raises(TypeError, match="lacks"):
        Broadcaster(backend=object())  # type: ignore[arg-type]
    hub = Broadcaster()
    with pytest.raises(ValueError, match="topic must not be empty"):
        hub.subscribe("")
    with pytest.raises(TypeError, match="topic must be a str"):
        hub.stream(b"t", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="request"):
        hub.stream("t", 3.5)
    async with hub:
        with pytest.raises(TypeError, match="pre-encoded bytes"):
            await hub.publish("t", b"data: x\n\n")
        with pytest.raises(TypeError, match="'colour'"):
            await hub.publish("t", {"data": "x", "colour": "red"})
        with pytest.raises(ValueError, match="CR or LF"):
            await hub.publish("t", {"data": "x", "event": "a\nb"})
        assert hub.stats().published == 0


async def test_overflow_names() -> None:
    assert Overflow("drop_oldest") is Overflow.DROP_OLDEST
    assert str(Overflow.BLOCK) == "block"
    assert isinstance(Overflow.DISCONNECT, str)
    assert Overflow.DISCONNECT.value == "disconnect"
    assert isinstance(Broadcaster().stats(), BroadcastStats)


# -- memory publishing -----------------------------------------------------------------------


# Where publish takes its checkpoint (first, none after delivering): test_publish_checkpoint.py


async def test_memory_publish_in_a_cancelled_scope_publishes_nothing() -> None:
    async with Broadcaster() as hub, hub.subscribe("t") as events:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await hub.publish("t", "x")
        assert scope.cancelled_caught
        assert events.statistics().current_buffer_used == 0
        assert hub.stats().published == 0


async def test_a_response_streams_hub_stream_directly() -> None:
    # No forwarding task or second channel: the response opens the subscription itself, so
    # its events are in the subscription's own channel, and leaving unsubscribes.
    async with Broadcaster() as hub:
        source = hub.stream("t")
        assert isinstance(source, DirectSource)
        app = app_for(lambda: EventSourceResponse(source))
        with anyio.fail_after(5):
            async with open_event_stream(app) as stream:
                await anyio.wait_all_tasks_blocked()
                assert hub.stats().subscribers == {"t": 1}
                ids = [await hub.publish("t", f"m{n}") for n in range(3)]
                events = await stream.read_events(3)
            await anyio.wait_all_tasks_blocked()
        assert [event.id for event in events] == ids
        assert hub.stats().subscribers == {}


async def test_hub_stream_still_works_as_a_producer_function() -> None:
    async with Broadcaster() as hub:
        send, receive = anyio.create_memory_object_stream[ServerSentEvent](8)
        producer = hub.stream("t")

        async def forward() -> None:
            await producer(send)  # as the demo calls it

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group, receive:
                group.start_soon(forward)
                await anyio.wait_all_tasks_blocked()
                event_id = await hub.publish("t", "via send")
                received = await receive.receive()
                group.cancel_scope.cancel()
    assert (received.id, received.data) == (event_id, "via send")


async def test_a_subscription_that_cannot_start_ends_the_body_with_a_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="trio_sse")
    async with Broadcaster() as hub:
        source = hub.stream("t")
    # The hub is closed now: subscribing raises (not an AccessError): logged, a 200 that ends.
    app = app_for(lambda: EventSourceResponse(source))
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            events = [event async for event in stream]
    assert events == []
    assert stream.complete
    assert "could not be opened" in caplog.text
