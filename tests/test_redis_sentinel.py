"""Redis behind Sentinel (issue 15 item 3): the hub follows a failover; ``wait_replicas``.

Real processes on 127.0.0.1 (``tests/redis_sentinel.py``): a primary, its replica and three
sentinels. The primary is killed with ``SIGKILL`` while a publisher publishes: every publish
that returned is delivered exactly once, in order, to a live subscriber and to one that
resumes from its last id after the failover.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from trio_sse import Broadcaster
from trio_sse.backends import (
    RedisBackend,
    RedisConnectionError,
    RedisError,
    RedisNotReplicatedError,
)
from trio_sse.backends.redis import parse_stream_id

from .redis_sentinel import SERVICE, SentinelGroup

pytestmark = [pytest.mark.anyio, pytest.mark.service("redis-server", "redis-sentinel")]


def started(directory: Path) -> Iterator[SentinelGroup]:
    servers = SentinelGroup(directory)
    try:
        servers.start()
        yield servers
    finally:
        servers.stop()


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A group of its own: the test kills its primary."""
    yield from started(tmp_path)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """One group for the tests that leave it as they found it (a stopped replica restarted)."""
    yield from started(tmp_path_factory.mktemp("sentinel"))


def backend_for(group: SentinelGroup, **options: object) -> RedisBackend:
    return RedisBackend(
        group.url, prefix=f"sentinel-{uuid.uuid4().hex[:8]}:", connect_timeout=0.5,
        command_timeout=2, **options,  # type: ignore[arg-type]
    )  # fmt: skip


async def test_publish_and_subscribe_through_sentinel(shared: SentinelGroup) -> None:
    backend = backend_for(shared)
    assert repr(backend).startswith("RedisBackend('redis+sentinel://127.0.0.1:")
    with anyio.fail_after(20):
        async with Broadcaster(backend) as hub, hub.subscribe("t") as events:
            ids = [await hub.publish("t", f"e{n}") for n in range(3)]
            assert [(await events.receive()).id for _ in ids] == ids


async def test_wait_replicas_raises_when_no_replica_confirms(shared: SentinelGroup) -> None:
    backend = backend_for(shared, wait_replicas=1, wait_timeout=0.2)
    with anyio.fail_after(20):
        async with Broadcaster(backend) as hub, hub.subscribe("t") as events:
            confirmed = await hub.publish("t", "replicated")
            assert (await events.receive()).id == confirmed
            await anyio.to_thread.run_sync(shared.replica.stop)
            try:
                with pytest.raises(RedisNotReplicatedError) as caught:
                    await hub.publish("t", "primary only")
            finally:
                await anyio.to_thread.run_sync(shared.restart_replica)
            assert caught.value.wanted == 1
            assert "fewer than 1 replica(s) confirmed it within 200 ms" in str(caught.value)
            # Stored on the primary all the same, and delivered.
            assert (await events.receive()).id == caught.value.id
            # With the replica back, publishes are confirmed again.
            again = await hub.publish("t", "replicated again")
            assert (await events.receive()).id == again


@dataclass
class Outcome:
    """What the publisher saw: ids acknowledged (and, with ``wait_replicas``, confirmed
    replicated), ids stored but not confirmed, and publishes that failed."""

    acked: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    failed: int = 0


def in_order(ids: list[str]) -> bool:
    positions = [parse_stream_id(i) for i in ids]
    return all(p is not None for p in positions) and positions == sorted(positions)  # type: ignore[type-var]


async def publish_through_failover(
    hub: Broadcaster, group: SentinelGroup, outcome: Outcome
) -> None:
    """30 publishes, then ``SIGKILL`` of the primary while publishes go on (one is in flight
    when it dies), then publish until 10 more are stored."""
    for n in range(30):
        outcome.acked.append(await hub.publish("t", f"before {n}"))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(anyio.to_thread.run_sync, group.kill_primary)
        with contextlib.suppress(RedisError):
            for n in range(1000):  # until the kill ends one
                outcome.acked.append(await hub.publish("t", f"during {n}"))
    stored_after = 0
    while stored_after < 10:
        try:
            outcome.acked.append(await hub.publish("t", f"after {stored_after}"))
        except RedisNotReplicatedError as exc:
            outcome.unconfirmed.append(exc.id)  # stored on the primary, not confirmed
        except RedisConnectionError:
            outcome.failed += 1
            await anyio.sleep(0.1)
            continue
        stored_after += 1


