"""The Redis backend's public errors, and the translation of coredis' errors into them.

Users of :class:`~trio_sse.backends.RedisBackend` catch trio_sse's types, never coredis':

* :class:`RedisConnectionError` (also a built-in :class:`ConnectionError`): Redis could not be
  reached, refused the credentials, the connection was lost, a reply did not come in time, or
  Redis cannot serve yet (``LOADING`` after a restart, ``BUSY``, ``MASTERDOWN``). Its message
  names the address (the URL without its password), never the password.
* :class:`RedisReplyError`: Redis answered a command with an error (``WRONGTYPE``, ``NOPERM``).
* :class:`RedisNotReplicatedError` (a ``RedisError``): a publish with ``wait_replicas=N`` was
  stored on the primary, but fewer than N replicas confirmed it in time.

Behind Sentinel, "no primary known", "the primary named is a replica now" and ``READONLY``
(a write reached a demoted primary) are ``RedisConnectionError``: a failover in progress; so
is ``CLUSTERDOWN`` in a Redis Cluster (a slot without primary for a while), and coredis'
cluster errors (no node known for a slot, redirections exhausted).

Standard library only at import: coredis is imported when a translation needs it (the
``redis`` extra), so ``trio_sse.backends`` imports without it. Nothing here is a checkpoint.
"""

from __future__ import annotations

import ssl

__all__ = [
    "RedisConnectionError",
    "RedisError",
    "RedisNotReplicatedError",
    "RedisReplyError",
    "translate",
]


class RedisError(Exception):
    """Base class of the Redis backend's errors."""


class RedisConnectionError(RedisError, ConnectionError):
    """Redis could not be reached, the connection was lost, or Redis did not answer in time."""


class RedisReplyError(RedisError):
    """Redis answered a command with an error reply (``WRONGTYPE ...``, ``NOPERM ...``)."""


class RedisNotReplicatedError(RedisError):
    """A publish was stored on the primary (under the stream id ``id``) but fewer than
    ``wanted`` replicas confirmed it within ``wait_timeout``: a failover now may lose it."""

    def __init__(self, message: str, *, id: str, wanted: int) -> None:
        super().__init__(message)
        self.id = id
        self.wanted = wanted


# Error replies that mean "not now", not "wrong command".
_UNAVAILABLE = ("LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "READONLY", "CLUSTERDOWN")


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost cause: what the OS or the TLS layer said (``Connection refused``)."""
    seen: set[int] = set()
    while exc.__cause__ is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__
    return exc


def _detail(exc: BaseException) -> str:
    cause = _root_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS: certificate verify failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS: {getattr(cause, 'reason', None) or cause}"  # reason: set by the ssl module
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    if isinstance(cause, TimeoutError) or (not str(cause) and isinstance(exc, TimeoutError)):
        return "no answer in time"
    return str(cause) or type(cause).__name__


def _unwrapped(exc: Exception) -> Exception:
    """The error inside the exception groups that task groups (coredis', ours) wrap it in."""
    while isinstance(exc, ExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _reply_text(exc: Exception) -> str:
    """Redis' error reply as Redis sent it: coredis strips the code (``WRONGTYPE``) into the
    exception's class; put it back in front, where users and our checks look for it."""
    from coredis.parser import Parser

    for code, classes in Parser.EXCEPTION_CLASSES.items():
        if isinstance(classes, dict):
            if type(exc) in classes.values():
                return f"{code} {exc}"
        elif type(exc) is classes:
            return f"{code} {exc}"
    return str(exc)


def translate(exc: Exception, where: str, command: str) -> Exception:
    """The trio_sse error for *exc*, raised by coredis (or the OS) during *command*.

    *where* is the address to name (no password in it). An exception group (from a task
    group) is read as its first error. Returns that error itself when it is not a Redis or
    connection error (a bug to see as it is). Messages quote Redis' replies and
    the OS' reasons, which never contain the credentials sent with ``HELLO``.
    """
    import coredis.exceptions as errors

    exc = _unwrapped(exc)
    if isinstance(exc, RedisError):
        return exc
    if isinstance(exc, errors.SentinelError):
        return RedisConnectionError(f"Redis at {where} has no usable primary now: {exc}")
    if isinstance(exc, errors.AuthenticationError):
        return RedisConnectionError(f"Redis at {where} refused the connection: {_reply_text(exc)}")
    if isinstance(exc, errors.ResponseError):
        text = _reply_text(exc)
        if text.startswith(_UNAVAILABLE):
            return RedisConnectionError(f"Redis at {where} is unavailable: {text}")
        return RedisReplyError(text)
    if isinstance(exc, errors.RedisClusterError) and exc.__cause__ is not None:
        # No startup node could be reached; coredis chains why the last one failed.
        return RedisConnectionError(f"cannot connect to Redis Cluster at {where}: {_detail(exc)}")
    if isinstance(exc, errors.RedisClusterError):  # no owner known for a slot, retries spent
        return RedisConnectionError(f"Redis Cluster at {where} cannot serve {command} now: {exc}")
    if isinstance(exc, errors.BusyLoadingError):
        return RedisConnectionError(f"Redis at {where} is unavailable: {_reply_text(exc)}")
    if isinstance(exc, TimeoutError):
        return RedisConnectionError(f"Redis at {where} did not answer {command} in time")
    if isinstance(exc, (errors.ConnectionError, OSError)):
        if isinstance(exc, OSError) or str(exc).startswith("Unable to establish"):
            return RedisConnectionError(f"cannot connect to Redis at {where}: {_detail(exc)}")
        return RedisConnectionError(
            f"lost the connection to Redis at {where} during {command}: {_detail(exc)}"
        )
    if isinstance(exc, errors.RedisError):
        return RedisError(f"Redis at {where}, {command}: {exc}")
    return exc
