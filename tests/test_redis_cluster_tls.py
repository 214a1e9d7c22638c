"""``rediss+cluster://``: a real Redis Cluster that speaks TLS only (issue: managed clusters).

One cluster for the module (``tests/redis_cluster.py`` with a :class:`ClusterTLS`): 3 primaries
and 3 replicas, each with ``--port 0`` (no plain TCP at all: every connection of the client,
its cluster discovery and its per-slot readers included, must be TLS to work), ``--tls-cluster
yes``, ``--tls-replication yes`` and ``--tls-auth-clients yes`` (a client certificate is
required), with certificates made here by ``trustme``: a CA the nodes' certificates come from
and one that signed nothing here.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import anyio
import anyio.to_thread
import pytest
import trustme

from trio_sse import Broadcaster
from trio_sse.backends import RedisBackend, RedisConnectionError
from trio_sse.backends._redis_cluster import cluster_key

from .broadcast_suite import ids_of, take
from .redis_cluster import ClusterGroup, ClusterTLS, key_slot
from .redis_server import ServerTLS

pytestmark = [pytest.mark.anyio, pytest.mark.service("redis-server", "redis-cli")]


@dataclass(frozen=True)
class Certificates:
    ca: trustme.CA
    other_ca_file: Path  # a CA that signed nothing here
    cluster: ClusterTLS


def _certificates(folder: Path) -> Certificates:
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(folder / "ca.pem")
    other.cert_pem.write_to_path(folder / "other-ca.pem")
    # The nodes' certificate serves their clients, and is their client certificate towards
    # the other nodes (cluster bus, replication): trustme's carry both usages.
    node = ca.issue_cert("127.0.0.1", "localhost")
    node.cert_chain_pems[0].write_to_path(folder / "node.pem")
    node.private_key_pem.write_to_path(folder / "node.key")
    client = ca.issue_cert("client.test")
    client.cert_chain_pems[0].write_to_path(folder / "client.pem")
    client.private_key_pem.write_to_path(folder / "client.key")
    server = ServerTLS(folder / "node.pem", folder / "node.key", folder / "ca.pem", True)
    tls = ClusterTLS(server, folder / "client.pem", folder / "client.key")
    return Certificates(ca, folder / "other-ca.pem", tls)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return _certificates(tmp_path_factory.mktemp("cluster-tls"))


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, certificates: Certificates
) -> Iterator[ClusterGroup]:
    group = ClusterGroup(tmp_path_factory.mktemp("tls-cluster"), tls=certificates.cluster)
    try:
        group.start()
        yield group
    finally:
        group.stop()


def url_for(cluster: ClusterGroup, *ports: int, **options: Path) -> str:
    query = "&".join(f"{name}={quote(str(value))}" for name, value in options.items())
    return cluster.url(*ports) + (f"/?{query}" if query else "")


def client_options(certificates: Certificates) -> dict[str, Path]:
    tls = certificates.cluster
    return {
        "ssl_ca_certs": tls.server.ca_file,
        "ssl_certfile": tls.client_cert,
        "ssl_keyfile": tls.client_key,
    }


def backend_for(url: str, prefix: str, **options: object) -> RedisBackend:
    return RedisBackend(
        url, prefix=prefix, connect_timeout=2, command_timeout=5,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


def topics_on_every_primary(cluster: ClusterGroup, prefix: str) -> list[str]:
    """Topics of different slots (so different readers), covering the three primaries."""
    topics: list[str] = []
    slots: set[int] = set()
    owners: set[int] = set()
    for n in range(200):
        slot = key_slot(cluster_key(prefix, topic := f"topic-{n}"))
        owner = cluster.owner(slot)
        if slot not in slots and owner not in owners:
            topics.append(topic)
            slots.add(slot)
            owners.add(owner)
        if len(owners) == 3:
            return topics
    raise AssertionError("the tags do not spread over the primaries")


async def test_fan_out_and_resume_across_two_hubs_over_tls(
    cluster: ClusterGroup, certificates: Certificates
) -> None:
    prefix = f"tls-{uuid.uuid4().hex[:8]}:"
    topics = topics_on_every_primary(cluster, prefix)
    primaries = cluster.primaries()
    options = client_options(certificates)
    one = backend_for(url_for(cluster, primaries[0], **options), prefix)
    two = backend_for(url_for(cluster, primaries[1], primaries[2], **options), prefix)
    assert one.address == f"rediss+cluster://127.0.0.1:{primaries[0]}"
    with anyio.fail_after(30):
        async with Broadcaster(one) as hub_one, Broadcaster(two) as hub_two:
            for topic in topics:
                async with hub_two.subscribe(topic) as events:
                    sent = [await hub_one.publish(topic, f"{topic} {n}") for n in range(2)]
                    assert ids_of(await take(events, 2)) == sent
                later = await hub_two.publish(topic, f"{topic} later")
                async with hub_one.subscribe(topic, last_event_id=sent[-1]) as resumed:
                    [event] = await take(resumed, 1)
                assert (event.id, event.data) == (later, f"{topic} later")


async def test_an_ssl_context(cluster: ClusterGroup, certificates: Certificates) -> None:
    context = ssl.create_default_context()
    certificates.ca.configure_trust(context)
    tls = certificates.cluster
    context.load_cert_chain(tls.client_cert, tls.client_key)
    backend = backend_for(cluster.url(), f"ctx-{uuid.uuid4().hex[:8]}:", ssl_context=context)
    with anyio.fail_after(20):
        async with Broadcaster(backend) as hub, hub.subscribe("t") as events:
            first = await hub.publish("t", "with the app's context")
            assert ids_of(await take(events, 1)) == [first]


async def test_a_wrong_ca_is_a_clear_connection_error(
    cluster: ClusterGroup, certificates: Certificates
) -> None:
    port = cluster.primaries()[0]
    options = client_options(certificates) | {"ssl_ca_certs": certificates.other_ca_file}
    url = url_for(cluster, port, **options).replace("://", "://:hunter2@")
    with anyio.fail_after(20), pytest.raises(RedisConnectionError) as info:
        async with Broadcaster(backend_for(url, "wrong-ca:")):
            pass
    message = str(info.value)
    assert f"rediss+cluster://127.0.0.1:{port}" in message
    assert "certificate verify failed" in message
    assert "hunter2" not in message


async def test_without_a_client_certificate_the_nodes_refuse(
    cluster: ClusterGroup, certificates: Certificates
) -> None:
    port = cluster.primaries()[0]
    url = url_for(cluster, port, ssl_ca_certs=certificates.cluster.server.ca_file)
    with anyio.fail_after(20), pytest.raises(RedisConnectionError) as info:
        async with Broadcaster(backend_for(url, "no-cert:")):
            pass
    assert f"rediss+cluster://127.0.0.1:{port}" in str(info.value)


async def test_an_apps_tls_cluster_client(
    cluster: ClusterGroup, certificates: Certificates
) -> None:
    from coredis import RedisCluster

    from trio_sse.backends._redis_connections import ClosingClusterPool

    port = cluster.primaries()[0]
    client: RedisCluster[bytes] = RedisCluster(
        "127.0.0.1", port, ssl_context=certificates.cluster.context(),
        connection_pool_cls=ClosingClusterPool,
    )  # fmt: skip
    backend = RedisBackend(client, prefix=f"app-{uuid.uuid4().hex[:8]}:")
    assert backend.address == f"rediss+cluster://127.0.0.1:{port}"
    try:
        with anyio.fail_after(20):
            async with client, Broadcaster(backend) as hub, hub.subscribe("t") as events:
                event_id = await hub.publish("t", "through the app's TLS client")
                assert ids_of(await take(events, 1)) == [event_id]
    finally:
        pool = client.connection_pool
        assert isinstance(pool, ClosingClusterPool)
        pool.close_streams()  # coredis never closes them (a ResourceWarning)


async def test_a_reader_follows_a_slot_that_moves_over_tls(
    cluster: ClusterGroup, certificates: Certificates
) -> None:
    """After ``MOVED`` the reader's new connection, to the slot's new owner, is TLS too (the
    nodes speak nothing else), and it resumes where it was."""
    prefix = f"tls-m-{uuid.uuid4().hex[:8]}:"
    topic = "moving"
    slot = key_slot(cluster_key(prefix, topic))
    url = url_for(cluster, **client_options(certificates))
    with anyio.fail_after(30):
        async with Broadcaster(backend_for(url, prefix)) as hub, hub.subscribe(topic) as events:
            before = await hub.publish(topic, "before")
            assert ids_of(await take(events, 1)) == [before]
            owner = cluster.owner(slot)
            target = next(p for p in cluster.primaries() if p != owner)
            await anyio.to_thread.run_sync(cluster.move_slot, slot, target)
            assert cluster.owner(slot) == target
            after = await hub.publish(topic, "after")
            assert ids_of(await take(events, 1)) == [after]
