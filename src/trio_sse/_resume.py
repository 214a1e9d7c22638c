"""Resuming: untrusted ``Last-Event-ID`` values and cursors in, lookups and reset events out.

Pure and synchronous, standard library only (``tests/test_sansio_imports.py`` enforces it):
nothing here awaits, does I/O or imports anyio or Starlette. Every input is untrusted (a
header, a query parameter, an id a client echoes back), so each function is bounded in the
length it looks at and raises nothing but the ``TypeError`` its docstring names.

* :func:`last_event_id_from`: the id a request carries (header, else query parameter);
* :func:`parse_last_event_id`: that id -> what to look up, and what to echo in a reset event;
* :func:`reset_event`: the event sent first when an id cannot be resumed;
* :func:`parse_stream_id` and :func:`parse_memory_id`: an id -> a backend's cursor.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from ._events import ServerSentEvent

__all__ = [
    "MAX_LAST_EVENT_ID_LENGTH",
    "MAX_STREAM_ID_PART",
    "Resume",
    "choose_last_event_id",
    "header_text",
    "last_event_id_from",
    "parse_last_event_id",
    "parse_memory_id",
    "parse_stream_id",
    "reset_event",
]

MAX_LAST_EVENT_ID_LENGTH = 256
"""A longer ``Last-Event-ID`` is not looked up: it is treated as unknown (a reset event)."""

_BAD_ID_CHARACTERS = ("\r", "\n", "\0")  # no event id can contain them (WHATWG "id" field)
MAX_STREAM_ID_PART = 2**64 - 1
"""A Redis stream id ``ms-seq`` is two unsigned 64-bit numbers."""
_MAX_STREAM_ID_PART_DIGITS = 20


class Resume(NamedTuple):
    """What a subscriber's ``Last-Event-ID`` asks for."""

    lookup: str | None
    """The id to look up; ``None``: not a possible id (malformed, too long): replay all."""
    echo: str | None
    """Shown in the reset event; ``None`` when too long to echo. Always UTF-8 encodable."""


def parse_last_event_id(value: object) -> Resume | None:
    """Untrusted ``Last-Event-ID`` -> what to look up; ``None``: not a resume (live only).

    *value* is a ``str``, ``bytes``-like, an ``int`` (``str()``-ed) or ``None``; any other
    type raises ``TypeError`` (naming ``last_event_id``). No str or bytes value raises: an
    empty one is "no id" (what a browser sends when it has none, WHATWG 9.2.4); one longer than
    :data:`MAX_LAST_EVENT_ID_LENGTH` (bytes: four times that) is unknown and not echoed; one
    with CR, LF or NUL (no event id can hold them) is unknown but echoed. Bytes are decoded as
    UTF-8 with replacement; a lone surrogate in the echo is replaced, so it can be encoded.
    """
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) > 4 * MAX_LAST_EVENT_ID_LENGTH:
            return Resume(None, None)
        text = raw.decode("utf-8", "replace")
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        raise TypeError(f"last_event_id must be a str, bytes or None, got {type(value).__name__}")
    if not text:
        return None
    if len(text) > MAX_LAST_EVENT_ID_LENGTH:
        return Resume(None, None)
    # The echo must be encodable: a lone surrogate would break the stream's UTF-8 encoding.
    echo = text.encode("utf-8", "replace").decode("utf-8")
    if any(character in text for character in _BAD_ID_CHARACTERS):
        return Resume(None, echo)
    return Resume(text, echo)


