"""_resume: untrusted Last-Event-ID and cursor parsing, and reset events. Plain sync tests."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers, QueryParams

from trio_sse import EventDecoder, ServerSentEvent
from trio_sse._resume import (
    MAX_LAST_EVENT_ID_LENGTH,
    MAX_STREAM_ID_PART,
    Resume,
    choose_last_event_id,
    header_text,
    last_event_id_from,
    parse_last_event_id,
    parse_memory_id,
    parse_stream_id,
    reset_event,
)

MAX = MAX_LAST_EVENT_ID_LENGTH

# -- parse_last_event_id ---------------------------------------------------------------------


def test_no_id_is_not_a_resume() -> None:
    for value in (None, "", b"", bytearray(), memoryview(b"")):
        assert parse_last_event_id(value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", Resume("7", "7")),
        (b"7", Resume("7", "7")),
        (bytearray(b"ab-1"), Resume("ab-1", "ab-1")),
        (memoryview(b"ab-1"), Resume("ab-1", "ab-1")),
        (12, Resume("12", "12")),
        ("é-1", Resume("é-1", "é-1")),
        ("é-1".encode(), Resume("é-1", "é-1")),
        ("x" * MAX, Resume("x" * MAX, "x" * MAX)),
        (" padded ", Resume(" padded ", " padded ")),  # never rewritten: a rewrite breaks resume
    ],
)
def test_ids_that_can_be_looked_up(value: object, expected: Resume) -> None:
    assert parse_last_event_id(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "x" * (MAX + 1),
        "é" * (MAX + 1),
        "x" * 1_000_000,
        b"x" * (4 * MAX + 1),
        b"\xff" * 1_000_000,
        memoryview(b"x" * 1_000_000),
    ],
)
def test_over_long_ids_are_unknown_and_not_echoed(value: object) -> None:
    assert parse_last_event_id(value) == Resume(None, None)


@pytest.mark.parametrize("bad", ["\r", "\n", "\0", "\r\n"])
def test_ids_no_event_can_have_are_unknown_but_echoed(bad: str) -> None:
    value = f"a{bad}b"
    assert parse_last_event_id(value) == Resume(None, value)
    assert parse_last_event_id(value.encode()) == Resume(None, value)


def test_invalid_utf8_bytes_are_decoded_with_replacement() -> None:
    assert parse_last_event_id(b"a\xffb") == Resume("a\ufffdb", "a\ufffdb")


def test_a_lone_surrogate_is_looked_up_as_is_but_echoed_encodable() -> None:
    resume = parse_last_event_id("a\ud800b")
    assert resume is not None
    assert resume.lookup == "a\ud800b"
    assert resume.echo == "a?b"
    reset_event("unknown-id", resume.echo).encode()  # does not raise


@pytest.mark.parametrize("value", [1.5, True, False, object(), ["1"], {"id": "1"}])
def test_other_types_are_a_type_error_naming_the_argument(value: object) -> None:
    with pytest.raises(TypeError, match=rf"last_event_id .*got {type(value).__name__}"):
        parse_last_event_id(value)


def _check_resume(value: str | bytes, resume: Resume | None) -> None:
    if resume is None:
        assert value in ("", b"")
        return
    assert resume.lookup is None or len(resume.lookup) <= MAX
    assert resume.echo is None or len(resume.echo) <= MAX
    if resume.echo is not None:
        resume.echo.encode("utf-8")  # always encodable
    if resume.lookup is not None:
        assert not set(resume.lookup) & {"\r", "\n", "\0"}
        if isinstance(value, str):
            assert resume.lookup == value


@given(st.text(max_size=2 * MAX))
def test_any_text_is_parsed_without_error(value: str) -> None:
    _check_resume(value, parse_last_event_id(value))


@given(st.binary(max_size=5 * MAX))
def test_any_bytes_are_parsed_without_error(value: bytes) -> None:
    _check_resume(value, parse_last_event_id(value))


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=MAX))
def test_an_id_survives_the_trip_through_utf8_bytes(value: str) -> None:
    resume = parse_last_event_id(value.encode())
    if len(value.encode()) <= 4 * MAX and not set(value) & {"\r", "\n", "\0"}:
        assert resume == Resume(value, value)


# -- reset_event -----------------------------------------------------------------------------


@pytest.mark.parametrize("echo", ["7", None, 'é "quoted" \\ 🙂', "a\nb"])
def test_reset_event(echo: str | None) -> None:
    event = reset_event("expired", echo)
    assert (event.event, event.id) == ("reset", None)
    assert json.loads(str(event.data)) == {"reason": "expired", "last_event_id": echo}
    (decoded,) = EventDecoder().feed(event.encode())
    assert decoded == event  # the JSON is one line whatever the echo holds
    assert isinstance(event, ServerSentEvent)


# -- header_text, choose_last_event_id, last_event_id_from -----------------------------------


def test_header_text() -> None:
    assert header_text("plain-1") == "plain-1"
    # A UTF-8 header value, which Starlette decodes as latin-1, is read back as UTF-8.
    assert header_text("é-1".encode().decode("latin-1")) == "é-1"
    assert header_text("\xe9") == "\xe9"  # not valid UTF-8 as bytes: kept as it is
    assert header_text("\u0100") == "\u0100"  # not latin-1 at all: kept as it is
    long = "é".encode().decode("latin-1") * (4 * MAX)
    assert header_text(long) == long  # too long to be resumed: not worth decoding


@given(st.text(max_size=2 * MAX))
def test_header_text_never_raises(value: str) -> None:
    assert isinstance(header_text(value), str)


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=MAX))
def test_header_text_undoes_the_latin1_reading(value: str) -> None:
    assert header_text(value.encode().decode("latin-1")) == value


def test_choose_last_event_id() -> None:
    assert choose_last_event_id("a", "b") == "a"  # the header holds the newest id
    assert choose_last_event_id("", "b") == "b"
    assert choose_last_event_id(None, "b") == "b"
    assert choose_last_event_id(None, None) is None
    assert choose_last_event_id("", "") is None
    assert choose_last_event_id(7, None) == "7"


class FakeRequest:
    def __init__(self, headers: dict[str, str], query: str = "") -> None:
        self.headers = Headers(
            raw=[(key.lower().encode(), value.encode("latin-1")) for key, value in headers.items()]
        )
        self.query_params = QueryParams(query)


def test_last_event_id_from_requests_and_values() -> None:
    assert last_event_id_from(None) is None
    assert last_event_id_from("7") == "7"
    assert last_event_id_from(b"7") == b"7"
    assert last_event_id_from(FakeRequest({"Last-Event-ID": "a"}, "lastEventId=b")) == "a"
    assert last_event_id_from(FakeRequest({}, "lastEventId=b%20c")) == "b c"
    assert last_event_id_from(FakeRequest({"last-event-id": ""}, "lastEventId=q")) == "q"
    assert last_event_id_from(FakeRequest({})) is None
    utf8 = "é-1".encode().decode("latin-1")
    assert last_event_id_from(FakeRequest({"last-event-id": utf8})) == "é-1"
    latin = "\xe9"
    assert last_event_id_from(FakeRequest({"last-event-id": latin})) == latin


def test_last_event_id_from_anything_with_headers() -> None:
    class Bare:
        def __init__(self, headers: dict[str, Any]) -> None:
            self.headers = headers

    assert last_event_id_from(Bare({"last-event-id": "h"})) == "h"  # no query_params
    assert last_event_id_from(Bare({})) is None


@pytest.mark.parametrize("source", [3.5, 7, object(), ["7"]])
def test_last_event_id_from_refuses_what_is_neither(source: object) -> None:
    with pytest.raises(TypeError, match=rf"request .*got {type(source).__name__}"):
        last_event_id_from(source)


def test_a_hostile_request_id_is_bounded_end_to_end() -> None:
    huge = "é".encode().decode("latin-1") * 100_000
    assert parse_last_event_id(last_event_id_from(FakeRequest({"last-event-id": huge}))) == (
        Resume(None, None)
    )


# -- cursors: Redis stream ids, memory ids ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("0-0", (0, 0)),
        ("1718000000000-3", (1718000000000, 3)),
        (f"{MAX_STREAM_ID_PART}-{MAX_STREAM_ID_PART}", (MAX_STREAM_ID_PART, MAX_STREAM_ID_PART)),
    ],
)
def test_canonical_stream_ids(text: str, position: tuple[int, int]) -> None:
    assert parse_stream_id(text) == position


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-",
        "5",
        "1-",
        "-1",
        "-1-0",
        "+1-0",
        "1-+0",
        "01-0",
        "1-00",
        " 1-0",
        "1-0 ",
        "1_0-0",
        "1-0-0",
        "a-b",
        "١-٠",  # Arabic-Indic digits: isdigit() but not ASCII
        "²-1",  # superscript two: isdigit() but not a number int() takes
        f"{MAX_STREAM_ID_PART + 1}-0",
        f"0-{MAX_STREAM_ID_PART + 1}",
        "1" * 21 + "-0",
        "9" * 100_000 + "-0",
        "1-0\0",
        "1\n-0",
    ],
)
def test_malformed_stream_ids(text: str) -> None:
    assert parse_stream_id(text) is None


@given(st.text(max_size=60))
def test_any_text_is_a_stream_id_or_none(text: str) -> None:
    position = parse_stream_id(text)
    if position is not None:
        assert f"{position[0]}-{position[1]}" == text  # canonical: read back as given


@given(st.integers(0, MAX_STREAM_ID_PART), st.integers(0, MAX_STREAM_ID_PART))
def test_stream_ids_round_trip(ms: int, seq: int) -> None:
    assert parse_stream_id(f"{ms}-{seq}") == (ms, seq)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("0badcafe-1", ("0badcafe", 1)),
        ("0badcafe-0012", ("0badcafe", 12)),
        ("-3", ("", 3)),
        ("e-" + "9" * (MAX - 2), ("e", int("9" * (MAX - 2)))),
    ],
)
def test_memory_ids(text: str, parsed: tuple[str, int]) -> None:
    assert parse_memory_id(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0badcafe",
        "0badcafe-",
        "0badcafe-1x",
        "0badcafe--1",
        "0badcafe-+1",
        "0badcafe-١",
        "0badcafe-²",
        "a-b-1",
        "e-" + "9" * (MAX - 1),  # over the length limit
        "e-" + "9" * 100_000,  # int() would refuse (4300 digits) if it were called
    ],
)
def test_malformed_memory_ids(text: str) -> None:
    assert parse_memory_id(text) is None


@given(st.text(max_size=2 * MAX))
def test_any_text_is_a_memory_id_or_none(text: str) -> None:
    parsed = parse_memory_id(text)
    if parsed is not None:
        epoch, number = parsed
        assert text.startswith(f"{epoch}-")
        assert int(text[len(epoch) + 1 :]) == number
