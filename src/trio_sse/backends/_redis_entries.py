"""Stream entries <-> events, and the stream ids a publishing process chooses. Pure: no I/O.

An event is stored as the fields that are set among ``data``, ``event``, ``retry``,
``comment`` and ``sep``, plus ``_p``: a random nonce naming this one publish (so an empty
event has a field too, as ``XADD`` needs one), by which a retried ``XADD`` recognises its own entry
(see :class:`StreamIds` and ``RedisBackend.publish``). Replies are RESP3 values as coredis
returns them undecoded (``bytes``, lists, maps); anything else raises
:class:`~trio_sse.backends.RedisConnectionError` ("Redis spoke nonsense").
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .._events import ServerSentEvent
from .._resume import MAX_STREAM_ID_PART, parse_stream_id
from ._base import Position
from ._errors import RedisConnectionError

__all__ = [
    "NONCE_FIELD",
    "StreamIds",
    "decode_entry",
    "encode",
    "entries",
    "event_fields",
    "next_id",
    "nonce_of",
    "text",
    "trimmed_past",
]

logger = logging.getLogger("trio_sse")

NONCE_FIELD = b"_p"
_FIELDS = ("data", "event", "retry", "comment", "sep")


def encode(value: str) -> bytes:
    """UTF-8 with surrogatepass: any key or field text round-trips through Redis."""
    return value.encode("utf-8", "surrogatepass")


def text(value: object) -> str:
    """A reply's bulk string as ``str``; invalid UTF-8 (another writer's) becomes U+FFFD."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    raise RedisConnectionError(f"unexpected reply from Redis: {value!r}")


def entries(value: object) -> list[Any]:
    """A reply that is a list (nil: empty)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise RedisConnectionError(f"unexpected reply from Redis: {value!r}")
    return value


def next_id(position: Position) -> str:
    """The smallest stream id after *position*."""
    ms, seq = position
    return f"{ms}-{seq + 1}" if seq < MAX_STREAM_ID_PART else f"{ms + 1}-0"


def event_fields(event: ServerSentEvent, nonce: bytes) -> list[bytes]:
    fields: list[bytes] = []
    if event.data is not None:
        fields += [b"data", encode(event.data)]
    if event.event is not None:
        fields += [b"event", encode(event.event)]
    if event.retry is not None:
        fields += [b"retry", b"%d" % event.retry]
    if event.comment is not None:
        fields += [b"comment", encode(event.comment)]
    if event.sep is not None:
        fields += [b"sep", encode(event.sep)]
    return [*fields, NONCE_FIELD, nonce]


def _pairs(raw: object) -> tuple[str, list[Any]]:
    item = entries(raw)
    if len(item) != 2:
        raise RedisConnectionError(f"unexpected stream entry from Redis: {raw!r}")
    return text(item[0]), entries(item[1])


def nonce_of(raw: object) -> bytes | None:
    """The publish nonce stored in a raw entry, if any."""
    _, values = _pairs(raw)
    for index in range(0, len(values) - 1, 2):
        if values[index] == NONCE_FIELD:
            nonce = values[index + 1]
            return nonce if isinstance(nonce, bytes) else None
    return None


def trimmed_past(info: object, position: Position) -> bool:
    """From a stream's ``XINFO STREAM`` reply (a RESP3 map or RESP2 pairs): whether an entry
    at *position* may have been stored and then trimmed or deleted. True when entries were
    removed (more were added than the stream holds) and every remaining one comes after
    *position*; False when Redis does not say (before 7.0: no ``entries-added``)."""
    if not isinstance(info, dict):
        pairs = entries(info)
        info = dict(zip(pairs[::2], pairs[1::2], strict=False))
    added, length = info.get(b"entries-added"), info.get(b"length")
    if not (isinstance(added, int) and isinstance(length, int) and added > length):
        return False
    first = info.get(b"first-entry")
    if first is None:
        return True  # all removed
    first_position = parse_stream_id(text(entries(first)[0]))
    return first_position is None or position < first_position


def decode_entry(raw: object) -> tuple[str, Position, ServerSentEvent | None]:
    """A stream entry -> (id, position, event); event ``None`` when it cannot be rebuilt."""
    stream_id, values = _pairs(raw)
    position = parse_stream_id(stream_id)
    if position is None:
        raise RedisConnectionError(f"unexpected stream id from Redis: {stream_id!r}")
    fields: dict[str, str] = {}
    for index in range(0, len(values) - 1, 2):
        name = text(values[index])
        if name in _FIELDS:
            fields[name] = text(values[index + 1])
    retry_text = fields.get("retry")
    try:
        event = ServerSentEvent(
            fields.get("data"),
            event=fields.get("event"),
            id=stream_id,
            retry=int(retry_text) if retry_text is not None else None,
            comment=fields.get("comment"),
            sep=fields.get("sep"),
        )
    except (TypeError, ValueError):
        # Written by something else than this library (a bad ``event`` or ``retry``): the
        # entry is skipped, the stream goes on.
        logger.warning("trio_sse: skipping stream entry %s that is not a valid event", stream_id)
        return stream_id, position, None
    return stream_id, position, event


class StreamIds:
    """The stream ids this process gives the events it publishes: ``<ms>-<seq>``.

    Why the publisher chooses: an ``XADD`` whose reply was lost (the connection reset after
    Redis executed it) is sent again by the client's retry. With ``*`` Redis would store the
    event twice under two ids; with an explicit id the second ``XADD`` is refused ("equal or
    smaller than the target stream top item") and the nonce says whether the entry at that id
    is this very publish.

    ``ms`` is this process's wall clock, as Redis would use its own; per topic the ids only
    grow (a clock going back, several events in one millisecond). The last id of the most
    recent topics is remembered (at most *remember* topics): another process publishing to
    the same topic, or a topic not remembered, may make the first guess too small; Redis
    then refuses it and the backend asks again from the stream's top (:meth:`observe`).
    Sync, never blocks.
    """

    def __init__(self, *, remember: int = 4096, clock: Callable[[], float] = time.time) -> None:
        self._last: OrderedDict[str, Position] = OrderedDict()
        self._remember = remember
        self._clock = clock

    def issue(self, topic: str) -> tuple[str, Position]:
        """A new id for *topic*, above every id issued or observed for it here."""
        now = int(self._clock() * 1000)
        last = self._last.get(topic)
        if last is None or now > last[0]:
            position = (now, 0)
        elif last[1] < MAX_STREAM_ID_PART:
            position = (last[0], last[1] + 1)
        else:
            position = (last[0] + 1, 0)
        self.observe(topic, position)
        return f"{position[0]}-{position[1]}", position

    def observe(self, topic: str, position: Position) -> None:
        """*position* is taken in *topic* (stored there, or its top): issue above it."""
        last = self._last.get(topic)
        if last is None or position > last:
            self._last[topic] = position
        self._last.move_to_end(topic)
        if len(self._last) > self._remember:
            self._last.popitem(last=False)
