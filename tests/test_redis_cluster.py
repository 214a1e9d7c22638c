"""Redis Cluster (issue 15 item 4): fan-out and resume across hubs on a real cluster.

Real processes on 127.0.0.1 (``tests/redis_cluster.py``): 3 primaries, 3 replicas, shared by
the tests of this module (each uses a prefix of its own). Two hubs stand for two processes,
each discovering the cluster from a different node; topics spread over several slots and
every primary.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import uuid
from collections.abc import Iterator, Sequence

import anyio
import anyio.to_thread
import pytest

from trio_sse import Broadcaster, ServerSentEvent
from trio_sse.backends import RedisBackend, RedisNotReplicatedError, RedisReplyError
from trio_sse.backends._redis_cluster import TAGS, cluster_key
from trio_sse.backends.redis import parse_stream_id

from .processes import free_port
from .redis_cluster import ClusterGroup, ask, key_slot

pytestmark = [pytest.mark.anyio, pytest.mark.service("redis-server", "redis-cli")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGroup]:
    group = ClusterGroup(tmp_path_factory.mktemp("cluster"))
    try:
        group.start()
        yield group
    finally:
        group.stop()


def backend_for(url: str, prefix: str, **options: object) -> RedisBackend:
    return RedisBackend(
        url, prefix=prefix, connect_timeout=0.5, command_timeout=2,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


def spread_topics(cluster: ClusterGroup, prefix: str, count: int) -> list[str]:
    """*count* topics of different slots, covering every primary."""
    topics: list[str] = []
    slots: set[int] = set()
    owners: set[int] = set()
    for n in range(200):
        topic = f"topic-{n}"
        slot = key_slot(cluster_key(prefix, topic))
        if slot not in slots:
            topics.append(topic)
            slots.add(slot)
            owners.add(cluster.owner(slot))
        if len(topics) >= count and len(owners) == 3:
            return topics
    raise AssertionError("the tags do not spread over the primaries")


async def test_fan_out_and_resume_across_two_hubs(cluster: ClusterGroup) -> None:
    prefix = f"c-{uuid.uuid4().hex[:8]}:"
    topics = spread_topics(cluster, prefix, 6)
    primaries = cluster.primaries()
    one = backend_for(cluster.url(primaries[0]), prefix)
    two = backend_for(cluster.url(primaries[1], primaries[2]), prefix)
    assert one.address == f"redis+cluster://127.0.0.1:{primaries[0]}"
    with anyio.fail_after(30):
        async with Broadcaster(one) as hub_one, Broadcaster(two) as hub_two:
            subscriptions = [hub_two.subscribe(topic) for topic in topics]
            streams = [await s.__aenter__() for s in subscriptions]
            try:
                sent = {t: [await hub_one.publish(t, f"{t} {n}") for n in range(3)] for t in topics}
                for topic, events in zip(topics, streams, strict=True):
                    got = [await events.receive() for _ in range(3)]
                    assert [e.id for e in got] == sent[topic]
                    assert [e.data for e in got] == [f"{topic} {n}" for n in range(3)]
                assert two._cluster is not None
                assert 1 < two._cluster.readers <= TAGS
            finally:
                for subscription in reversed(subscriptions):
                    await subscription.__aexit__(None, None, None)
            # Resuming on the other hub: exactly what followed, no gap, no duplicate.
            topic = topics[0]
            async with hub_one.subscribe(topic, last_event_id=sent[topic][0]) as resumed:
                assert [(await resumed.receive()).id for _ in range(2)] == sent[topic][1:]
                later = await hub_two.publish(topic, "later")
                assert (await resumed.receive()).id == later


async def test_an_apps_cluster_client(cluster: ClusterGroup) -> None:
    from coredis import RedisCluster

    from trio_sse.backends._redis_connections import ClosingClusterPool

    port = cluster.primaries()[0]
    client: RedisCluster[bytes] = RedisCluster(
        "127.0.0.1", port, connection_pool_cls=ClosingClusterPool
    )
    backend = RedisBackend(client, prefix=f"app-{uuid.uuid4().hex[:8]}:")
    assert backend.address == f"redis+cluster://127.0.0.1:{port}"
    with pytest.raises(ValueError, match="the client given has its own"):
        RedisBackend(client, ssl_context=ssl.create_default_context())
    try:
        with anyio.fail_after(20):
            async with client, Broadcaster(backend) as hub, hub.subscribe("t") as events:
                event_id = await hub.publish("t", "through the app's client")
                assert (await events.receive()).id == event_id
    finally:
        pool = client.connection_pool
        assert isinstance(pool, ClosingClusterPool)
        pool.close_streams()  # coredis never closes them (a ResourceWarning)


def same_slot_topics(prefix: str) -> tuple[str, str]:
    first = "s0"
    slot = key_slot(cluster_key(prefix, first))
    second = next(t for n in range(1, 200) if key_slot(cluster_key(prefix, t := f"s{n}")) == slot)
    return first, second


async def test_a_new_topic_of_a_read_slot_wakes_its_reader(cluster: ClusterGroup) -> None:
    """With read_block=30 the reader's XREAD only ends early if CLIENT UNBLOCK reached it."""
    prefix = f"w-{uuid.uuid4().hex[:8]}:"
    first, second = same_slot_topics(prefix)
    backend = backend_for(cluster.url(), prefix, read_block=30)
    with anyio.fail_after(20):
        async with Broadcaster(backend) as hub, hub.subscribe(first) as one:
            sent = await hub.publish(first, "one")
            assert (await one.receive()).id == sent
            async with hub.subscribe(second) as two:
                sent = await hub.publish(second, "two")
                assert (await two.receive()).id == sent
            # Theirs, and the control stream's (tag {0}: "s0" has tag 6).
            assert backend._cluster is not None and backend._cluster.readers == 2


