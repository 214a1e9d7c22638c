"""``redis+cluster://`` URLs and the cluster key names: checked without any server."""

from __future__ import annotations

import ssl

import anyio
import pytest

from trio_sse.backends import RedisBackend
from trio_sse.backends._redis_cluster import TAGS, ClusterURL, cluster_key, parse_cluster_url

from .redis_cluster import key_slot

pytest.importorskip("coredis")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+cluster://h1,h2:7001,[::1]:5",
            ClusterURL((("h1", 6379), ("h2", 7001), ("::1", 5))),
        ),
        ("redis+cluster://u:p%40ss@h:1/", ClusterURL((("h", 1),), "u", "p@ss")),
        ("redis+cluster://:secret@[::1]", ClusterURL((("::1", 6379),), None, "secret")),
        ("redis+cluster://u@h", ClusterURL((("h", 6379),), "u", None)),
    ],
)
def test_cluster_urls(url: str, expected: ClusterURL) -> None:
    assert parse_cluster_url(url) == expected


def test_the_address_never_shows_the_password() -> None:
    backend = RedisBackend("redis+cluster://u:hunter2@h1,[::1]:7")
    assert backend.address == "redis+cluster://u@h1:6379,[::1]:7"
    assert "hunter2" not in repr(backend)
    assert "hunter2" not in repr(parse_cluster_url("redis+cluster://u:hunter2@h"))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+cluster://:hunter2@", "at least one node"),
        ("redis+cluster://:hunter2@h1,", "has no host"),
        ("redis+cluster://:hunter2@h:x", "bad port 'x'"),
        ("redis+cluster://:hunter2@h:0", "bad port '0'"),
        ("redis+cluster://:hunter2@h:70000", "bad port"),
        ("redis+cluster://:hunter2@[::1", "bad node address"),
        ("redis+cluster://:hunter2@[::1]x", "bad node address"),
        ("redis+cluster://:hunter2@h/1", "no database and no query options"),
        ("redis+cluster://:hunter2@h/?read_from_replicas=yes", "no database and no query"),
        ("redis+cluster://:hunter2@h?x=1", "no database and no query options"),
    ],
)
def test_bad_cluster_urls(url: str, why: str) -> None:
    with pytest.raises(ValueError, match="invalid Redis URL") as caught:
        RedisBackend(url)
    assert why in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_cluster_urls_take_no_ssl_context() -> None:
    with pytest.raises(ValueError, match="rediss://"):
        RedisBackend("redis+cluster://h", ssl_context=ssl.create_default_context())


def test_other_schemes_name_cluster() -> None:
    with pytest.raises(ValueError, match=r"redis\+cluster://"):
        RedisBackend("http://h")
    with pytest.raises(TypeError, match=r"redis\+cluster://.*RedisCluster"):
        RedisBackend(42)  # type: ignore[arg-type]


def test_keys_carry_one_of_sixteen_hash_tags() -> None:
    key = cluster_key("app:", "news")
    assert key.startswith("app:{") and key.endswith("}news")  # an ACL ~app:* covers it
    assert cluster_key("app:", "news") == key  # the same in every process
    slots = {key_slot(cluster_key("app:", f"t{n}")) for n in range(500)}
    assert len(slots) == TAGS
    # A prefix with a hash tag of its own pins every topic to its slot.
    assert {key_slot(cluster_key("{app}:", f"t{n}")) for n in range(50)} == {key_slot("app")}


def test_cluster_failover_errors_are_connection_errors() -> None:
    import coredis.exceptions as errors

    from trio_sse.backends import RedisConnectionError, RedisReplyError
    from trio_sse.backends._errors import translate

    where = "redis+cluster://h:6379"
    down = translate(errors.ClusterDownError("The cluster is down"), where, "XADD")
    assert isinstance(down, RedisConnectionError)
    assert str(down) == f"Redis at {where} is unavailable: CLUSTERDOWN The cluster is down"
    unmapped = translate(errors.RedisClusterError("Unable to map slot 5"), where, "XREAD")
    assert isinstance(unmapped, RedisConnectionError)
    assert str(unmapped) == f"Redis Cluster at {where} cannot serve XREAD now: Unable to map slot 5"
    crossed = translate(
        errors.ClusterCrossSlotError(command=b"XREAD", keys=(b"a", b"b")), where, ""
    )
    assert isinstance(crossed, RedisReplyError)  # a bug, not a failover


