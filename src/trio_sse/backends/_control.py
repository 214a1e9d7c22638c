"""Revocations sent between processes (issue #16 item 1): principals and farewells on the wire.

Pure: no I/O. A backend shared by several processes (Redis) carries a revocation as one
message that every hub reads; this module turns ``(principal, farewell)`` into that message's
fields and back.

* **Principals** are JSON: a ``str``, an ``int`` (a ``bool`` too), a finite ``float``, ``None``,
  or a tuple of those (nested tuples too), which is what the README suggests (``("user", 42)``).
  They are rebuilt equal, with the same hash, in every process (a tuple comes back a tuple).
  Anything else (a ``frozenset``, a plain ``Enum``, an object of the app's own) has no such encoding:
  :func:`encode_principal` raises ``TypeError`` naming it. Subclasses of those types are accepted
  only when they keep the base type's ``==`` and ``hash`` (a ``NamedTuple``), since the other
  processes match the plain value.
* **The farewell** travels as the event's fields (those a topic's entry stores, see
  ``_redis_entries``) plus its own ``id`` if it has one, so every process sends the same bytes.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Hashable, Sequence
from typing import Any, NamedTuple

from .._events import ServerSentEvent
from .._resume import parse_stream_id
from .._validate import shown
from ._base import Position
from ._errors import RedisConnectionError
from ._redis_entries import decode_entry, encode, entries, event_fields, text

logger = logging.getLogger("trio_sse")

__all__ = [
    "Revocation",
    "decode_principal",
    "encode_principal",
    "read_entry",
    "revocation_fields",
]

_SCALARS = (str, bool, int, float)
_KIND = b"revoke"


def _portable(value: object) -> bool:
    """Whether *value* survives a JSON round trip equal, with the same hash."""
    if value is None:
        return True
    for base in (*_SCALARS, tuple):
        if isinstance(value, base):
            kind = type(value)
            if kind.__eq__ is not base.__eq__ or kind.__hash__ is not base.__hash__:
                return False  # a case-folding str, say: the others would match the plain one
            if isinstance(value, float):
                return math.isfinite(value)
            if isinstance(value, tuple):
                return all(_portable(item) for item in value)
            return True
    return False


def encode_principal(principal: Hashable) -> str:
    """*principal* as compact ASCII JSON; ``TypeError`` if it cannot cross processes."""
    if not _portable(principal):
        raise TypeError(
            f"a principal revoked in every process must be a str, an int, a float, None or a "
            f"tuple of those (it is sent to the other processes as JSON), got {shown(principal)}"
        )
    return json.dumps(principal, separators=(",", ":"), allow_nan=False)


def _rebuilt(value: Any) -> Hashable:
    if isinstance(value, list):
        return tuple(_rebuilt(item) for item in value)
    if value is None or isinstance(value, _SCALARS):
        return value
    raise ValueError(f"not a principal: {shown(value)}")


def decode_principal(wire: str) -> Hashable:
    """The principal that :func:`encode_principal` wrote (``ValueError`` when it is not one)."""
    return _rebuilt(json.loads(wire))


class Revocation(NamedTuple):
    """A revocation read back: who sent it, whom it revokes, and the farewell (or ``None``)."""

    origin: bytes
    principal: Hashable
    farewell: ServerSentEvent | None


def revocation_fields(
    origin: bytes, principal: Hashable, farewell: ServerSentEvent | None
) -> list[bytes]:
    """The stream entry's fields for a revocation; ``TypeError`` for a principal that cannot
    be sent (see :func:`encode_principal`). The sender's *origin* lets it skip its own."""
    fields = [b"kind", _KIND, b"origin", origin, b"principal", encode_principal(principal).encode()]
    if farewell is None:
        return fields
    fields += [b"farewell", b"1"]
    if farewell.id is not None:
        fields += [b"farewell_id", encode(farewell.id)]
    return fields + event_fields(farewell, origin)


def _field(values: Sequence[object], name: bytes) -> object:
    for index in range(0, len(values) - 1, 2):
        if values[index] == name:
            return values[index + 1]
    return None


def read_entry(raw: object) -> tuple[str, Position, Revocation | None]:
    """A control stream entry -> (its id, its position, the revocation in it).

    The revocation is ``None`` (and a warning logged) for an entry that is not one of ours
    (another kind, a bad principal or farewell): the reader skips it and goes on.
    """
    item = entries(raw)
    stream_id = text(item[0]) if len(item) == 2 else ""
    position = parse_stream_id(stream_id)
    if position is None:
        raise RedisConnectionError(f"unexpected stream entry from Redis: {raw!r}")
    try:
        return stream_id, position, _parse(raw, entries(item[1]))
    except ValueError as exc:
        logger.warning("trio_sse: skipping control entry %s, not a revocation: %s", stream_id, exc)
        return stream_id, position, None


def _parse(raw: object, values: Sequence[object]) -> Revocation:
    if _field(values, b"kind") != _KIND:
        raise ValueError("not a revocation")
    origin, principal = _field(values, b"origin"), _field(values, b"principal")
    if not isinstance(origin, bytes) or not isinstance(principal, bytes):
        raise ValueError("a revocation without its origin or principal")  # noqa: TRY004
    farewell = None
    if _field(values, b"farewell") == b"1":
        _, _, event = decode_entry(raw)
        if event is None:
            raise ValueError("a revocation whose farewell is not an event")
        own_id = _field(values, b"farewell_id")
        farewell = event.replace(id=None if own_id is None else text(own_id))
    return Revocation(origin, decode_principal(text(principal)), farewell)
