"""Pattern indexes on Redis (issue #16): one stream per declared pattern. Pure: no I/O.

A publish to a topic that a declared pattern covers runs :data:`PUBLISH_MATCHED` (``EVAL``)
instead of a bare ``XADD``: the topic's ``XADD`` at the id this process chose, then, in the
same script, an ``XADD`` of the same fields plus ``_t`` (the topic) to the pattern's index
stream, at an id Redis assigns (``*``). A script runs atomically, so the index holds every
event of its topics exactly once, in the order they were committed, and never one the topic
refused: a refused ``XADD`` (the id taken: a retried publish) stops the script before the
index is written. The index ids come from the one Redis server, so publishers' clocks do
not matter.

The index of pattern ``P`` is the key ``<prefix>`` + byte ``0xFF`` + ``pattern:`` + ``P``: no
topic can name it (a topic's key never holds ``0xFF``) and it falls under ``~<prefix>*``.
**Limit**: both keys of the script must be in one slot for a Redis Cluster (where they
generally are not); patterns are for a single Redis (or a primary with replicas/Sentinel).
"""

from __future__ import annotations

from collections.abc import Sequence

from .._events import ServerSentEvent
from .._patterns import index_id
from ._redis_entries import encode, entries, text

__all__ = ["PUBLISH_MATCHED", "TOPIC_FIELD", "index_key", "matched_arguments", "tagged"]

TOPIC_FIELD = b"_t"

PUBLISH_MATCHED = b"""\
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], ARGV[2], unpack(ARGV, 4))
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', '_t', ARGV[3], unpack(ARGV, 4))
return id
"""


def index_key(prefix: str, pattern: str) -> bytes:
    """The key of *pattern*'s index stream."""
    return encode(prefix) + b"\xffpattern:" + encode(pattern)


def matched_arguments(
    key: bytes, index: bytes, history: int, stream_id: str, topic: str, fields: Sequence[bytes]
) -> list[bytes | int]:
    """The ``EVAL`` arguments that store *fields* at *stream_id* in *key* and in *index*."""
    return [PUBLISH_MATCHED, 2, key, index, history, stream_id.encode(), encode(topic), *fields]


def tagged(raw: object, event: ServerSentEvent) -> ServerSentEvent | None:
    """An index entry's *event* with the id ``<index id>~<topic>`` (``_patterns``), or
    ``None`` when the entry names no topic (not written by this library: skipped)."""
    values = entries(entries(raw)[1])
    for index in range(0, len(values) - 1, 2):
        if values[index] == TOPIC_FIELD:
            assert event.id is not None
            return event.replace(id=index_id(event.id, text(values[index + 1])))
    return None