async def failover_run(group: SentinelGroup, wait_replicas: int) -> Outcome:
    """Publish while the primary is killed; check what a live and a resuming subscriber get."""
    # One connection: a pool that lost its slot with a connection that died during WAIT
    # (coredis 6.9 without ClosingSentinelPool.release) would wait forever after the kill.
    backend = backend_for(group, wait_replicas=wait_replicas, wait_timeout=0.5, max_connections=1)
    outcome = Outcome()
    live: list[str] = []
    with anyio.fail_after(40):
        async with Broadcaster(backend, history=10_000) as hub:
            async with hub.subscribe("t") as events, anyio.create_task_group() as tasks:
                published = anyio.Event()
                caught_up = anyio.Event()

                async def collect() -> None:
                    async for event in events:
                        assert event.id is not None
                        live.append(event.id)
                        if published.is_set() and set(outcome.acked) <= set(live):
                            caught_up.set()

                tasks.start_soon(collect)
                await publish_through_failover(hub, group, outcome)
                published.set()
                if not set(outcome.acked) <= set(live):
                    with anyio.fail_after(10):
                        await caught_up.wait()
                tasks.cancel_scope.cancel()
            resume_from = outcome.acked[10]
            async with hub.subscribe("t", last_event_id=resume_from) as resumed:
                replayed: list[str] = []
                while not replayed or replayed[-1] != outcome.acked[-1]:
                    event = await resumed.receive()
                    assert event.id is not None
                    replayed.append(event.id)
    acked = outcome.acked
    assert len(live) == len(set(live)) and in_order(live), live
    assert len(replayed) == len(set(replayed)) and in_order(replayed), replayed
    assert [i for i in live if i in set(acked)] == acked, "an acknowledged event missed live"
    assert [i for i in replayed if i in set(acked)] == acked[11:], "a gap after resuming"
    return outcome


async def test_the_hub_follows_a_failover(group: SentinelGroup) -> None:
    outcome = await failover_run(group, wait_replicas=1)
    assert len(outcome.acked) >= 30  # the 30 before the kill, each confirmed by the replica
    assert outcome.failed > 0  # refused while no primary could be reached: reported
    # The promoted replica has no replica of its own: its writes are stored, not confirmed.
    assert len(outcome.unconfirmed) == 10
    assert group.primary_port() == group.replica.port


async def test_an_apps_sentinel_managed_client(shared: SentinelGroup) -> None:
    from coredis import Sentinel
    from coredis.connection import TCPLocation

    sentinel: Sentinel[bytes] = Sentinel(
        [TCPLocation("127.0.0.1", port) for port in shared.sentinel_ports]
    )
    client = sentinel.primary_for(SERVICE)
    backend = RedisBackend(client, prefix=f"app-{uuid.uuid4().hex[:8]}:")
    hosts = ",".join(f"127.0.0.1:{port}" for port in shared.sentinel_ports)
    assert backend.address == f"redis+sentinel://{hosts}/{SERVICE}/0"
    with anyio.fail_after(20):
        async with sentinel, Broadcaster(backend) as hub, hub.subscribe("t") as events:
            event_id = await hub.publish("t", "through the app's client")
            assert (await events.receive()).id == event_id


@pytest.mark.parametrize("wait_replicas", [0, 1])
async def test_a_publish_sent_twice_is_stored_once_but_not_confirmed(
    shared: SentinelGroup, monkeypatch: pytest.MonkeyPatch, wait_replicas: int
) -> None:
    """As when the client resends an XADD whose reply was lost: the second is refused, the
    entry is recognised; with wait_replicas the WAIT of the first is lost with its reply."""
    backend = backend_for(shared, wait_replicas=wait_replicas)
    add = backend._add

    async def twice(key: bytes, stream_id: str, fields: Sequence[bytes]) -> None:
        await add(key, stream_id, fields)
        await add(key, stream_id, fields)  # refused by Redis: that id is taken

    with anyio.fail_after(20):
        async with Broadcaster(backend) as hub, hub.subscribe("t") as events:
            monkeypatch.setattr(backend, "_add", twice)
            if wait_replicas:
                with pytest.raises(
                    RedisNotReplicatedError, match="its first reply was lost"
                ) as caught:
                    await hub.publish("t", "sent twice")
                event_id = caught.value.id
            else:
                event_id = await hub.publish("t", "sent twice")
            monkeypatch.undo()
            last = await hub.publish("t", "once")
            assert [(await events.receive()).id for _ in range(2)] == [event_id, last]