async def test_a_reader_ends_with_its_slots_last_topic(cluster: ClusterGroup) -> None:
    prefix = f"e-{uuid.uuid4().hex[:8]}:"
    backend = backend_for(cluster.url(), prefix, read_block=0.05)

    def readers() -> int:
        assert backend._cluster is not None
        return backend._cluster.readers

    with anyio.fail_after(20):
        async with Broadcaster(backend) as hub:
            for _ in range(2):  # a slot read again after its reader ended
                async with hub.subscribe("t") as events:
                    sent = await hub.publish("t", "e")
                    assert (await events.receive()).id == sent
                    assert readers() == 2  # and the control stream's ("t" has tag 8)
                for _ in range(400):
                    if readers() == 1:
                        break
                    await anyio.sleep(0.01)
                assert readers() == 1


async def test_readers_follow_a_slot_that_moves(cluster: ClusterGroup) -> None:
    """A resharding: the blocked XREAD is answered MOVED, the reader goes to the new owner
    and resumes where it was; publishes follow coredis' redirections."""
    prefix = f"m-{uuid.uuid4().hex[:8]}:"
    topic = "moving"
    slot = key_slot(cluster_key(prefix, topic))
    one = backend_for(cluster.url(), prefix)
    two = backend_for(cluster.url(cluster.ports[-1]), prefix)
    with anyio.fail_after(30):
        async with Broadcaster(one) as hub, Broadcaster(two) as far:
            async with far.subscribe(topic) as events:
                before = [await hub.publish(topic, f"before {n}") for n in range(3)]
                assert [(await events.receive()).id for _ in before] == before
                owner = cluster.owner(slot)
                target = next(p for p in cluster.primaries() if p != owner)
                await anyio.to_thread.run_sync(cluster.move_slot, slot, target)
                after = [await hub.publish(topic, f"after {n}") for n in range(3)]
                assert [(await events.receive()).id for _ in after] == after
            async with far.subscribe(topic, last_event_id=before[0]) as resumed:
                assert [(await resumed.receive()).id for _ in range(5)] == before[1:] + after


def unblocks(port: int) -> int:
    """How many ``CLIENT UNBLOCK`` the node on *port* has run."""
    stats = ask(port, "INFO", "commandstats")
    assert isinstance(stats, str)
    for line in stats.splitlines():
        if line.startswith("cmdstat_client|unblock:calls="):
            return int(line.split("=")[1].split(",")[0])
    return 0


