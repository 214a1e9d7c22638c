"""The Broadcaster's edges that the behavioural suite did not reach (found by branch coverage).

A backend serves one hub; publishes that contend for one topic keep their order; a consumer
that closes its channel ("nobody is listening") releases a publish waiting on it at once, and
stops a replay in progress.
"""

from __future__ import annotations

import anyio
import pytest

from trio_sse import Broadcaster
from trio_sse.backends import MemoryBackend

pytestmark = pytest.mark.anyio


async def test_a_backend_serves_one_hub() -> None:
    backend = MemoryBackend()
    with anyio.fail_after(5):
        async with Broadcaster(backend) as hub:
            with pytest.raises(RuntimeError, match="already serves a Broadcaster"):
                async with Broadcaster(backend):
                    pass
            # The first hub is not disturbed.
            async with hub.subscribe("t") as events:
                await hub.publish("t", "still")
                assert (await events.receive()).data == "still"


async def test_a_hub_describes_its_state() -> None:
    hub = Broadcaster(history=7)
    assert repr(hub).startswith("<Broadcaster new backend=")
    assert repr(hub).endswith(" history=7>")
    async with hub:
        assert repr(hub).startswith("<Broadcaster open ")
    assert repr(hub).startswith("<Broadcaster closed ")


async def test_publishes_waiting_for_one_topic_keep_their_order() -> None:
    # "two" waits for the block subscriber to make room; "three" then waits for the topic,
    # behind it, and must not overtake it.
    with anyio.fail_after(10):
        async with (
            Broadcaster() as hub,
            hub.subscribe("t", max_buffer_size=1, on_overflow="block", block_timeout=30) as events,
            anyio.create_task_group() as group,
        ):
            await hub.publish("t", "one")
            group.start_soon(hub.publish, "t", "two")
            await anyio.wait_all_tasks_blocked()
            group.start_soon(hub.publish, "t", "three")
            await anyio.wait_all_tasks_blocked()
            received = [(await events.receive()).data for _ in range(3)]
    assert received == ["one", "two", "three"]
    assert hub.stats().published == 3


async def test_closing_the_channel_releases_a_publish_waiting_on_it() -> None:
    with anyio.fail_after(10):  # block_timeout is 30 s: only the close can release it in time
        async with (
            Broadcaster() as hub,
            anyio.create_task_group() as group,
            hub.subscribe("t", max_buffer_size=1, on_overflow="block", block_timeout=30) as events,
        ):
            await hub.publish("t", "one")
            published = anyio.Event()

            async def publish_two() -> None:
                await hub.publish("t", "two")
                published.set()

            group.start_soon(publish_two)
            await anyio.wait_all_tasks_blocked()
            assert not published.is_set()
            events.close()  # nobody is listening any more
            await published.wait()
            stats = hub.stats()
    # Ended, not disconnected by its overflow policy: it left by itself.
    assert (stats.subscribers, stats.disconnected) == ({}, 0)


async def test_closing_the_channel_stops_a_replay_in_progress() -> None:
    with anyio.fail_after(10):
        async with Broadcaster() as hub:
            ids = [await hub.publish("t", number) for number in range(10)]
            async with hub.subscribe("t", last_event_id=ids[0], max_buffer_size=2) as events:
                # Two of the nine replayed events fit; the hub's replay task waits for room.
                assert (await events.receive()).data == "1"
                await anyio.wait_all_tasks_blocked()
                assert hub.stats().subscribers == {"t": 1}
                events.close()
                await anyio.wait_all_tasks_blocked()  # the replay task has noticed by now
                stats = hub.stats()
    assert (stats.subscribers, stats.disconnected) == ({}, 0)
