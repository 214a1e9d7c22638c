"""Redis URLs, the address an app's client is named by, and TLS options: checked without any
server (the connection paths are tested against real servers in test_redis_tls/unix/edges)."""

from __future__ import annotations

import ssl

import pytest

from trio_sse.backends import RedisBackend
from trio_sse.backends._redis_client import RedisURL, parse_redis_url

coredis = pytest.importorskip("coredis")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://", RedisURL("redis")),
        ("redis://h:7/3", RedisURL("redis", host="h", port=7, db=3)),
        ("redis://u:p%40ss@h/", RedisURL("redis", host="h", username="u", password="p@ss")),
        ("redis://:secret@[::1]:9", RedisURL("redis", host="::1", port=9, password="secret")),
        ("unix:///run/r.sock?db=2", RedisURL("unix", path="/run/r.sock", db=2)),
        (
            "unix://u:pw@/run/my%20r.sock",
            RedisURL("unix", path="/run/my r.sock", username="u", password="pw"),
        ),
        (
            "rediss://h?ssl_ca_certs=/ca.pem&ssl_cert_reqs=optional",
            RedisURL(
                "rediss", host="h", tls={"ssl_ca_certs": "/ca.pem", "ssl_cert_reqs": "optional"}
            ),
        ),
    ],
)
def test_redis_urls(url: str, expected: RedisURL) -> None:
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://u:hunter2@h:7/3", "redis://u@h:7/3"),
        ("redis://:hunter2@[::1]", "redis://[::1]:6379/0"),
        ("rediss://:hunter2@h?ssl_ca_certs=/secret/ca.pem", "rediss://h:6379/0"),
        ("unix://u:hunter2@/run/r.sock?db=1", "unix://u@/run/r.sock?db=1"),
    ],
)
def test_the_address_shows_no_password_and_no_query(url: str, shown: str) -> None:
    parsed = parse_redis_url(url)
    assert str(parsed) == shown
    assert "hunter2" not in repr(parsed)
    assert RedisBackend(url).address == shown


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://:hunter2@h", r"expected redis://, rediss:// \(TLS\), unix://"),
        ("redis://:hunter2@h:x", "bad port"),
        ("redis://:hunter2@h:99999", "bad port"),
        ("redis://:hunter2@h/x", "the database must be a number, got 'x'"),
        ("redis://:hunter2@h/٣", "the database must be a number"),
        (
            "redis://:hunter2@h?ssl_ca_certs=/ca.pem",
            r"unknown option 'ssl_ca_certs' \(expected: none\)",
        ),
        ("rediss://:hunter2@h?db=1", "unknown option 'db' \\(expected: ssl_ca_certs, "),
        ("rediss://:hunter2@h?ssl_cert_reqs=always", "ssl_cert_reqs must be required, optional"),
        ("rediss://:hunter2@h?ssl_check_hostname=yes", "ssl_check_hostname must be true or false"),
        ("unix://:hunter2@", "unix:// needs the socket's path"),
        ("unix://:hunter2@/s?db=one", "the database must be a number, got 'one'"),
        ("unix://:hunter2@/s?timeout=1", "unknown option 'timeout' \\(expected: db\\)"),
    ],
)
def test_malformed_urls_are_named_without_their_password(url: str, why: str) -> None:
    with pytest.raises(ValueError, match="invalid Redis URL") as caught:
        parse_redis_url(url)
    assert caught.match(why)
    assert "hunter2" not in str(caught.value)
    with pytest.raises(ValueError, match=why):
        RedisBackend(url)


def test_a_url_that_is_not_a_str() -> None:
    with pytest.raises(TypeError, match="the Redis URL must be a str, got bytes"):
        parse_redis_url(b"redis://h")  # type: ignore[arg-type]


def test_an_ssl_context_needs_a_rediss_url() -> None:
    context = ssl.create_default_context()
    with pytest.raises(
        ValueError, match="ssl_context needs a rediss:// URL, got 'redis://h:6379/0'"
    ):
        RedisBackend("redis://:hunter2@h", ssl_context=context)
    with pytest.raises(ValueError, match="got a redis\\+sentinel:// one"):
        RedisBackend("redis+sentinel://h/svc", ssl_context=context)
    with pytest.raises(ValueError, match="ssl_context is for a URL; the client given has its own"):
        RedisBackend(coredis.Redis(), ssl_context=context)
    assert RedisBackend("rediss://h", ssl_context=context).address == "rediss://h:6379/0"


def test_tls_options_make_the_context() -> None:
    default = parse_redis_url("rediss://h").ssl_context()
    assert default.verify_mode == ssl.CERT_REQUIRED
    assert default.check_hostname
    relaxed = parse_redis_url("rediss://h?ssl_cert_reqs=none").ssl_context()
    assert relaxed.verify_mode == ssl.CERT_NONE
    assert not relaxed.check_hostname
    unchecked = parse_redis_url("rediss://h?ssl_check_hostname=false").ssl_context()
    assert unchecked.verify_mode == ssl.CERT_REQUIRED
    assert not unchecked.check_hostname


def test_a_missing_client_certificate_file_fails_when_the_context_is_made(tmp_path: object) -> None:
    url = parse_redis_url(f"rediss://h?ssl_certfile={tmp_path}/none.pem")
    with pytest.raises(FileNotFoundError):
        url.ssl_context()


@pytest.mark.parametrize(
    ("client", "address"),
    [
        (lambda: coredis.Redis(), "redis://localhost:6379/0"),
        (lambda: coredis.Redis("h", 7, db=2, username="u", password="hunter2"), "redis://u@h:7/2"),
        (lambda: coredis.Redis("::1", 7), "redis://[::1]:7/0"),
        (lambda: coredis.Redis(unix_socket_path="/run/r.sock", db=1), "unix:///run/r.sock?db=1"),
        (
            lambda: coredis.Redis("h", 7, ssl_context=ssl.create_default_context()),
            "rediss://h:7/0",
        ),
        (lambda: coredis.Redis.from_url("redis://u:hunter2@h:8/4"), "redis://u@h:8/4"),
    ],
)
def test_an_apps_client_is_named_by_its_address(client: object, address: str) -> None:
    backend = RedisBackend(client())  # type: ignore[operator]
    assert backend.address == address
    assert "hunter2" not in repr(backend)
