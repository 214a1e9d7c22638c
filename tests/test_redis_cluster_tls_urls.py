"""``rediss+cluster://`` URLs and their TLS options: checked without any server."""

from __future__ import annotations

import ssl

import pytest

from trio_sse.backends import RedisBackend, RedisConnectionError
from trio_sse.backends._redis_cluster import ClusterURL, parse_cluster_url

pytest.importorskip("coredis")


def test_a_tls_cluster_url_with_options() -> None:
    url = parse_cluster_url(
        "rediss+cluster://u:p%40ss@h1,h2:7001/?ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=optional"
    )
    nodes = (("h1", 6379), ("h2", 7001))
    tls = {"ssl_ca_certs": "/etc/ca.pem", "ssl_cert_reqs": "optional"}
    assert url == ClusterURL(nodes, "u", "p@ss", tls)
    assert str(url) == "rediss+cluster://u@h1:6379,h2:7001"  # no password, no query


def test_a_query_right_after_the_hosts_may_hold_paths() -> None:
    url = parse_cluster_url("rediss+cluster://h1,[::1]:7?ssl_certfile=/a/c.pem&ssl_keyfile=/a/k")
    assert url.nodes == (("h1", 6379), ("::1", 7))
    assert url.tls == {"ssl_certfile": "/a/c.pem", "ssl_keyfile": "/a/k"}


def test_the_default_context_verifies_the_nodes_and_their_names() -> None:
    context = parse_cluster_url("rediss+cluster://h").ssl_context()
    assert context is not None
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    relaxed = parse_cluster_url("rediss+cluster://h?ssl_check_hostname=false").ssl_context()
    assert relaxed is not None and not relaxed.check_hostname
    assert parse_cluster_url("redis+cluster://h").ssl_context() is None


def test_the_backend_names_a_tls_cluster_without_its_password() -> None:
    backend = RedisBackend("rediss+cluster://u:hunter2@h1,h2:7?ssl_cert_reqs=none")
    assert backend.address == "rediss+cluster://u@h1:6379,h2:7"
    assert "hunter2" not in repr(backend)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("rediss+cluster://:hunter2@h?ssl_ca=x", "unknown option 'ssl_ca' (expected: ssl_ca_certs"),
        ("rediss+cluster://:hunter2@h/?db=1", "unknown option 'db'"),
        ("rediss+cluster://:hunter2@h?ssl_cert_reqs=maybe", "required, optional or none"),
        ("rediss+cluster://:hunter2@h?ssl_check_hostname=yes", "must be true or false"),
        ("rediss+cluster://:hunter2@h/1", "rediss+cluster:// takes no database"),
        ("rediss+cluster://:hunter2@", "at least one node"),
        ("redis+cluster://:hunter2@h?ssl_ca_certs=x", "no database and no query options"),
    ],
)
def test_bad_tls_cluster_urls(url: str, why: str) -> None:
    with pytest.raises(ValueError, match="invalid Redis URL") as caught:
        RedisBackend(url)
    assert why in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_an_ssl_context_needs_a_tls_cluster_url() -> None:
    context = ssl.create_default_context()
    RedisBackend("rediss+cluster://h", ssl_context=context)  # accepted
    for url in ("redis+cluster://:hunter2@h", "redis+sentinel://:hunter2@h/s"):
        with pytest.raises(ValueError, match=r"needs a rediss:// or rediss\+cluster:// URL") as e:
            RedisBackend(url, ssl_context=context)
        assert "hunter2" not in str(e.value)


def test_other_schemes_name_the_tls_cluster_scheme() -> None:
    with pytest.raises(ValueError, match=r"rediss\+cluster:// \(TLS\)"):
        RedisBackend("rediss+sentinel://h/s")
    with pytest.raises(TypeError, match=r"rediss\+cluster://"):
        RedisBackend(b"rediss+cluster://h")  # type: ignore[arg-type]


def test_an_unreachable_cluster_names_the_last_nodes_reason() -> None:
    import coredis.exceptions as errors

    from trio_sse.backends._errors import translate

    where = "rediss+cluster://127.0.0.1:7000"
    refused = errors.RedisClusterError("Redis Cluster cannot be connected.")
    refused.__cause__ = ssl.SSLCertVerificationError(1, "certificate verify failed")
    refused.__cause__.verify_message = "self-signed certificate in certificate chain"
    error = translate(refused, where, "CLUSTER SLOTS")
    assert isinstance(error, RedisConnectionError)
    assert str(error) == (
        f"cannot connect to Redis Cluster at {where}: TLS: certificate verify failed: "
        "self-signed certificate in certificate chain"
    )


def test_discovery_nodes_are_converted_once() -> None:
    from coredis.cluster._node import ClusterNodeLocation

    from trio_sse.backends._redis_connections import _closing, _ClosingNode

    node = ClusterNodeLocation("h", 7, "primary", "id", 5)
    closing = _closing(node)
    assert isinstance(closing, _ClosingNode)
    assert (closing.host, closing.port, closing.server_type, closing.node_id) == (
        "h",
        7,
        "primary",
        "id",
    )
    assert closing.priority == 5
    assert _closing(closing) is closing


@pytest.mark.anyio
async def test_a_cluster_nobody_listens_at_is_a_connection_error() -> None:
    import anyio

    from trio_sse import Broadcaster

    from .processes import free_port

    where = f"redis+cluster://127.0.0.1:{free_port()}"
    backend = RedisBackend(where.replace("://", "://:hunter2@"), connect_timeout=1)
    with anyio.fail_after(10), pytest.raises(RedisConnectionError) as info:
        async with Broadcaster(backend):
            pass
    message = str(info.value)
    assert message.startswith(f"cannot connect to Redis Cluster at {where}: ")
    # What the OS said, as the event loop words it: "Connection refused", "Connect call failed".
    assert message.endswith(
        (
            "Connection refused",
            "Connect call failed ('127.0.0.1', " + where.rpartition(":")[2] + ")",
        )
    )
    assert "hunter2" not in message