def reset_event(
    reason: str, last_event_id: str | None, *, topic: str | None = None
) -> ServerSentEvent:
    """The event sent first to a subscriber whose ``Last-Event-ID`` cannot be resumed.

    ``event: reset``, no ``id``, and ``data`` a JSON object with ``reason`` and
    ``last_event_id`` (pass :attr:`Resume.echo`: encodable, bounded, or ``None``), and
    ``topic`` when given (a stream of several topics says which one is reset).
    """
    fields: dict[str, str | None] = {"reason": reason, "last_event_id": last_event_id}
    if topic is not None:
        fields["topic"] = topic
    data = json.dumps(
        fields,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return ServerSentEvent(data, event="reset")


def header_text(value: str) -> str:
    """A header value as the client meant it: UTF-8 bytes that arrived decoded as latin-1.

    ASGI servers hand header bytes to Starlette, which decodes them as latin-1; browsers send a
    non-ASCII ``Last-Event-ID`` as UTF-8. Undo the mix-up so such ids can be found again; a
    value that is not valid UTF-8 that way, or too long to be a resumable id even once
    decoded, is returned unchanged. Never raises.
    """
    if value.isascii() or len(value) > 4 * MAX_LAST_EVENT_ID_LENGTH:
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def choose_last_event_id(header: object, query: object) -> str | None:
    """The ``Last-Event-ID`` from a header value and a ``lastEventId`` query value.

    The header wins when non-empty (a browser's ``EventSource`` sends the newest id in the
    header on reconnection while its URL still holds the first one); ``None`` and ``""`` are
    "absent". Non-``str`` values are ``str()``-ed, as a header mapping may hold other types.
    """
    if header:
        return header_text(str(header))
    if query:
        return str(query)
    return None


def last_event_id_from(source: object) -> str | bytes | None:
    """The ``Last-Event-ID`` a request carries, or *source* itself when it is an id or ``None``.

    For a request (anything with ``headers``, such as a Starlette ``Request``): the
    ``Last-Event-ID`` header, else the ``lastEventId`` query parameter (for clients that cannot
    set headers), see :func:`choose_last_event_id`. Reads only ``headers.get`` and
    ``query_params.get``; anything else without ``headers`` raises ``TypeError``.
    """
    if source is None or isinstance(source, (str, bytes)):
        return source
    headers = getattr(source, "headers", None)
    if headers is None:
        raise TypeError(
            "expected a request (with .headers), a Last-Event-ID str or bytes, or None; "
            f"got {type(source).__name__}"
        )
    query = getattr(source, "query_params", None)
    return choose_last_event_id(
        headers.get("last-event-id"),
        query.get("lastEventId") if query is not None else None,
    )


def parse_stream_id(text: str) -> tuple[int, int] | None:
    """``"1718000000000-3"`` -> ``(1718000000000, 3)``; ``None`` unless canonical.

    Canonical means exactly what Redis itself returns (no sign, no leading zero, both parts,
    each at most ``2**64 - 1``), so an id given back to us is never silently read as a
    different one. Never raises for a ``str``; looks at no more than 41 characters' worth.
    """
    ms, dash, seq = text.partition("-")
    if not dash or not _canonical_number(ms) or not _canonical_number(seq):
        return None
    position = (int(ms), int(seq))
    if position[0] > MAX_STREAM_ID_PART or position[1] > MAX_STREAM_ID_PART:
        return None
    return position


def parse_memory_id(text: str) -> tuple[str, int] | None:
    """``"<epoch>-<n>"`` (a memory backend's id) -> ``(epoch, n)``; ``None`` if not that shape.

    ``n`` is ASCII digits (leading zeros allowed); at most :data:`MAX_LAST_EVENT_ID_LENGTH`
    characters are accepted, so ``int()`` is never handed a huge number. Never raises for a
    ``str``.
    """
    if len(text) > MAX_LAST_EVENT_ID_LENGTH:
        return None
    epoch, dash, number = text.partition("-")
    if not dash or not number.isascii() or not number.isdigit():
        return None
    return epoch, int(number)


def _canonical_number(text: str) -> bool:
    return (
        0 < len(text) <= _MAX_STREAM_ID_PART_DIGITS
        and text.isascii()
        and text.isdigit()
        and (text == "0" or text[0] != "0")
    )
