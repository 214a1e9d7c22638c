"""Where the memory backend's ``publish`` takes its checkpoint (issue 18).

The checkpoint comes first: a cancellation pending, or delivered while the other ready tasks
run there, publishes nothing. Once past it, ``publish`` stores, delivers and returns with no
scheduling pass after, so the publisher never waits for its subscribers' own work: they
run at its next checkpoint, every one with the event already buffered. No timing here: each
test looks at who ran, and what is buffered, at the moment ``publish`` returns.
"""

from __future__ import annotations

import anyio
import anyio.abc
import pytest

from trio_sse import Broadcaster
from trio_sse._broadcast import Overflow
from trio_sse.backends import MemoryBackend

from .broadcast_suite import Events, take

pytestmark = pytest.mark.anyio

SUBSCRIBERS = 20
# Under trio each batch of ready tasks runs in order or reversed at random, so main's code
# (a pass after delivering) let the subscribers run first about one publish in two: enough
# rounds that a pass after delivering cannot go unseen.
ROUNDS = 10


async def _count_wake_ups(
    hub: Broadcaster,
    topic: str,
    woke: list[int],
    channels: list[Events],
    *,
    task_status: anyio.abc.TaskStatus[None],
) -> None:
    """A subscriber of *topic* that appends to *woke* each time it takes an event."""
    async with hub.subscribe(topic) as events:
        channels.append(events)
        task_status.started()
        async for _ in events:
            woke.append(1)


async def _publish_rounds(
    hub: Broadcaster, topic: str, woke: list[int], subscribers: int, buffered: list[Events]
) -> None:
    """Publish ``ROUNDS`` events one at a time: at each return none of the *subscribers* has
    run, and each of the *buffered* channels holds the event."""
    for number in range(ROUNDS):
        await anyio.wait_all_tasks_blocked()  # every subscriber took the last event
        assert len(woke) == number * subscribers
        await hub.publish(topic, f"e{number}")
        # Nothing awaited since the publish returned: the subscribers woken by it have not
        # run yet (they run at the publisher's next checkpoint), and each has the event.
        assert len(woke) == number * subscribers
        assert [c.statistics().current_buffer_used for c in buffered] == [1] * len(buffered)
    await anyio.wait_all_tasks_blocked()
    assert len(woke) == ROUNDS * subscribers


async def test_publish_returns_before_any_subscriber_runs_with_the_event_buffered() -> None:
    woke: list[int] = []
    channels: list[Events] = []
    with anyio.fail_after(10):
        async with Broadcaster() as hub, anyio.create_task_group() as group:
            for _ in range(SUBSCRIBERS):
                await group.start(_count_wake_ups, hub, "t", woke, channels)
            await _publish_rounds(hub, "t", woke, SUBSCRIBERS, channels)
            group.cancel_scope.cancel()


async def test_a_publish_through_a_pattern_takes_no_pass_after_delivering_either() -> None:
    # The topic's own subscribers have the event buffered; a pattern's stream gets it from
    # its merge task (``_topics``), which has not run either.
    woke: list[int] = []
    plain: list[Events] = []
    merged: list[Events] = []
    with anyio.fail_after(10):
        async with Broadcaster(patterns=["orders/*"]) as hub, anyio.create_task_group() as group:
            for _ in range(SUBSCRIBERS // 2):
                await group.start(_count_wake_ups, hub, "orders/1", woke, plain)
                await group.start(_count_wake_ups, hub, "orders/*", woke, merged)
            await _publish_rounds(hub, "orders/1", woke, SUBSCRIBERS, plain)
            group.cancel_scope.cancel()


async def _cancel(scope: anyio.CancelScope, events: Events, seen: list[int]) -> None:
    """Note how many events *events* holds, then cancel *scope*."""
    seen.append(events.statistics().current_buffer_used)
    scope.cancel()


async def test_a_cancel_delivered_during_the_checkpoint_publishes_nothing() -> None:
    # A task made ready just before the publish runs during its checkpoint (always under
    # asyncio; under trio in one batch out of two) and cancels the publisher's scope: the
    # event is then neither stored nor delivered, and the task saw nothing stored yet.
    seen: list[int] = []
    ids: list[str] = []
    backend = MemoryBackend()
    with anyio.fail_after(10):
        async with (
            Broadcaster(backend) as hub,
            hub.subscribe("t", max_buffer_size=100) as events,
            anyio.create_task_group() as group,
        ):
            for attempt in range(50):
                seen.clear()
                with anyio.CancelScope() as scope:
                    group.start_soon(_cancel, scope, events, seen)
                    ids.append(await hub.publish("t", f"e{attempt}"))
                    assert seen == [], "publish returned after other tasks ran"
                if scope.cancelled_caught:
                    break
                await anyio.wait_all_tasks_blocked()  # the canceller runs: its scope is gone
            else:
                pytest.fail("no publish was cancelled at its checkpoint in 50 attempts")
            assert seen == [len(ids)]  # it ran inside the checkpoint, before the store
            assert hub.stats().published == len(ids)
            ids.append(await hub.publish("t", "next"))
            received = await take(events, len(ids))
    assert [event.id for event in received] == ids  # nothing stored between them
    assert received[-1].id == f"{backend.epoch}-{len(ids)}"  # no sequence drawn either


async def test_back_to_back_publishes_keep_their_order() -> None:
    # Two publishers, each publishing back to back (their only checkpoints are the
    # publishes'): each one's events arrive in its order, every subscriber sees one order,
    # and it is the order of the ids.
    ids: dict[str, list[str]] = {"a": [], "b": []}

    async def publisher(hub: Broadcaster, name: str) -> None:
        for number in range(20):
            ids[name].append(await hub.publish("t", f"{name}{number}"))

    with anyio.fail_after(10):
        async with (
            Broadcaster() as hub,
            hub.subscribe("t", max_buffer_size=100) as first,
            hub.subscribe("t", max_buffer_size=100) as second,
        ):
            async with anyio.create_task_group() as group:
                group.start_soon(publisher, hub, "a")
                group.start_soon(publisher, hub, "b")
            received = [await take(events, 40) for events in (first, second)]
    assert [e.id for e in received[0]] == [e.id for e in received[1]]
    sequences = [int(str(e.id).rsplit("-", 1)[1]) for e in received[0]]
    assert sequences == list(range(1, 41))
    for name in ("a", "b"):
        mine = [e for e in received[0] if str(e.data).startswith(name)]
        assert [e.data for e in mine] == [f"{name}{n}" for n in range(20)]
        assert [e.id for e in mine] == ids[name]


@pytest.mark.parametrize("policy", [Overflow.DISCONNECT, Overflow.DROP_OLDEST])
async def test_a_full_subscriber_is_handled_by_its_policy_before_publish_returns(
    policy: Overflow,
) -> None:
    with anyio.fail_after(10):
        async with (
            Broadcaster() as hub,
            hub.subscribe("t", max_buffer_size=1, on_overflow=policy) as slow,
            hub.subscribe("t", max_buffer_size=4) as fast,
        ):
            await hub.publish("t", "one")
            await hub.publish("t", "two")
            stats = hub.stats()
            assert fast.statistics().current_buffer_used == 2
            if policy is Overflow.DISCONNECT:
                assert (stats.disconnected, stats.dropped) == (1, 0)
                assert [e.data async for e in slow] == ["one"]
            else:
                assert (stats.disconnected, stats.dropped) == (0, 1)
                assert slow.receive_nowait().data == "two"