async def test_a_wake_that_cannot_reach_its_reader_gives_up(cluster: ClusterGroup) -> None:
    """A wake whose CLIENT UNBLOCK finds no blocked client (the XREAD not at Redis yet)
    tries again, a bounded number of times; one whose node is gone gives up at once."""
    from coredis.cluster._node import ClusterNodeLocation

    from trio_sse.backends._redis_cluster_reader import _Reader

    prefix = f"g-{uuid.uuid4().hex[:8]}:"
    backend = backend_for(cluster.url(), prefix)
    with anyio.fail_after(20):
        async with Broadcaster(backend):
            readers = backend._cluster
            assert readers is not None
            slot = readers.slot_of("t")
            port = cluster.owner(slot)
            idle = ask(port, "CLIENT", "ID")  # a connection closed since: nobody to unblock
            assert isinstance(idle, int)
            node = ClusterNodeLocation("127.0.0.1", port, server_type="primary")
            readers._readers[slot] = _Reader(slot, node, idle, frozenset())
            sent = unblocks(port)
            await readers.wake("t")
            assert unblocks(port) - sent == 50
            gone = ClusterNodeLocation("127.0.0.1", free_port(), server_type="primary")
            readers._readers[slot] = _Reader(slot, gone, idle, frozenset())
            await readers.wake("t")  # cannot connect: ignored
            del readers._readers[slot]


