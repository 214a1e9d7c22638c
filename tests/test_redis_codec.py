"""How the Redis backend writes events into stream entries and reads them back, and the ids it
issues: checked without any server (the round trip through Redis is in test_redis_edges)."""

from __future__ import annotations

import pytest

from trio_sse import ServerSentEvent
from trio_sse._resume import MAX_STREAM_ID_PART
from trio_sse.backends._errors import RedisConnectionError
from trio_sse.backends._redis_entries import (
    NONCE_FIELD,
    StreamIds,
    decode_entry,
    entries,
    event_fields,
    next_id,
    nonce_of,
    text,
)


def test_text_reads_bytes_and_str_and_nothing_else() -> None:
    assert text(b"caf\xc3\xa9") == "café"
    assert text(b"\xff bad") == "\ufffd bad"  # another writer's invalid UTF-8
    assert text("already text") == "already text"
    with pytest.raises(RedisConnectionError, match="unexpected reply from Redis: 5"):
        text(5)


def test_entries_reads_lists_and_nil() -> None:
    assert entries(None) == []
    assert entries([b"a"]) == [b"a"]
    with pytest.raises(RedisConnectionError, match="unexpected reply"):
        entries(b"OK")


def test_next_id_carries_into_the_next_millisecond() -> None:
    assert next_id((5, 0)) == "5-1"
    assert next_id((5, MAX_STREAM_ID_PART)) == "6-0"


def test_every_field_round_trips_with_the_nonce() -> None:
    event = ServerSentEvent("a\nb", event="tick", retry=1500, comment="note", sep="\r\n")
    fields = event_fields(event, b"n0nce")
    assert fields[-2:] == [NONCE_FIELD, b"n0nce"]
    raw = [b"7-1", fields]
    assert nonce_of(raw) == b"n0nce"
    stream_id, position, decoded = decode_entry(raw)
    assert (stream_id, position) == ("7-1", (7, 1))
    assert decoded == ServerSentEvent(
        "a\nb", event="tick", id="7-1", retry=1500, comment="note", sep="\r\n"
    )


def test_an_entry_without_a_nonce_was_written_by_something_else() -> None:
    assert nonce_of([b"1-0", [b"data", b"x"]]) is None
    assert nonce_of([b"1-0", [NONCE_FIELD, 5]]) is None


@pytest.mark.parametrize("raw", [[b"1-0"], [b"1-0", [], b"extra"], b"1-0"])
def test_a_malformed_entry_is_a_connection_error(raw: object) -> None:
    with pytest.raises(RedisConnectionError, match="unexpected"):
        decode_entry(raw)


def test_an_entry_id_that_is_not_a_stream_id() -> None:
    with pytest.raises(RedisConnectionError, match="unexpected stream id from Redis: 'x'"):
        decode_entry([b"x", [b"data", b"1"]])


def test_an_entry_that_is_not_a_valid_event_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    assert decode_entry([b"2-0", [b"data", b"x", b"retry", b"soon"]]) == ("2-0", (2, 0), None)
    assert "skipping stream entry 2-0 that is not a valid event" in caplog.text


def test_ids_grow_per_topic_whatever_the_clock_does() -> None:
    now = [1.0]
    ids = StreamIds(clock=lambda: now[0])
    assert ids.issue("t")[0] == "1000-0"
    assert ids.issue("t")[0] == "1000-1"  # the same millisecond
    now[0] = 0.5  # the clock went back
    assert ids.issue("t")[0] == "1000-2"
    assert ids.issue("other")[0] == "500-0"
    ids.observe("t", (1000, MAX_STREAM_ID_PART))  # another publisher took the top
    assert ids.issue("t")[0] == "1001-0"
    ids.observe("t", (3, 0))  # an older position changes nothing
    assert ids.issue("t")[0] == "1001-1"


def test_only_the_most_recent_topics_are_remembered() -> None:
    ids = StreamIds(remember=2, clock=lambda: 1.0)
    ids.observe("a", (9000, 0))
    ids.issue("b")
    ids.issue("c")  # "a" is forgotten: its next id starts from the clock again
    assert ids.issue("a")[0] == "1000-0"
    assert ids.issue("c")[0] == "1000-1"
