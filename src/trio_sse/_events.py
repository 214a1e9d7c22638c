"""``ServerSentEvent`` and ``JSONServerSentEvent``: immutable events, checked when built.

Standard library only.  An event is validated once, in its constructor, so that a bad
value fails where the user wrote it rather than deep inside a stream, and so that the
stream loop can encode without re-checking.  The encoded bytes are cached per separator:
an event published to a thousand subscribers is encoded once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._encoder import check_sep, encode_fields

__all__ = ["JSONServerSentEvent", "ServerSentEvent", "encode_item"]

DEFAULT_SEPARATOR = "\r\n"

_FIELDS = ("data", "event", "id", "retry", "comment", "sep")


def _check_retry(retry: object) -> int | None:
    # bool is an int subclass, but ``retry=True`` is always a bug: refuse it by name.
    if retry is None:
        return None
    if isinstance(retry, bool) or not isinstance(retry, int) or retry < 0:
        raise ValueError(f"retry must be a non-negative int (milliseconds), got {retry!r}")
    return int(retry)


def _check_event(event: object) -> str | None:
    if event is None:
        return None
    if not isinstance(event, str):
        raise TypeError(f"event must be a str, got {type(event).__name__}")
    if "\n" in event or "\r" in event:
        raise ValueError(f"event must not contain CR or LF, got {event!r}")
    return event


def _check_id(id: object) -> str | None:
    if id is None:
        return None
    if isinstance(id, int) and not isinstance(id, bool):
        return str(id)
    if not isinstance(id, str):
        raise TypeError(f"id must be a str or an int, got {type(id).__name__}")
    # An id is never rewritten: a "cleaned" id would break Last-Event-ID resume.
    if "\n" in id or "\r" in id or "\0" in id:
        raise ValueError(f"id must not contain CR, LF or NUL, got {id!r}")
    return id


class ServerSentEvent:
    """One event of a ``text/event-stream``.

    ``ServerSentEvent(data=None, *, event=None, id=None, retry=None, comment=None, sep=None)``

    * ``data``: any object; ``None`` means no ``data`` field, a non-``str`` value is ``str()``-ed.
      Multi-line data (CRLF, CR or LF) is written as several ``data:`` lines, and ``""`` is one
      empty ``data`` line (an event a browser dispatches with empty data).
    * ``event``: the event type (``addEventListener`` name); no CR or LF.
    * ``id``: the event id (``str``, or an ``int`` which is kept as its decimal string); no CR, LF
      or NUL. It is never rewritten: resume by ``Last-Event-ID`` relies on it.
    * ``retry``: the reconnection time in milliseconds, a non-negative ``int`` (not a ``bool``).
    * ``comment``: a comment; several lines become several comment lines.
    * ``sep``: this event's line end (``"\\r\\n"``, ``"\\n"`` or ``"\\r"``), or ``None`` to use the
      one the caller of :meth:`encode` (the response) chooses.

    Invalid values raise ``ValueError`` (``TypeError`` for a wrong type) naming the field.
    Events are immutable and hashable; equality compares the fields except ``sep``, which is
    presentation, not content.  ``copy.replace(event, id="7")`` (or :meth:`replace`) makes a
    changed copy, validated again.
    """

    __slots__ = ("_cache", "comment", "data", "event", "id", "retry", "sep")

    data: str | None
    event: str | None
    id: str | None
    retry: int | None
    comment: str | None
    sep: str | None
    _cache: tuple[str, bytes] | None

    def __init__(
        self,
        data: object = None,
        *,
        event: str | None = None,
        id: str | int | None = None,
        retry: int | None = None,
        comment: str | None = None,
        sep: str | None = None,
    ) -> None:
        setter = object.__setattr__
        setter(self, "data", None if data is None else data if type(data) is str else str(data))
        setter(self, "event", _check_event(event))
        setter(self, "id", _check_id(id))
        setter(self, "retry", _check_retry(retry))
        setter(self, "comment", None if comment is None else str(comment))
        setter(self, "sep", None if sep is None else check_sep(sep))
        setter(self, "_cache", None)

    def encode(self, sep: str | None = None) -> bytes:
        """Return the event as UTF-8 bytes, terminated by a blank line.

        The line end is *sep* if given, else the event's own ``sep``, else ``"\\r\\n"``.
        The result is cached per separator (events are immutable), so encoding the same event
        for many subscribers costs one encoding.  Not a checkpoint; never blocks.
        """
        if sep is None:
            sep = self.sep if self.sep is not None else DEFAULT_SEPARATOR
        cache = self._cache
        if cache is not None and cache[0] == sep:
            return cache[1]
        check_sep(sep)
        encoded = encode_fields(self.data, self.event, self.id, self.retry, self.comment, sep)
        object.__setattr__(self, "_cache", (sep, encoded))
        return encoded

    def _encode_default(self, sep: str) -> bytes:
        # The stream loop's path: the response's *sep* is already validated and only applies
        # when the event has no separator of its own.
        own = self.sep
        if own is not None:
            sep = own
        cache = self._cache
        if cache is not None and cache[0] == sep:
            return cache[1]
        encoded = encode_fields(self.data, self.event, self.id, self.retry, self.comment, sep)
        object.__setattr__(self, "_cache", (sep, encoded))
        return encoded

    def json(self) -> Any:
        """Parse ``data`` as JSON (``ValueError`` when there is no data or it is not JSON)."""
        if self.data is None:
            raise ValueError("this event has no data to parse as JSON")
        return json.loads(self.data)

    def replace(self, **changes: Any) -> ServerSentEvent:
        """Return a copy with *changes* applied (validated like a new event)."""
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise TypeError(f"unknown ServerSentEvent field(s): {', '.join(sorted(unknown))}")
        fields = {name: getattr(self, name) for name in _FIELDS}
        fields.update(changes)
        data = fields.pop("data")
        return ServerSentEvent(data, **fields)

    __replace__ = replace

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use .replace({name}=...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _key(self) -> tuple[object, ...]:
        return (self.data, self.event, self.id, self.retry, self.comment)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServerSentEvent):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        shown = [
            f"{name}={getattr(self, name)!r}" for name in _FIELDS if getattr(self, name) is not None
        ]
        return f"{type(self).__name__}({', '.join(shown)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.data, self.event, self.id, self.retry, self.comment, self.sep))


def _rebuild(
    data: str | None,
    event: str | None,
    id: str | None,
    retry: int | None,
    comment: str | None,
    sep: str | None,
) -> ServerSentEvent:
    return ServerSentEvent(data, event=event, id=id, retry=retry, comment=comment, sep=sep)


def _dump_json(data: object) -> str:
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class JSONServerSentEvent(ServerSentEvent):
    """A :class:`ServerSentEvent` whose ``data`` is *data* serialised as compact JSON.

    ``json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))``: UTF-8
    text rather than ``\\u`` escapes, and ``NaN``/``Infinity`` refused (``ValueError``) because
    browsers' ``JSON.parse`` rejects them. As in sse-starlette, ``data=None`` means no data field.
    """

    __slots__ = ()

    def __init__(
        self,
        data: object = None,
        *,
        event: str | None = None,
        id: str | int | None = None,
        retry: int | None = None,
        comment: str | None = None,
        sep: str | None = None,
    ) -> None:
        super().__init__(
            None if data is None else _dump_json(data),
            event=event,
            id=id,
            retry=retry,
            comment=comment,
            sep=sep,
        )


def encode_item(item: object, sep: str) -> bytes:
    """Encode one stream item the way ``EventSourceResponse`` does.

    ``ServerSentEvent`` -> its encoding (its own ``sep`` wins over *sep*); ``bytes``/
    ``memoryview`` -> as-is (already encoded); ``dict`` -> ``ServerSentEvent(**item)`` (the dict
    is not mutated, an unknown key is a ``TypeError``); anything else -> ``str(item)`` as data.
    """
    cls = type(item)
    if cls is ServerSentEvent or cls is JSONServerSentEvent:
        return item._encode_default(sep)  # type: ignore[attr-defined, no-any-return]
    if isinstance(item, ServerSentEvent):
        return item._encode_default(sep)
    if cls is bytes:
        return item  # type: ignore[return-value]
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, Mapping):
        unknown = [key for key in item if key not in _FIELDS]
        if unknown:
            raise TypeError(
                f"unknown ServerSentEvent field(s) in dict item: {', '.join(map(repr, unknown))}"
            )
        fields = dict(item)
        data = fields.pop("data", None)
        return ServerSentEvent(data, **fields)._encode_default(sep)
    if cls is str and "\n" not in item and "\r" not in item:  # type: ignore[operator]
        return encode_fields(item, None, None, None, None, sep)  # type: ignore[arg-type]
    return ServerSentEvent(str(item))._encode_default(sep)
