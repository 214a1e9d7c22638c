"""``trimmed_past``: reading ``XINFO STREAM`` to tell whether a stored entry may be gone."""

from __future__ import annotations

import pytest

from trio_sse.backends._errors import RedisConnectionError
from trio_sse.backends._redis_entries import trimmed_past


def info(*, added: object, length: object, first: object) -> dict[bytes, object]:
    """An ``XINFO STREAM`` reply as coredis gives it undecoded over RESP3."""
    return {b"length": length, b"entries-added": added, b"first-entry": first}


def test_nothing_removed_means_not_trimmed() -> None:
    assert not trimmed_past(info(added=2, length=2, first=[b"9-0", []]), (1, 0))


def test_removed_and_every_remaining_entry_is_later() -> None:
    reply = info(added=300, length=2, first=[b"5-3", [b"data", b"x"]])
    assert trimmed_past(reply, (5, 2))
    assert not trimmed_past(reply, (5, 3))  # the entry there would still be there
    assert not trimmed_past(reply, (6, 0))


def test_everything_removed() -> None:
    assert trimmed_past(info(added=3, length=0, first=None), (1, 0))


def test_redis_before_7_does_not_say() -> None:
    assert not trimmed_past({b"length": 1, b"first-entry": [b"5-0", []]}, (1, 0))


def test_resp2_pairs() -> None:
    pairs = [b"length", 1, b"entries-added", 4, b"first-entry", [b"5-0", []]]
    assert trimmed_past(pairs, (4, 0))
    assert not trimmed_past(pairs, (5, 0))


def test_nonsense_is_a_connection_error() -> None:
    with pytest.raises(RedisConnectionError, match="unexpected reply"):
        trimmed_past(b"nonsense", (1, 0))
    assert trimmed_past(info(added=2, length=1, first=[b"not-an-id", []]), (1, 0))
