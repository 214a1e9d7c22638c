"""``redis+sentinel://`` URLs, the ``wait_replicas``/``wait_timeout`` options and the errors
of a failover in progress: checked without any server."""

from __future__ import annotations

import math

import pytest

from trio_sse.backends import RedisBackend, RedisConnectionError
from trio_sse.backends._errors import translate
from trio_sse.backends._redis_sentinel import SentinelURL, parse_sentinel_url

pytest.importorskip("coredis")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+sentinel://h1,h2:26380,[::1]:5/svc",
            SentinelURL((("h1", 26379), ("h2", 26380), ("::1", 5)), "svc", 0),
        ),
        (
            "redis+sentinel://u:p%40ss@h:1/my%20svc/3",
            SentinelURL((("h", 1),), "my svc", 3, "u", "p@ss"),
        ),
        (
            "redis+sentinel://:secret@[::1]/svc/",
            SentinelURL((("::1", 26379),), "svc", 0, None, "secret"),
        ),
    ],
)
def test_sentinel_urls(url: str, expected: SentinelURL) -> None:
    assert parse_sentinel_url(url) == expected


def test_the_address_never_shows_the_password() -> None:
    backend = RedisBackend("redis+sentinel://u:hunter2@h1,[::1]:7/svc/2")
    assert backend.address == "redis+sentinel://u@h1:26379,[::1]:7/svc/2"
    assert "hunter2" not in repr(backend)
    assert "hunter2" not in repr(parse_sentinel_url("redis+sentinel://u:hunter2@h/svc"))


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+sentinel://:hunter2@/svc", "at least one sentinel"),
        ("redis+sentinel://:hunter2@h1,/svc", "has no host"),
        ("redis+sentinel://:hunter2@h:x/svc", "bad port 'x'"),
        ("redis+sentinel://:hunter2@h:0/svc", "bad port '0'"),
        ("redis+sentinel://:hunter2@h:70000/svc", "bad port"),
        ("redis+sentinel://:hunter2@[::1/svc", "bad sentinel address"),
        ("redis+sentinel://:hunter2@[::1]x/svc", "bad sentinel address"),
        ("redis+sentinel://:hunter2@h", "/service_name"),
        ("redis+sentinel://:hunter2@h/", "/service_name"),
        ("redis+sentinel://:hunter2@h/svc/1/2", "/service_name"),
        ("redis+sentinel://:hunter2@h/svc/x", "must be a number, got 'x'"),
        ("redis+sentinel://:hunter2@h/svc?db=1", "no query options"),
    ],
)
def test_bad_sentinel_urls(url: str, why: str) -> None:
    with pytest.raises(ValueError, match="invalid Redis URL") as caught:
        RedisBackend(url)
    assert why in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_sentinel_urls_take_no_ssl_context() -> None:
    import ssl

    with pytest.raises(ValueError, match="rediss://"):
        RedisBackend("redis+sentinel://h/svc", ssl_context=ssl.create_default_context())


def test_other_schemes_name_sentinel() -> None:
    with pytest.raises(ValueError, match=r"redis\+sentinel://"):
        RedisBackend("http://h/svc")
    with pytest.raises(TypeError, match=r"redis\+sentinel://"):
        RedisBackend(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"wait_replicas": -1}, ValueError, "wait_replicas must be >= 0"),
        ({"wait_replicas": 1.0}, TypeError, "wait_replicas must be an int"),
        ({"wait_replicas": True}, TypeError, "wait_replicas must be an int"),
        ({"wait_timeout": 0}, ValueError, "wait_timeout"),
        ({"wait_timeout": math.inf}, ValueError, "wait_timeout must be a finite"),
        ({"wait_timeout": "1"}, TypeError, "wait_timeout must be a number of seconds"),
    ],
)
def test_wait_options_are_checked(options: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        RedisBackend("redis://127.0.0.1/0", **options)  # type: ignore[arg-type]


def test_failover_errors_are_connection_errors() -> None:
    import coredis.exceptions as errors

    where = "redis+sentinel://h:26379/svc/0"
    for exc in (
        errors.PrimaryNotFoundError("No primary found for 'svc'"),
        errors.StalePrimaryError("Primary svc at h:1 reports a role of 'slave'"),
        errors.ReadOnlyError("You can't write against a read only replica."),
    ):
        translated = translate(exc, where, "XADD")
        assert isinstance(translated, RedisConnectionError), exc
        assert where in str(translated)
    assert "READONLY You can't write" in str(
        translate(errors.ReadOnlyError("You can't write"), where, "XADD")
    )
