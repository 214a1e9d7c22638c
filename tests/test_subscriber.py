"""_subscriber on its own: a Subscriber driven with a Counters object and callables, no hub."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import anyio
import pytest

import trio_sse._subscriber as subscriber_module
from trio_sse import ServerSentEvent
from trio_sse._subscriber import Counters, Options, Overflow, Subscriber, check_options
from trio_sse.backends import Entry, Position

from .broadcast_suite import drain, ids_of, take

pytestmark = pytest.mark.anyio

Item = tuple[Position | None, ServerSentEvent]


def entry(number: int) -> Entry:
    return Entry((number, 0), ServerSentEvent(f"e{number}", id=str(number)))


class Owner:
    """What a hub gives a subscriber: counters, an unregister callable, a task starter."""

    def __init__(self) -> None:
        self.counters = Counters()
        self.unregistered: list[Subscriber] = []
        self.started: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self.made: list[Subscriber] = []

    def unregister(self, subscriber: Subscriber) -> None:
        self.unregistered.append(subscriber)

    def start_task(self, function: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.started.append(function)

    def make(
        self,
        max_buffer_size: int = 2,
        overflow: Overflow = Overflow.DISCONNECT,
        block_timeout: float = 5.0,
        *,
        replaying: bool = False,
    ) -> Subscriber:
        options = Options(max_buffer_size, overflow, block_timeout)
        made = Subscriber("t", options, self.counters, self.unregister, replaying=replaying)
        self.made.append(made)
        return made

    def close(self) -> None:
        """What a Subscription does on leaving: end, then close the receive end."""
        for made in self.made:
            made.end()
            made.receive.close()

    def totals(self) -> tuple[int, int, int, int]:
        c = self.counters
        return (c.published, c.delivered, c.dropped, c.disconnected)


@pytest.fixture
async def owner() -> AsyncIterator[Owner]:
    # Async: ending a subscriber whose replay task is running cancels a scope, in the loop.
    made = Owner()
    yield made
    made.close()


def test_the_subscriber_module_knows_no_hub() -> None:
    assert "Broadcaster" not in vars(subscriber_module)
    assert "hub" not in Subscriber.__slots__
    assert not hasattr(Counters(), "__dict__")  # slots: the hub's counters are a small object


# -- live delivery ---------------------------------------------------------------------------


async def test_live_events_are_buffered_and_counted(owner: Owner) -> None:
    subscriber = owner.make()
    assert subscriber.offer(entry(1)) and subscriber.offer(entry(2))
    assert owner.totals() == (0, 2, 0, 0)
    assert ids_of(await take(subscriber.receive, 2)) == ["1", "2"]
    assert owner.unregistered == []


async def test_disconnect_when_full_ends_after_the_buffered_events(owner: Owner) -> None:
    subscriber = owner.make(max_buffer_size=2)
    for number in range(1, 5):
        assert subscriber.offer(entry(number))
    assert owner.totals() == (0, 2, 0, 1)
    assert owner.unregistered == [subscriber]
    assert ids_of(await drain(subscriber.receive)) == ["1", "2"]


async def test_drop_oldest_keeps_the_newest(owner: Owner) -> None:
    subscriber = owner.make(max_buffer_size=2, overflow=Overflow.DROP_OLDEST)
    for number in range(1, 6):
        assert subscriber.offer(entry(number))
    assert owner.totals() == (0, 5, 3, 0)
    assert ids_of(await take(subscriber.receive, 2)) == ["4", "5"]
    assert owner.unregistered == []


async def test_block_waits_for_room(owner: Owner) -> None:
    subscriber = owner.make(max_buffer_size=1, overflow=Overflow.BLOCK)
    assert subscriber.offer(entry(1))
    assert not subscriber.offer(entry(2))  # full: the caller must wait
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(subscriber.wait_and_offer, entry(2), anyio.current_time() + 60)
            await anyio.wait_all_tasks_blocked()
            assert ids_of(await take(subscriber.receive, 2)) == ["1", "2"]
    assert owner.totals() == (0, 2, 0, 0)


async def test_block_disconnects_at_the_deadline(owner: Owner) -> None:
    subscriber = owner.make(max_buffer_size=1, overflow=Overflow.BLOCK, block_timeout=0.01)
    assert subscriber.offer(entry(1))
    assert not subscriber.offer(entry(2))
    with anyio.fail_after(5):
        await subscriber.wait_and_offer(entry(2), anyio.current_time() + 0.01)
    assert owner.totals() == (0, 1, 0, 1)
    assert owner.unregistered == [subscriber]
    assert ids_of(await drain(subscriber.receive)) == ["1"]


async def test_a_closed_receive_end_ends_the_subscriber_uncounted(owner: Owner) -> None:
    subscriber = owner.make()
    subscriber.receive.close()  # "nobody is listening"
    assert subscriber.offer(entry(1))
    assert subscriber.closed
    assert owner.totals() == (0, 0, 0, 0)
    assert owner.unregistered == [subscriber]
    assert subscriber.offer(entry(2))  # closed: ignored


async def test_end_is_idempotent_and_unregisters_once(owner: Owner) -> None:
    subscriber = owner.make()
    subscriber.end()
    subscriber.end()
    subscriber.disconnect()  # already ended: not counted
    assert owner.unregistered == [subscriber]
    assert owner.totals() == (0, 0, 0, 0)
    assert await drain(subscriber.receive) == []


# -- replay ----------------------------------------------------------------------------------


def live(subscriber: Subscriber) -> bool:
    return not subscriber.replaying


def replay_of(*numbers: int) -> deque[Item]:
    return deque((entry(number).position, entry(number).event) for number in numbers)


async def test_a_replay_that_fits_needs_no_task_and_skips_what_it_covered(owner: Owner) -> None:
    subscriber = owner.make(max_buffer_size=8, replaying=True)
    for number in (2, 3, 4):  # live events that arrive while the history is read
        assert subscriber.offer(entry(number))
    assert owner.totals() == (0, 0, 0, 0)  # queued, not delivered yet
    subscriber.begin_replay(replay_of(1, 2, 3), (3, 0), owner.start_task)
    assert owner.started == []
    assert not subscriber.replaying
    assert subscriber.offer(entry(5))
    assert ids_of(await take(subscriber.receive, 5)) == ["1", "2", "3", "4", "5"]
    assert owner.totals() == (0, 5, 0, 0)


async def test_a_replay_larger_than_the_buffer_runs_in_the_task_it_is_given(owner: Owner) -> None:
    subscriber = owner.make(max_buffer_size=2, replaying=True)
    subscriber.begin_replay(replay_of(1, 2, 3, 4, 5), (5, 0), owner.start_task)
    (catch_up,) = owner.started
    assert subscriber.replaying
    assert subscriber.offer(entry(6))  # queued behind the replay
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(catch_up)
            received = await take(subscriber.receive, 6)
    assert ids_of(received) == ["1", "2", "3", "4", "5", "6"]
    assert live(subscriber)
    assert owner.totals() == (0, 6, 0, 0)


async def test_a_full_queue_during_a_replay_follows_the_policy(owner: Owner) -> None:
    dropping = owner.make(max_buffer_size=2, overflow=Overflow.DROP_OLDEST, replaying=True)
    for number in (1, 2, 3):
        assert dropping.offer(entry(number))
    assert owner.counters.dropped == 1
    dropping.begin_replay(deque(), None, owner.start_task)
    assert ids_of(await take(dropping.receive, 2)) == ["2", "3"]

    disconnecting = owner.make(max_buffer_size=1, replaying=True)
    assert disconnecting.offer(entry(1)) and disconnecting.offer(entry(2))
    assert owner.counters.disconnected == 1
    assert owner.unregistered == [disconnecting]

    blocking = owner.make(max_buffer_size=1, overflow=Overflow.BLOCK, replaying=True)
    assert blocking.offer(entry(1))
    assert not blocking.offer(entry(2))


async def test_ending_cancels_the_replay_task(owner: Owner) -> None:
    subscriber = owner.make(max_buffer_size=1, replaying=True)
    subscriber.begin_replay(replay_of(1, 2, 3), (3, 0), owner.start_task)
    (catch_up,) = owner.started
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(catch_up)
            await anyio.wait_all_tasks_blocked()  # the replay waits for room
            subscriber.end()
    assert owner.unregistered == [subscriber]
    assert ids_of(await drain(subscriber.receive)) == ["1"]


# -- options ---------------------------------------------------------------------------------


def test_check_options_defaults() -> None:
    assert check_options(256, "disconnect", None) == Options(256, Overflow.DISCONNECT, 5.0)
    assert check_options(1, Overflow.BLOCK, 2) == Options(1, Overflow.BLOCK, 2.0)
    assert type(check_options(1, "block", 2).block_timeout) is float
