"""Topic patterns declared on a hub (issue #16): the glob rule and the index's event ids.

Pure and synchronous, standard library only (``tests/test_sansio_imports.py`` enforces it).

**The rule.** A pattern is ``<prefix>*`` where the ``*`` is the whole last ``/``-separated
segment: ``orders/*`` or ``*`` alone. It matches a topic that is the prefix followed by one
more non-empty segment without ``/``: ``orders/*`` matches ``orders/42``, not ``orders``,
``orders/`` nor ``orders/42/lines``. A topic's parent (everything up to its last ``/``)
therefore names the only pattern that can match it, and matching is one dict lookup.

**Why declared.** A stream of a pattern cannot be resumed from per-topic positions (the
matching topics are unbounded) nor from time-based ids (publishers' clocks differ: gaps or
duplicates). So the hub knows its patterns up front and every publish to a matching topic
also appends the event, with its topic, to the pattern's own ordered *index*; a stream of
the pattern reads that index like a topic, and resumes from an index position, exactly.

**Index ids.** An event read from an index has the id ``<index id>~<topic>``: the index's own
id (a memory ``<epoch>-<n>`` or a Redis stream id, which never hold ``~``) then the topic,
percent-escaped but for ``/`` (so the id holds no CR, LF or NUL). :func:`split_index_id`
takes it apart; a stream's cursor records the index id alone.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable, Iterator
from urllib.parse import quote, unquote

__all__ = ["Patterns", "check_patterns", "index_id", "is_pattern", "split_index_id"]

_SEPARATOR = "~"


def is_pattern(topic: str) -> bool:
    """Whether *topic* is written as a pattern: ``*`` is one of its ``/``-separated segments.

    Such a name is never a plain topic on a hub with patterns, and a stream or subscription
    of one that the hub does not declare is a ``ValueError``.
    """
    return "*" in topic and "*" in topic.split("/")


def _check_pattern(pattern: object) -> str:
    if not isinstance(pattern, str):
        raise TypeError(f"a pattern must be a str, got {type(pattern).__name__}")
    prefix = pattern[:-1]
    if not (pattern == "*" or pattern.endswith("/*")) or "*" in prefix:
        raise ValueError(
            f"bad pattern {reprlib.repr(pattern)}: '*' must be the whole last segment and "
            "appear once ('orders/*' matches 'orders/42', one more segment without '/')"
        )
    return pattern


class Patterns:
    """A hub's declared patterns. Immutable; nothing here blocks."""

    __slots__ = ("_by_prefix",)

    def __init__(self, patterns: Iterable[str]) -> None:
        self._by_prefix = {pattern[:-1]: pattern for pattern in patterns}

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_prefix.values())

    def __contains__(self, topic: object) -> bool:
        return isinstance(topic, str) and self._by_prefix.get(topic[:-1]) == topic

    def match(self, topic: str) -> str | None:
        """The declared pattern that *topic* falls under, or ``None``."""
        cut = topic.rfind("/") + 1
        return None if cut == len(topic) else self._by_prefix.get(topic[:cut])


def check_patterns(patterns: object) -> Patterns | None:
    """``patterns=`` of a hub -> :class:`Patterns` (``None``: none declared).

    A list or tuple of distinct patterns that follow the rule; ``TypeError`` for a type,
    ``ValueError`` for a value (naming the bad pattern).
    """
    if patterns is None:
        return None
    if not isinstance(patterns, (list, tuple)):
        raise TypeError(f"patterns must be a list or tuple of str, got {type(patterns).__name__}")
    checked = [_check_pattern(pattern) for pattern in patterns]
    if len(set(checked)) != len(checked):
        raise ValueError(f"a pattern is declared twice in {reprlib.repr(checked)}")
    return Patterns(checked) if checked else None


def index_id(position_id: str, topic: str) -> str:
    """The id of an event of *topic* at *position_id* in a pattern's index."""
    return f"{position_id}{_SEPARATOR}{quote(topic, safe='/')}"


def split_index_id(event_id: str) -> tuple[str, str]:
    """``index_id(position_id, topic)`` -> ``(position_id, topic)``."""
    position_id, _, escaped = event_id.partition(_SEPARATOR)
    return position_id, unquote(escaped)
