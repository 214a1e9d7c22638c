"""How coredis' (and the OS') errors become trio_sse's public Redis errors: each kind, with
the address named and Redis' reply code put back, checked without any server."""

from __future__ import annotations

import ssl

import pytest

from trio_sse.backends import (
    RedisConnectionError,
    RedisError,
    RedisNotReplicatedError,
    RedisReplyError,
)
from trio_sse.backends._errors import translate

errors = pytest.importorskip("coredis.exceptions")

WHERE = "redis://u@h:7/0"


def _caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        (errors.WrongTypeError("Operation against a key"), RedisReplyError, "WRONGTYPE Operation"),
        (errors.AuthorizationError("no permissions"), RedisReplyError, "NOPERM no permissions"),
        (errors.UnknownCommandError("unknown command 'x'"), RedisReplyError, "ERR unknown command"),
        (errors.ResponseError("plain"), RedisReplyError, "^plain$"),
        (errors.ReadOnlyError("replica"), RedisConnectionError, "is unavailable: READONLY replica"),
        (errors.TryAgainError("later"), RedisConnectionError, "is unavailable: TRYAGAIN later"),
        (errors.BusyLoadingError("loading"), RedisConnectionError, "is unavailable: LOADING"),
        (
            errors.AuthenticationFailureError("invalid password"),
            RedisConnectionError,
            "at redis://u@h:7/0 refused the connection: WRONGPASS invalid password",
        ),
        (
            errors.PrimaryNotFoundError("no primary for svc"),
            RedisConnectionError,
            "has no usable primary now: no primary for svc",
        ),
        (TimeoutError(), RedisConnectionError, "did not answer XADD in time"),
        (
            ConnectionRefusedError(111, "Connection refused"),
            RedisConnectionError,
            "cannot connect to Redis at redis://u@h:7/0: Connection refused",
        ),
        (
            _caused(errors.ConnectionError("Unable to establish a connection"), OSError()),
            RedisConnectionError,
            "cannot connect to Redis at .*: OSError",
        ),
        (
            _caused(errors.ConnectionError("Connection lost"), TimeoutError()),
            RedisConnectionError,
            "lost the connection to Redis at .* during XADD: no answer in time",
        ),
        (
            errors.ConnectionError("Connection lost"),
            RedisConnectionError,
            "during XADD: Connection lost",
        ),
        (
            _caused(
                errors.ConnectionError("Unable to establish"), ssl.SSLError(1, "WRONG_VERSION")
            ),
            RedisConnectionError,
            "cannot connect to Redis at .*: TLS: ",
        ),
        (errors.DataError("bad value"), RedisError, "Redis at redis://u@h:7/0, XADD: bad value"),
    ],
)
def test_each_kind_of_error(exc: Exception, kind: type[Exception], message: str) -> None:
    translated = translate(exc, WHERE, "XADD")
    assert type(translated) is kind
    with pytest.raises(kind, match=message):
        raise translated


def test_a_certificate_that_fails_verification_says_why() -> None:
    cause = ssl.SSLCertVerificationError(1, "certificate verify failed")
    cause.verify_message = "unable to get local issuer certificate"
    exc = _caused(errors.ConnectionError("Unable to establish a connection"), cause)
    translated = translate(exc, WHERE, "PING")  # type: ignore[arg-type]
    assert str(translated) == (
        "cannot connect to Redis at redis://u@h:7/0: "
        "TLS: certificate verify failed: unable to get local issuer certificate"
    )


def test_a_cycle_of_causes_ends() -> None:
    first = errors.ConnectionError("Connection lost")
    second = OSError(104, "Connection reset by peer")
    first.__cause__, second.__cause__ = second, first
    assert "during XREAD" in str(translate(first, WHERE, "XREAD"))


def test_an_exception_group_is_read_as_its_first_error() -> None:
    group = ExceptionGroup("tasks", [ExceptionGroup("inner", [TimeoutError()]), KeyError("x")])
    translated = translate(group, WHERE, "XRANGE")
    assert isinstance(translated, RedisConnectionError)
    assert "did not answer XRANGE in time" in str(translated)


def test_trio_sse_errors_and_bugs_pass_through() -> None:
    ours = RedisNotReplicatedError("not replicated", id="1-0", wanted=2)
    assert translate(ours, WHERE, "XADD") is ours
    assert (ours.id, ours.wanted) == ("1-0", 2)
    bug = KeyError("bug")
    assert translate(bug, WHERE, "XADD") is bug


def test_a_connection_error_is_also_the_builtin_one() -> None:
    translated = translate(ConnectionResetError(104, "reset"), WHERE, "XADD")
    assert isinstance(translated, ConnectionError)
    assert isinstance(translated, RedisError)
