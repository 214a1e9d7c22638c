"""The resume cursor of a stream of several topics: per-topic ids in, one event id out.

Pure and synchronous, standard library only (``tests/test_sansio_imports.py`` enforces it).
A stream of several topics (issue #16) gives each event an id that records, for every topic
of the stream, the id of the last event of that topic it sent::

    t1,<key>:<id>,<key>:<id>,...

* ``t1`` is the format's version;
* ``<key>`` is :func:`topic_key`: the first 8 hex digits of the SHA-256 of the topic's UTF-8,
  so a cursor does not grow with topic names and an entry can only ever name one topic;
* ``<id>`` is the topic's own event id, percent-escaped (only ``A-Z a-z 0-9 - . _ ~`` are
  left as they are), so the cursor is ASCII and has no ``,`` or ``:`` inside an entry. An
  empty ``<id>`` means "the topic had no event when the stream started": resuming replays
  all it retains, with no reset;
* the first entry is always the topic of the event that carries the cursor.

The cursor is untrusted input. :func:`parse_cursor` is strict (one canonical spelling per
cursor, no duplicate key, at most :data:`MAX_STREAM_TOPICS` entries, at most
:data:`MAX_CURSOR_LENGTH` characters) and never raises for a ``str`` or ``bytes``: anything
it does not accept is an empty mapping, which resets every topic.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, unquote

__all__ = [
    "MAX_CURSOR_ID_LENGTH",
    "MAX_CURSOR_LENGTH",
    "MAX_STREAM_TOPICS",
    "fits",
    "format_cursor",
    "parse_cursor",
    "topic_key",
]

MAX_STREAM_TOPICS = 16
"""The most topics one stream may have (so its cursor stays bounded)."""

MAX_CURSOR_ID_LENGTH = 240
"""The longest escaped per-topic id a cursor carries; a topic whose id is longer is left out
of the cursor (resuming then resets that topic). Ids the backends assign are far shorter."""

_VERSION = "t1"
_KEY_LENGTH = 8
MAX_CURSOR_LENGTH = 4096
"""The longest cursor :func:`parse_cursor` reads; any cursor this module writes fits."""
assert len(_VERSION) + MAX_STREAM_TOPICS * (_KEY_LENGTH + 2 + MAX_CURSOR_ID_LENGTH) <= (
    MAX_CURSOR_LENGTH
)

_SAFE = "-._~"  # with letters and digits: RFC 3986's unreserved characters
_ESCAPED = re.compile(r"(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})*")
_KEY = re.compile(r"[0-9a-f]{8}")


def topic_key(topic: str) -> str:
    """The key of *topic* in a cursor: the first 8 hex digits of its UTF-8's SHA-256."""
    digest = hashlib.sha256(topic.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:_KEY_LENGTH]


def _escape(event_id: str) -> str:
    return quote(event_id, safe=_SAFE)  # published ids are valid UTF-8 (publish checks)


def fits(event_id: str) -> bool:
    """Whether *event_id* is short enough, escaped, to be kept in a cursor."""
    return len(_escape(event_id)) <= MAX_CURSOR_ID_LENGTH


def format_cursor(
    first: str, positions: Mapping[str, str | None], *, first_id: str | None = None
) -> str:
    """The cursor for an event of topic-key *first*, given every topic-key's last id.

    *positions* maps topic keys to ids (``""``: empty when the stream started; ``None``: no
    position, left out). An id whose escape is longer than :data:`MAX_CURSOR_ID_LENGTH` is
    left out. *first* comes first, with *first_id* instead of its position when given (a
    pattern's event names its topic there); the others keep their order.
    """
    parts = [_VERSION]
    for key in (first, *(key for key in positions if key != first)):
        event_id = first_id if key == first and first_id is not None else positions.get(key)
        if event_id is None:
            continue
        escaped = _escape(event_id)
        if len(escaped) <= MAX_CURSOR_ID_LENGTH:
            parts.append(f"{key}:{escaped}")
    return ",".join(parts)


def parse_cursor(value: str | bytes | None) -> dict[str, str] | None:
    """Untrusted ``Last-Event-ID`` of a stream of several topics -> topic key -> last id.

    ``None`` when there is no cursor (*value* is ``None`` or empty: a fresh stream). Anything
    that is not a cursor this module could have written (too long, another version, a bad
    key or escape, a duplicate key, too many entries, bytes that are not ASCII) is ``{}``:
    every topic is then reset. Never raises; looks at no more than
    :data:`MAX_CURSOR_LENGTH` characters.
    """
    if value is None or not value:
        return None
    if len(value) > MAX_CURSOR_LENGTH:
        return {}
    if isinstance(value, bytes):
        if not value.isascii():
            return {}
        value = value.decode("ascii")
    version, _, rest = value.partition(",")
    if version != _VERSION or not rest:
        return {}
    return _entries(rest.split(","))


def _entries(parts: Iterable[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in parts:
        key, colon, escaped = part.partition(":")
        if (
            not colon
            or not _KEY.fullmatch(key)
            or key in found
            or len(found) == MAX_STREAM_TOPICS
            or len(escaped) > MAX_CURSOR_ID_LENGTH
            or not _ESCAPED.fullmatch(escaped)
        ):
            return {}
        try:
            event_id = unquote(escaped, errors="strict")
        except UnicodeDecodeError:
            return {}
        if _escape(event_id) != escaped:  # one spelling per cursor (%41 is not "A")
            return {}
        found[key] = event_id
    return found
