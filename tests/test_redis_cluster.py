"""Redis Cluster (issue 15 item 4): fan-out and resume across hubs on a real cluster.

Real processes on 127.0.0.1 (``tests/redis_cluster.py``): 3 primaries, 3 replicas, shared by
the tests of this module (each uses a prefix of its own). Two hubs stand for two processes,
each discovering the cluster from a different node; topics spread over several slots and
every primary.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator

import anyio
import pytest

from trio_sse import Broadcaster
from trio_sse.backends import RedisBackend
from trio_sse.backends._redis_cluster import TAGS, cluster_key

from .redis_cluster import ClusterGroup, key_slot

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
