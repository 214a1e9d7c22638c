"""Redis Cluster failover (issue 15 item 4): a primary killed, its replica promoted.

A cluster of its own per test (``tests/redis_cluster.py``: 3 primaries, 3 replicas,
``cluster-node-timeout`` 1000 ms). One hub publishes with ``wait_replicas=1``, another
follows two topics: one served by the primary that is killed with ``SIGKILL``, one served by
another. Every publish that returned is delivered exactly once, in order, live and to a
subscriber that resumes after the failover; the other topic goes on as well.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from trio_sse import Broadcaster, ServerSentEvent
from trio_sse.backends import (
    RedisBackend,
    RedisConnectionError,
    RedisError,
    RedisNotReplicatedError,
)
from trio_sse.backends._redis_cluster import cluster_key
from trio_sse.backends.redis import parse_stream_id

from .redis_cluster import ClusterGroup, key_slot

pytestmark = [pytest.mark.anyio, pytest.mark.service("redis-server", "redis-cli")]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ClusterGroup]:
    group = ClusterGroup(tmp_path)
    try:
        group.start()
        yield group
    finally:
        group.stop()


@dataclass
class Outcome:
    """What the publisher saw on the topic of the killed primary."""

    acked: list[str] = field(default_factory=list)  # stored and confirmed by a replica
    unconfirmed: list[str] = field(default_factory=list)  # stored, not confirmed
    failed: int = 0
    failover_seconds: float = 0.0  # from the kill to the first publish stored after it


def two_topics(cluster: ClusterGroup, prefix: str) -> tuple[str, str, int, int]:
    """A topic on one primary and one on another: (doomed, other, its slot, its owner)."""
    found: dict[int, tuple[str, int]] = {}
    for n in range(100):
        topic = f"t{n}"
        slot = key_slot(cluster_key(prefix, topic))
        found.setdefault(cluster.owner(slot), (topic, slot))
        if len(found) == 2:
            (doomed, slot), (other, _) = found.values()
            return doomed, other, slot, cluster.owner(slot)
    raise AssertionError("all topics on one primary")


def in_order(ids: list[str]) -> bool:
    positions = [parse_stream_id(i) for i in ids]
    return all(p is not None for p in positions) and positions == sorted(positions)  # type: ignore[type-var]


async def publish_until_stored(hub: Broadcaster, topic: str, outcome: Outcome, count: int) -> None:
    stored = 0
    while stored < count:
        try:
            outcome.acked.append(await hub.publish(topic, f"after {stored}"))
        except RedisNotReplicatedError as exc:
            outcome.unconfirmed.append(exc.id)  # the promoted replica has no replica
        except RedisConnectionError:
            outcome.failed += 1
            await anyio.sleep(0.1)
            continue
        stored += 1


async def publish_through_failover(
    hub: Broadcaster, cluster: ClusterGroup, topic: str, primary: int, outcome: Outcome
) -> None:
    """20 publishes, then ``SIGKILL`` of *primary* while publishes go on, then until 5 more
    are stored."""
    for n in range(20):
        outcome.acked.append(await hub.publish(topic, f"before {n}"))
    killed = time.monotonic()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(anyio.to_thread.run_sync, cluster.kill, primary)
        with contextlib.suppress(RedisError):
            for n in range(1000):  # until the kill ends one
                outcome.acked.append(await hub.publish(topic, f"during {n}"))
    await publish_until_stored(hub, topic, outcome, 1)
    outcome.failover_seconds = time.monotonic() - killed
    await publish_until_stored(hub, topic, outcome, 4)


@dataclass
class Seen:
    """The ids a subscriber received; :meth:`until` waits for some (at most 15 s)."""

    ids: list[str] = field(default_factory=list)
    wanted: set[str] = field(default_factory=set)
    done: anyio.Event = field(default_factory=anyio.Event)

    async def collect(self, events: AsyncIterable[ServerSentEvent]) -> None:
        async for event in events:
            assert event.id is not None
            self.ids.append(event.id)
            if self.wanted and self.wanted <= set(self.ids):
                self.done.set()

    async def until(self, ids: Iterable[str]) -> None:
        self.wanted.update(ids)
        if not self.wanted <= set(self.ids):
            with anyio.fail_after(15):
                await self.done.wait()


async def follow_failover(
    cluster: ClusterGroup, hub: Broadcaster, far: Broadcaster, topics: tuple[str, str, int, int]
) -> tuple[Outcome, Seen]:
    """Publish on *hub* while the primary of the first topic dies; *far* follows both."""
    doomed, other, slot, primary = topics
    outcome, live, live_other = Outcome(), Seen(), Seen()
    async with (
        far.subscribe(doomed) as events,
        far.subscribe(other) as other_events,
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(live.collect, events)
        tasks.start_soon(live_other.collect, other_events)
        first = await hub.publish(other, "before")
        await publish_through_failover(hub, cluster, doomed, primary, outcome)
        promoted = await anyio.to_thread.run_sync(cluster.wait_promoted, slot, primary)
        assert promoted != primary
        last = await hub.publish(other, "after")
        await live.until(outcome.acked + outcome.unconfirmed)
        await live_other.until([first, last])
        tasks.cancel_scope.cancel()
    assert live_other.ids == [first, last]  # the other primary's topic went on
    return outcome, live


async def test_subscribers_follow_a_primary_failover(cluster: ClusterGroup) -> None:
    prefix = f"f-{uuid.uuid4().hex[:8]}:"
    topics = two_topics(cluster, prefix)
    survivors = [port for port in cluster.primaries() if port != topics[3]]
    publisher = RedisBackend(
        cluster.url(survivors[0]), prefix=prefix, connect_timeout=0.5, command_timeout=2,
        wait_replicas=1, wait_timeout=0.3,
    )  # fmt: skip
    follower = RedisBackend(
        cluster.url(survivors[1]), prefix=prefix, connect_timeout=0.5, command_timeout=2
    )
    with anyio.fail_after(50):
        async with Broadcaster(publisher) as hub, Broadcaster(follower, history=10_000) as far:
            outcome, live = await follow_failover(cluster, hub, far, topics)
            async with far.subscribe(topics[0], last_event_id=outcome.acked[5]) as resumed:
                replayed: list[str] = []
                while not replayed or replayed[-1] != live.ids[-1]:
                    event = await resumed.receive()
                    assert event.id is not None
                    replayed.append(event.id)
    acked = outcome.acked
    assert len(live.ids) == len(set(live.ids)) and in_order(live.ids), live.ids
    assert len(replayed) == len(set(replayed)) and in_order(replayed), replayed
    assert [i for i in live.ids if i in set(acked)] == acked, "an acknowledged event missed live"
    assert [i for i in replayed if i in set(acked)] == acked[6:], "a gap after resuming"
    assert len(outcome.unconfirmed) == 5  # stored on the promoted replica, which has none
    assert outcome.failed > 0  # refused while no primary served the slot: reported
    print(f"failover: {outcome.failover_seconds:.2f} s, {outcome.failed} publishes refused")
