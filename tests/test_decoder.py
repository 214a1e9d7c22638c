"""EventDecoder: the WHATWG "interpreting an event stream" algorithm (HTML 9.2.6)."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_sse import EventDecoder, ServerSentEvent

BOM = b"\xef\xbb\xbf"


def decode(stream: bytes, *, comments: bool = False) -> list[ServerSentEvent]:
    return EventDecoder(comments=comments).feed(stream)


def ev(
    data: str | None = None,
    *,
    event: str | None = None,
    id: str | None = None,
    retry: int | None = None,
    comment: str | None = None,
) -> ServerSentEvent:
    return ServerSentEvent(data, event=event, id=id, retry=retry, comment=comment)


# --- the examples of the WHATWG server-sent events section ------------------------------------

SPEC_EXAMPLES = [
    pytest.param(
        b"data: This is the first message.\n\n"
        b"data: This is the second message, it\n"
        b"data: has two lines.\n\n"
        b"data: This is the third message.\n\n",
        [
            ev("This is the first message."),
            ev("This is the second message, it\nhas two lines."),
            ev("This is the third message."),
        ],
        id="introduction-messages",
    ),
    pytest.param(
        b"event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n",
        [
            ev("73857293", event="add"),
            ev("2153", event="remove"),
            ev("113411", event="add"),
        ],
        id="introduction-event-types",
    ),
    pytest.param(
        b"data: YHOO\ndata: +2\ndata: 10\n\n",
        [ev("YHOO\n+2\n10")],
        id="stock",
    ),
    pytest.param(
        b": test stream\n\n"
        b"data: first event\nid: 1\n\n"
        b"data:second event\nid\n\n"
        b"data:  third event\n\n",
        [
            ev("first event", id="1"),
            # "id" alone resets the last event ID to "".
            ev("second event", id=""),
            # Only one leading space is stripped; no id field and an empty last event ID.
            ev(" third event"),
        ],
        id="comment-and-ids",
    ),
    pytest.param(
        b"data\n\ndata\ndata\n\ndata:",
        # The first block has empty data, the second a single newline; the last block is
        # not followed by a blank line and is not dispatched.
        [ev(""), ev("\n")],
        id="empty-data-and-unterminated",
    ),
    pytest.param(
        b"data:test\n\ndata: test\n\n",
        [ev("test"), ev("test")],
        id="space-after-colon-optional",
    ),
]


@pytest.mark.parametrize(("stream", "expected"), SPEC_EXAMPLES)
def test_spec_examples(stream: bytes, expected: list[ServerSentEvent]) -> None:
    assert decode(stream) == expected
    # Equality ignores nothing that matters here, but check the fields explicitly too.
    got = decode(stream)
    assert [(e.data, e.event, e.id, e.retry, e.comment) for e in got] == [
        (e.data, e.event, e.id, e.retry, e.comment) for e in expected
    ]


def test_spec_comment_and_ids_last_event_id() -> None:
    decoder = EventDecoder()
    decoder.feed(b": test stream\n\ndata: first event\nid: 1\n\n")
    assert decoder.last_event_id == "1"
    decoder.feed(b"data:second event\nid\n\n")
    assert decoder.last_event_id == ""


def test_spec_unterminated_block_discarded_on_close() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"data\n\ndata\ndata\n\ndata:") == [ev(""), ev("\n")]
    decoder.close()
    # The pending "data:" block is gone: a blank line on the next stream dispatches nothing.
    assert decoder.feed(b"\n") == []


# --- BOM ---------------------------------------------------------------------------------------


def test_leading_bom_stripped() -> None:
    assert decode(BOM + b"data: x\n\n") == [ev("x")]


def test_second_bom_kept() -> None:
    # Only one BOM is stripped: the second one is part of the first line, whose field name
    # is then "\ufeffdata", an unknown field.
    assert decode(BOM + BOM + b"data: x\n\ndata: y\n\n") == [ev("y")]
    # Kept inside a value, too.
    assert decode(BOM + b"data: " + BOM + b"x\n\n") == [ev("\ufeffx")]


def test_bom_in_comment_after_stripped_bom_is_kept() -> None:
    assert decode(BOM + b":" + BOM + b"c\n", comments=True) == [ev(comment="\ufeffc")]


def test_bom_split_across_chunks() -> None:
    decoder = EventDecoder()
    out: list[ServerSentEvent] = []
    for byte in BOM + b"data: x\n\n":
        out += decoder.feed(bytes([byte]))
    assert out == [ev("x")]


def test_bom_only_at_start_of_stream_not_of_chunk() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"data: a\n") == []
    # Not the start of the stream: the BOM starts a line with the unknown field "\ufeffdata".
    assert decoder.feed(BOM + b"data: b\n\n") == [ev("a")]


def test_bom_stripped_again_after_close() -> None:
    decoder = EventDecoder()
    assert decoder.feed(BOM + b"data: a\n\n") == [ev("a")]
    decoder.close()
    assert decoder.feed(BOM + b"data: b\n\n") == [ev("b")]


def test_partial_bom_then_other_bytes() -> None:
    # The first two bytes of a BOM followed by something else are invalid UTF-8.
    assert decode(b"\xef\xbbdata: x\n\ndata: y\n\n") == [ev("y")]
    assert decode(b"\xef\xbb\n: c\n", comments=True) == [ev(comment="c")]


# --- line ends ---------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_line_ends(eol: bytes) -> None:
    stream = eol.join([b"event: e", b"data: a", b"data: b", b"", b"data: c", b"", b""])
    assert decode(stream) == [ev("a\nb", event="e"), ev("c")]


def test_mixed_line_ends() -> None:
    stream = b"data: a\rdata: b\ndata: c\r\n\r\ndata: d\n\r\n"
    assert decode(stream) == [ev("a\nb\nc"), ev("d")]


def test_cr_cr_is_two_line_ends() -> None:
    assert decode(b"data: a\r\rdata: b\r\r") == [ev("a"), ev("b")]


def test_lf_cr_is_two_line_ends() -> None:
    assert decode(b"data: a\n\rdata: b\n\r") == [ev("a"), ev("b")]


def test_crlf_split_across_chunks() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"data: a\r") == []
    # The LF completes the CRLF above: it is not an empty line.
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\r") == [ev("a")]
    assert decoder.feed(b"\ndata: b\r\n\r\n") == [ev("b")]


def test_line_handled_at_cr_without_waiting_for_next_chunk() -> None:
    decoder = EventDecoder()
    # The CR ending this chunk is the empty line: the event is dispatched now.
    assert decoder.feed(b"data: a\r\n\r") == [ev("a")]
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: b\n\n") == [ev("b")]


def test_lf_after_cr_skipped_only_once() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\n") == [ev("a")]


def test_cr_lf_separated_by_empty_chunks() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\n") == [ev("a")]


def test_cr_then_split_char_is_a_new_line() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\xc3") == []  # no character yet
    # "é" starts a new line (an unknown field), then the blank line dispatches "a".
    assert decoder.feed(b"\xa9\n") == []
    assert decoder.feed(b"\n") == [ev("a")]


def test_skip_lf_cleared_by_close() -> None:
    decoder = EventDecoder()
    decoder.feed(b"data: a\r")
    decoder.close()
    # On the new stream a leading LF is an empty line again (which dispatches nothing).
    assert decoder.feed(b"\ndata: b\n\n") == [ev("b")]


def test_other_unicode_line_breaks_are_not_line_ends() -> None:
    assert decode("data: a\u2028b\x85c\x0bd\x0ce\n\n".encode()) == [ev("a\u2028b\x85c\x0bd\x0ce")]


# --- UTF-8 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["é", "€", "😀"])
def test_multibyte_char_split_across_chunks(char: str) -> None:
    encoded = char.encode()
    stream = b"data: " + encoded + b"\nevent: " + encoded + b"\n\n"
    for cut in range(1, len(encoded)):
        decoder = EventDecoder()
        head = b"data: " + encoded[:cut]
        assert decoder.feed(head) == []
        assert decoder.feed(stream[len(head) :]) == [ev(char, event=char)]


def test_one_byte_chunks_multibyte() -> None:
    decoder = EventDecoder()
    out: list[ServerSentEvent] = []
    for byte in "data: 日本語 😀\n\n".encode():
        out += decoder.feed(bytes([byte]))
    assert out == [ev("日本語 😀")]


def test_invalid_utf8_replaced() -> None:
    assert decode(b"data: a\xffb\xc0\xafc\n\n") == [ev("a\ufffdb\ufffd\ufffdc")]


def test_truncated_utf8_before_line_end_replaced() -> None:
    assert decode(b"data: x\xe2\x82\n\n") == [ev("x\ufffd")]


def test_incomplete_char_dropped_by_close() -> None:
    decoder = EventDecoder(comments=True)
    assert decoder.feed(b":\xe2\x82") == []
    decoder.close()
    # Had the two bytes been kept, this would decode as one invalid line "\ufffd:\ufffd".
    assert decoder.feed(b":\xac\n") == [ev(comment="\ufffd")]


def test_bytearray_and_memoryview_chunks() -> None:
    decoder = EventDecoder()
    assert decoder.feed(bytearray(b"data: a\n")) == []
    assert decoder.feed(memoryview(b"\n")) == [ev("a")]


# --- fields --------------------------------------------------------------------------------------


def test_one_leading_space_stripped_from_values() -> None:
    stream = b"event:  e\nid:  i\ndata:x\ndata:  y\ndata: a:b\ndata:\n\n"
    assert decode(stream) == [ev("x\n y\na:b\n", event=" e", id=" i")]


def test_line_without_colon_is_field_with_empty_value() -> None:
    assert decode(b"event\ndata\n\n") == [ev("", event="")]


def test_unknown_fields_ignored() -> None:
    stream = b"foo: bar\nData: x\ndata : y\n data: z\nDATA\nretry : 5\ndata: ok\nbar\n\n"
    decoder = EventDecoder()
    assert decoder.feed(stream) == [ev("ok")]
    assert decoder.retry is None


def test_block_of_unknown_fields_dispatches_nothing() -> None:
    assert decode(b"foo: bar\n\n") == []


def test_last_event_field_wins_and_is_reset_after_dispatch() -> None:
    assert decode(b"event: a\nevent: b\ndata: x\n\ndata: y\n\n") == [
        ev("x", event="b"),
        ev("y"),
    ]


def test_empty_event_field_is_kept_as_empty_string() -> None:
    assert decode(b"event:\ndata: x\n\n") == [ev("x", event="")]


def test_id_with_nul_ignored() -> None:
    decoder = EventDecoder()
    stream = b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"
    assert decoder.feed(stream) == [ev("a", id="1"), ev("b", id="1")]
    assert decoder.last_event_id == "1"


def test_id_with_nul_ignored_on_fresh_decoder() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"id: \x00\ndata: a\n\n") == [ev("a")]
    assert decoder.last_event_id == ""


def test_last_id_of_block_wins() -> None:
    assert decode(b"id: 1\nid: 2\ndata: a\n\n") == [ev("a", id="2")]


def test_last_event_id_persists_across_events() -> None:
    decoder = EventDecoder()
    assert decoder.last_event_id == ""
    assert decoder.feed(b"id: 7\ndata: a\n\ndata: b\n\n") == [ev("a", id="7"), ev("b", id="7")]
    assert decoder.last_event_id == "7"


def test_last_event_id_set_only_at_dispatch() -> None:
    decoder = EventDecoder()
    decoder.feed(b"id: 7\ndata: a\n")
    assert decoder.last_event_id == ""
    decoder.feed(b"\n")
    assert decoder.last_event_id == "7"


def test_last_event_id_kept_across_close() -> None:
    decoder = EventDecoder()
    decoder.feed(b"id: 7\ndata: a\n\n")
    decoder.close()
    assert decoder.last_event_id == "7"
    # The next stream's events carry it until a new id arrives.
    assert decoder.feed(b"data: b\n\nid: 8\ndata: c\n\n") == [ev("b", id="7"), ev("c", id="8")]
    assert decoder.last_event_id == "8"


def test_id_of_unterminated_block_discarded_on_close() -> None:
    decoder = EventDecoder()
    decoder.feed(b"id: 1\ndata: a\n\nid: 2\ndata: b\n")
    decoder.close()
    assert decoder.last_event_id == "1"
    assert decoder.feed(b"data: c\n\n") == [ev("c", id="1")]


@pytest.mark.parametrize("line", [b"id", b"id:", b"id: "])
def test_empty_id_resets_last_event_id(line: bytes) -> None:
    decoder = EventDecoder()
    stream = b"id: 5\ndata: a\n\n" + line + b"\ndata: b\n\ndata: c\n\n"
    assert decoder.feed(stream) == [ev("a", id="5"), ev("b", id=""), ev("c")]
    assert decoder.last_event_id == ""


def test_block_without_data_not_dispatched_but_sets_last_event_id() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"id: 3\nevent: foo\nretry: 10\n\n") == []
    assert decoder.last_event_id == "3"
    assert decoder.retry == 10
    # The event type buffer was reset, and the block's retry does not carry over.
    assert decoder.feed(b"data: x\n\n") == [ev("x", id="3")]


def test_block_without_data_and_empty_id_resets_last_event_id() -> None:
    decoder = EventDecoder()
    decoder.feed(b"id: 3\ndata: x\n\n")
    assert decoder.feed(b"id\n\n") == []
    assert decoder.last_event_id == ""
    assert decoder.feed(b"data: y\n\n") == [ev("y")]


# --- retry ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "value"),
    [
        (b"retry: 5", 5),
        (b"retry:5", 5),
        (b"retry: 0", 0),
        (b"retry: 007", 7),
        (b"retry: 3000", 3000),
        (b"retry: 123456789012345678901234567890", 123456789012345678901234567890),
        (b"retry: " + b"0" * 5000 + b"42", 42),
    ],
)
def test_valid_retry(line: bytes, value: int) -> None:
    decoder = EventDecoder()
    assert decoder.feed(line + b"\ndata: x\n\n") == [ev("x", retry=value)]
    assert decoder.retry == value


@pytest.mark.parametrize(
    "line",
    [
        b"retry",
        b"retry:",
        b"retry: ",
        b"retry:  5",  # one space is stripped, the second one makes it invalid
        b"retry: 5 ",
        b"retry: 12a",
        b"retry: -1",
        b"retry: +1",
        b"retry: 1.5",
        b"retry: 1_000",
        b"retry: 0x10",
        "retry: ５".encode(),  # fullwidth digit: a digit, but not an ASCII digit
        "retry: ²".encode(),
        "retry: ٣".encode(),
        b"retry: " + b"9" * 5000,  # beyond Python's int-from-str limit: ignored
    ],
)
def test_invalid_retry_ignored(line: bytes) -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"retry: 100\n\n") == []
    assert decoder.feed(line + b"\ndata: x\n\n") == [ev("x")]
    assert decoder.retry == 100


def test_retry_is_per_block_on_events_but_persists_on_decoder() -> None:
    decoder = EventDecoder()
    assert decoder.retry is None
    assert decoder.feed(b"retry: 10\ndata: a\n\ndata: b\n\nretry: 20\nretry: 30\ndata: c\n\n") == [
        ev("a", retry=10),
        ev("b"),
        ev("c", retry=30),
    ]
    assert decoder.retry == 30


def test_retry_applies_at_once_and_survives_close() -> None:
    decoder = EventDecoder()
    decoder.feed(b"retry: 250\n")  # the block is not finished
    assert decoder.retry == 250
    decoder.close()
    assert decoder.retry == 250
    # The block's retry went with the block.
    assert decoder.feed(b"data: x\n\n") == [ev("x")]


# --- end of stream -------------------------------------------------------------------------------


def test_unterminated_event_discarded_on_close() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"event: e\ndata: x\n") == []
    decoder.close()
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: y\n\n") == [ev("y")]


def test_partial_line_discarded_on_close() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"data: x\n\ndata: y") == [ev("x")]
    decoder.close()
    assert decoder.feed(b"\n\n") == []
    # A truncated retry line is not applied either.
    decoder.feed(b"retry: 30")
    decoder.close()
    assert decoder.retry is None


def test_close_twice_and_reuse() -> None:
    decoder = EventDecoder()
    decoder.close()
    decoder.close()
    assert decoder.feed(b"data: x\n\n") == [ev("x")]


# --- comments ------------------------------------------------------------------------------------


def test_comments_ignored_by_default() -> None:
    assert decode(b": hello\ndata: x\n: bye\n\n:\n\n") == [ev("x")]


def test_comments_surfaced_in_order() -> None:
    stream = b": hello\n:world\n:  two\n:\n: a: b\ndata: x\n: after\n\n: tail\n"
    assert decode(stream, comments=True) == [
        ev(comment="hello"),
        ev(comment="world"),
        ev(comment=" two"),
        ev(comment=""),
        ev(comment="a: b"),
        ev(comment="after"),
        ev("x"),
        ev(comment="tail"),
    ]


def test_comment_events_have_only_a_comment() -> None:
    (comment,) = decode(b": ping\n", comments=True)
    assert (comment.data, comment.event, comment.id, comment.retry, comment.comment) == (
        None,
        None,
        None,
        None,
        "ping",
    )


def test_comment_does_not_dispatch_or_break_block() -> None:
    assert decode(b"data: a\n: c\ndata: b\n\n", comments=True) == [ev(comment="c"), ev("a\nb")]


# --- API shape -----------------------------------------------------------------------------------


def test_feed_returns_a_list_and_empty_chunk_is_harmless() -> None:
    decoder = EventDecoder()
    assert decoder.feed(b"") == []
    result = decoder.feed(b"data: x\n\n")
    assert type(result) is list
    assert decoder.feed(b"") == []


def test_properties_are_read_only() -> None:
    decoder = EventDecoder()
    with pytest.raises(AttributeError):
        decoder.last_event_id = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        decoder.retry = 5  # type: ignore[misc]


def test_comments_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        EventDecoder(True)  # type: ignore[call-arg]


def test_long_line_in_many_chunks() -> None:
    decoder = EventDecoder()
    payload = "x" * 100_000
    stream = ("data: " + payload + "\n\n").encode()
    out: list[ServerSentEvent] = []
    for start in range(0, len(stream), 7):
        out += decoder.feed(stream[start : start + 7])
    assert out == [ev(payload)]


# --- chunking does not matter ------------------------------------------------------------------

_FRAGMENTS = [
    b"data",
    b"data:",
    b"data: ",
    b"event:",
    b"id:",
    b"id",
    b"retry:",
    b"retry: ",
    b":",
    b": ",
    b" ",
    b"x",
    b"7",
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b"\n\n",
    b"\x00",
    BOM,
    "é".encode(),
    "€".encode(),
    "😀".encode(),
    b"\xff",
    b"\xe2\x82",
    b"\xf0",
]

streams = st.one_of(
    st.lists(st.sampled_from(_FRAGMENTS), max_size=60).map(b"".join),
    st.binary(max_size=200),
)


def _run(
    decoder: EventDecoder, chunks: list[bytes]
) -> tuple[list[ServerSentEvent], str, int | None]:
    out: list[ServerSentEvent] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out, decoder.last_event_id, decoder.retry


def _split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(stream)) for cut in cuts})
    bounds = [0, *points, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=150, deadline=None)
@given(stream=streams, cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=20))
def test_any_split_gives_same_events(stream: bytes, cuts: list[int]) -> None:
    for comments in (False, True):
        whole = _run(EventDecoder(comments=comments), [stream])
        assert _run(EventDecoder(comments=comments), _split(stream, cuts)) == whole
        one_byte = [stream[i : i + 1] for i in range(len(stream))]
        assert _run(EventDecoder(comments=comments), one_byte) == whole


# --- against a direct, slow reading of the algorithm -----------------------------------------


def _reference(stream: bytes, comments: bool) -> tuple[list[ServerSentEvent], str, int | None]:
    """WHATWG 9.2.6 transcribed line by line, on the whole stream at once."""
    text = stream.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = re.split(r"\r\n|\r|\n", text)
    lines.pop()  # the last line has no line end: pending data, discarded at end of file
    events: list[ServerSentEvent] = []
    data_buffer = ""
    event_type: str | None = None
    id_buffer = ""
    id_seen = False
    last_event_id = ""
    reconnection_time: int | None = None
    block_retry: int | None = None
    for line in lines:
        if line == "":
            last_event_id = id_buffer
            if data_buffer != "":
                if data_buffer.endswith("\n"):
                    data_buffer = data_buffer[:-1]
                shown_id = last_event_id if id_seen or last_event_id != "" else None
                events.append(ev(data_buffer, event=event_type, id=shown_id, retry=block_retry))
            data_buffer = ""
            event_type = None
            id_seen = False
            block_retry = None
            continue
        if line.startswith(":"):
            if comments:
                value = line[1:]
                events.append(ev(comment=value[1:] if value.startswith(" ") else value))
            continue
        if ":" in line:
            field, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line, ""
        if field == "event":
            event_type = value
        elif field == "data":
            data_buffer += value + "\n"
        elif field == "id":
            if "\x00" not in value:
                id_buffer = value
                id_seen = True
        elif field == "retry" and value and all(c in "0123456789" for c in value):
            reconnection_time = block_retry = int(value)
    return events, last_event_id, reconnection_time


@settings(max_examples=200, deadline=None)
@given(stream=streams, comments=st.booleans())
def test_matches_reference_reading(stream: bytes, comments: bool) -> None:
    assert _run(EventDecoder(comments=comments), [stream]) == _reference(stream, comments)
