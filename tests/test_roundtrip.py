"""Encoding then decoding with the WHATWG algorithm gives the event back (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_sse import EventDecoder, JSONServerSentEvent, ServerSentEvent
from trio_sse._encoder import split_lines

SEPS = ("\r\n", "\n", "\r")

# Surrogates cannot be encoded as UTF-8, so no event can hold them.
_chars = st.characters(exclude_categories=["Cs"])
_plain = st.text(_chars, max_size=30)
_tricky = st.sampled_from(
    ["\r", "\n", "\r\n", "\n\r", " ", "  ", ":", ": ", "\x00", "\ufeff", "\u2028", "\x85", "é😀"]
)
# Text with line breaks, leading/trailing spaces and newlines, colons, NULs...
_text = st.lists(st.one_of(_plain, _tricky), max_size=12).map("".join)
# ...and some long text.
_long = st.builds(
    lambda piece, times: piece * times,
    st.text(_chars, min_size=1, max_size=8),
    st.integers(min_value=200, max_value=3000),
)
data_strategy = st.one_of(_text, _long)


def _single_line(*, nul: bool) -> st.SearchStrategy[str]:
    pieces = st.one_of(_plain, st.sampled_from([" ", "  ", ":", "\x00", "\ufeff", "é"]))
    text = st.lists(pieces, max_size=6).map(
        lambda s: "".join(s).replace("\r", "").replace("\n", "")
    )
    return text if nul else text.map(lambda s: s.replace("\x00", ""))


event_strategy = st.none() | _single_line(nul=True)
id_strategy = st.none() | _single_line(nul=False) | st.integers(min_value=0, max_value=10**18)
retry_strategy = st.none() | st.integers(min_value=0, max_value=10**12)
comment_strategy = st.none() | _text


def _normalise(data: str) -> str:
    return "\n".join(split_lines(data))


@st.composite
def events(draw: st.DrawFn, *, with_comment: bool) -> ServerSentEvent:
    return ServerSentEvent(
        draw(data_strategy),
        event=draw(event_strategy),
        id=draw(id_strategy),
        retry=draw(retry_strategy),
        comment=draw(comment_strategy) if with_comment else None,
        sep=draw(st.none() | st.sampled_from(SEPS)),
    )


def _expected(event: ServerSentEvent) -> ServerSentEvent:
    assert event.data is not None
    return ServerSentEvent(
        _normalise(event.data), event=event.event, id=event.id, retry=event.retry
    )


@settings(max_examples=150, deadline=None)
@given(event=events(with_comment=True))
def test_round_trip_one_event(event: ServerSentEvent) -> None:
    for sep in SEPS:
        assert EventDecoder().feed(event.encode(sep)) == [_expected(event)]


@settings(max_examples=100, deadline=None)
@given(event=events(with_comment=True))
def test_round_trip_with_comments(event: ServerSentEvent) -> None:
    comments = [] if event.comment is None else split_lines(event.comment)
    expected = [ServerSentEvent(comment=line) for line in comments] + [_expected(event)]
    for sep in SEPS:
        decoded = EventDecoder(comments=True).feed(event.encode(sep))
        assert decoded == expected
        # The comment events carry nothing else.
        assert all(e.data is None for e in decoded[:-1])


@settings(max_examples=100, deadline=None)
@given(event=events(with_comment=False))
def test_round_trip_fields_exactly(event: ServerSentEvent) -> None:
    # Equality is the contract; check each field too, including that id/event/retry are None
    # exactly when they were not set.
    (decoded,) = EventDecoder().feed(event.encode())
    expected = _expected(event)
    assert (decoded.data, decoded.event, decoded.id, decoded.retry, decoded.comment) == (
        expected.data,
        expected.event,
        expected.id,
        expected.retry,
        None,
    )


@settings(max_examples=75, deadline=None)
@given(
    stream=st.lists(
        st.tuples(events(with_comment=False), st.sampled_from(SEPS)), min_size=1, max_size=8
    ),
    cut=st.integers(min_value=1, max_value=64),
)
def test_round_trip_sequence(stream: list[tuple[ServerSentEvent, str]], cut: int) -> None:
    wire = b"".join(event.encode(sep) for event, sep in stream)
    # The id persists from event to event, as in a browser: an event without an id carries
    # the last one seen ("" included), and None only while nothing (or "") was seen.
    expected: list[ServerSentEvent] = []
    last_id = ""
    for event, _ in stream:
        if event.id is not None:
            last_id = event.id
        shown = last_id if event.id is not None or last_id else None
        expected.append(_expected(event).replace(id=shown))

    decoder = EventDecoder()
    assert decoder.feed(wire) == expected
    assert decoder.last_event_id == last_id
    retries = [event.retry for event, _ in stream if event.retry is not None]
    assert decoder.retry == (retries[-1] if retries else None)

    # The same stream in chunks of *cut* bytes decodes the same.
    chunked = EventDecoder()
    decoded: list[ServerSentEvent] = []
    for start in range(0, len(wire), cut):
        decoded += chunked.feed(wire[start : start + cut])
    assert decoded == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(_chars),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(_chars, max_size=8), children, max_size=4)
    ),
    max_leaves=15,
)


@settings(max_examples=75, deadline=None)
# A top-level None means "no data field" (no event at all); nested ones are JSON null.
@given(value=json_values.filter(lambda v: v is not None), sep=st.sampled_from(SEPS))
def test_json_round_trip(value: Any, sep: str) -> None:
    event = JSONServerSentEvent(value, event="json")
    (decoded,) = EventDecoder().feed(event.encode(sep))
    assert decoded == event
    assert decoded.json() == value