def test_only_resp3_xread_replies_are_read() -> None:
    from trio_sse.backends import RedisConnectionError
    from trio_sse.backends._redis_cluster_reader import streams

    assert streams(None) == []
    assert streams({b"k": [[b"1-0", [b"data", b"x"]]]}) == [(b"k", [[b"1-0", [b"data", b"x"]]])]
    with pytest.raises(RedisConnectionError, match="unexpected reply from Redis"):
        streams([[b"k", []]])


def test_a_slot_forgets_its_last_topic() -> None:
    from trio_sse.backends._redis_cluster_reader import ClusterReaders, Control

    async def dispatch(topic: str, found: object) -> None:
        raise AssertionError("nothing is read here")

    readers = ClusterReaders(
        None,  # type: ignore[arg-type]  # no client: nothing here talks to Redis
        {"a": ("0-0", (0, 0))},
        lambda topic: cluster_key("p:", topic).encode(),
        dispatch,
        Control(b"p:{0}\xffcontrol", lambda: "0-0", lambda found: None),
        address="redis+cluster://h:1",
        block_ms=1,
        count=1,
        timeout=1.0,
    )
    readers.add("a")
    slot = readers.slot_of("a")
    assert readers._topics(slot) == ["a"]
    readers.discard("a")
    readers.discard("a")  # a topic whose watch failed before it was added: no error
    assert readers._topics(slot) == [] and readers._members == {}
    assert not readers._needed(slot)  # "a" has tag 3, the control stream 0
    assert readers._needed(key_slot("p:{0}"))


@pytest.mark.parametrize("prefix", ["{}", "a{}:", "a{}{b}:"])
def test_a_prefix_that_makes_no_hash_tag_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="each topic would hash to a slot of its own"):
        RedisBackend("redis+cluster://h", prefix=prefix)
    RedisBackend("redis://h", prefix=prefix)  # no slots there


@pytest.mark.parametrize("prefix", ["a{", "a}{b}:", "{b}{}", "a{b"])
def test_prefixes_with_braces_keep_a_bounded_set_of_slots(prefix: str) -> None:
    RedisBackend("redis+cluster://h", prefix=prefix)
    assert len({key_slot(cluster_key(prefix, f"t{n}")) for n in range(300)}) <= TAGS


def test_an_apps_cluster_client_must_read_from_primaries() -> None:
    from coredis import RedisCluster

    from trio_sse.backends._redis_connections import ClosingClusterPool

    client: RedisCluster[bytes] = RedisCluster(
        "127.0.0.1", 7000, read_from_replicas=True, connection_pool_cls=ClosingClusterPool
    )
    try:
        with pytest.raises(ValueError, match="reads from primaries only"):
            RedisBackend(client)
    finally:
        pool = client.connection_pool
        assert isinstance(pool, ClosingClusterPool)
        pool.close_streams()  # never entered: coredis would leave them to the GC


def test_topic_patterns_are_refused_on_a_cluster() -> None:
    from trio_sse import Broadcaster

    with pytest.raises(ValueError, match="not available on Redis Cluster yet"):
        Broadcaster(RedisBackend("redis+cluster://h"), patterns=["orders/*"])


def test_an_error_reported_while_the_client_closes_is_dropped() -> None:
    # A reader failing while the hub leaves: the pool's error stream is closed already.
    from coredis import RedisCluster

    from trio_sse.backends._redis_cluster_reader import report
    from trio_sse.backends._redis_connections import ClosingClusterPool

    client: RedisCluster[bytes] = RedisCluster(
        "127.0.0.1", 7000, connection_pool_cls=ClosingClusterPool
    )
    pool = client.connection_pool
    assert isinstance(pool, ClosingClusterPool)
    pool.close_streams()
    with pytest.raises(anyio.ClosedResourceError):
        pool.cluster_layout.report_errors(None, ConnectionError("gone"))
    report(pool.cluster_layout, None, ConnectionError("gone"))