async def test_credentials_and_an_acl_without_client_unblock(
    cluster: ClusterGroup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_sse")
    user, secret = f"u{uuid.uuid4().hex[:6]}", "p@ss w0rd"
    for port in cluster.ports:
        ask(port, "ACL", "SETUSER", user, "on", f">{secret}", "~*", "+@all", "-client|unblock")
        ask(port, "ACL", "SETUSER", f"{user}-narrow", "on", f">{secret}", "~other:*", "+@all")
    url = f"redis+cluster://{user}:p%40ss%20w0rd@127.0.0.1:{cluster.ports[0]}"
    backend = backend_for(url, f"a-{uuid.uuid4().hex[:8]}:", read_block=0.1)
    assert secret not in repr(backend) and backend.address.startswith(f"redis+cluster://{user}@")
    with anyio.fail_after(20):
        async with Broadcaster(backend) as hub, hub.subscribe("t") as events:
            sent = await hub.publish("t", "despite the ACL")
            assert (await events.receive()).id == sent  # read_block bounds the wait
        assert "denies CLIENT UNBLOCK" in caplog.text
        narrow = url.replace(f"{user}:", f"{user}-narrow:")
        with pytest.raises(RedisReplyError, match="may not run XADD on the keys a-") as caught:
            async with Broadcaster(backend_for(narrow, f"a-{uuid.uuid4().hex[:8]}:")):
                pass  # pragma: no cover
    assert secret not in str(caught.value)


async def test_publishes_that_meet_a_taken_id_on_a_cluster(
    cluster: ClusterGroup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The routed single-key commands behind publish's retries: XRANGE (is the entry at
    that id this publish?), XREVRANGE (the top) and XINFO STREAM (trimmed past it?)."""
    prefix = f"i-{uuid.uuid4().hex[:8]}:"
    one = backend_for(cluster.url(), prefix)
    two = backend_for(cluster.url(cluster.ports[-1]), prefix)
    add = one._add

    async def twice(key: bytes, stream_id: str, fields: Sequence[bytes]) -> None:
        await add(key, stream_id, fields)
        await add(key, stream_id, fields)  # as a resent XADD: refused, then recognised

    with anyio.fail_after(20):
        async with Broadcaster(one) as hub, Broadcaster(two) as far, far.subscribe("t") as events:
            monkeypatch.setattr(one, "_add", twice)
            once = await hub.publish("t", "sent twice")
            monkeypatch.undo()
            future = await hub.publish("t", ServerSentEvent("ahead", id="99999999999999-0"))
            above = await far.publish("t", "its first guess is refused")  # below the top
            assert parse_stream_id(above) > parse_stream_id(future)  # type: ignore[operator]
            assert [(await events.receive()).id for _ in range(3)] == [once, future, above]


async def test_a_revocation_reaches_the_hubs_of_a_cluster(cluster: ClusterGroup) -> None:
    """The control stream ({0}) is read by the reader of its slot, topics or not."""
    from trio_sse import Access

    async def alice(topic: str) -> Access:
        return Access(("user", "alice"))

    prefix = f"r-{uuid.uuid4().hex[:8]}:"
    farewell = ServerSentEvent("bye", event="logout")
    one = backend_for(cluster.url(), prefix)
    two = backend_for(cluster.url(cluster.ports[-1]), prefix)
    with anyio.fail_after(20):
        async with Broadcaster(one) as hub, Broadcaster(two) as far:
            async with far.subscribe("t", authorize=alice) as events:
                sent = await hub.publish("t", "before")
                assert (await events.receive()).id == sent
                assert await hub.revoke_everywhere(("user", "alice"), farewell=farewell) == 0
                assert [event async for event in events] == [farewell]
            assert far.stats().revoked == 1


def blocked_readers(cluster: ClusterGroup) -> int:
    """Connections blocked in ``XREAD`` on the primaries now."""
    count = 0
    for port in cluster.primaries():
        clients = ask(port, "CLIENT", "LIST", "TYPE", "normal")
        assert isinstance(clients, str)
        fields = [dict(f.split("=", 1) for f in line.split()) for line in clients.splitlines()]
        count += sum(1 for f in fields if f["cmd"] == "xread" and "b" in f["flags"])
    return count


async def test_forty_topics_take_sixteen_reader_connections(cluster: ClusterGroup) -> None:
    prefix = f"n-{uuid.uuid4().hex[:8]}:"
    topics = [f"many-{n}" for n in range(40)]  # every one of the 16 tags
    backend = backend_for(cluster.url(), prefix, read_block=30)
    with anyio.fail_after(30):
        async with Broadcaster(backend) as hub, contextlib.AsyncExitStack() as stack:
            streams = [await stack.enter_async_context(hub.subscribe(t)) for t in topics]
            for topic, events in zip(topics, streams, strict=True):
                sent = await hub.publish(topic, "e")
                assert (await events.receive()).id == sent
            for _ in range(200):  # each reader blocks again after its last delivery
                if blocked_readers(cluster) == TAGS:
                    break
                await anyio.sleep(0.02)
            assert blocked_readers(cluster) == TAGS


async def kill_when_waiting(port: int) -> None:
    """``CLIENT KILL`` the normal clients of the node on *port* once one is blocked in
    ``WAIT``."""
    for _ in range(250):
        clients = ask(port, "CLIENT", "LIST", "TYPE", "normal")
        if isinstance(clients, str) and any(
            "cmd=wait" in line and "flags=b" in line for line in clients.splitlines()
        ):
            break
        await anyio.sleep(0.02)
    assert ask(port, "CLIENT", "KILL", "TYPE", "normal") != 0


async def test_a_connection_lost_during_wait_gives_its_pool_slot_back(
    cluster: ClusterGroup,
) -> None:
    """coredis 6.9 gives a slot back only for a connection that dies idle in the pool: each
    one lost while leased (its WAIT blocked, as with wait_replicas) shrank the node's pool,
    until a publish waited for a slot forever. Here the node's pool has one slot."""
    prefix = f"p-{uuid.uuid4().hex[:8]}:"
    owner = cluster.owner(key_slot(cluster_key(prefix, "t")))
    backend = backend_for(cluster.url(), prefix, max_connections=1, wait_replicas=2)
    with anyio.fail_after(20):
        async with Broadcaster(backend) as hub:
            for _ in range(2):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(kill_when_waiting, owner)
                    # Sent again on a new connection, recognised as stored, not confirmed.
                    with pytest.raises(RedisNotReplicatedError, match="first reply was lost"):
                        await hub.publish("t", "its WAIT cut")
