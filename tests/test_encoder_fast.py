"""The encoder's f-string paths (issue 18) write what plain concatenation wrote, byte for byte.

``reference`` below is the encoder as it was before (field by field, ``+`` on ``str``): every
combination of fields, and any text hypothesis finds, must encode the same; ``str``
subclasses (a ``(str, Enum)`` event name, a subclassed separator) write their characters, not
their ``__format__``; an event's cached encoding is per separator.
"""

from __future__ import annotations

import enum
import itertools
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_sse import JSONServerSentEvent, ServerSentEvent
from trio_sse._encoder import encode_fields, split_lines
from trio_sse.sse import ensure_bytes


def reference(
    data: str | None,
    event: str | None,
    id: str | None,
    retry: int | None,
    comment: str | None,
    sep: str,
) -> bytes:
    text = ""
    if comment is not None:
        text += "".join(": " + line + sep for line in split_lines(comment))
    if id is not None:
        text += "id: " + id + sep
    if event is not None:
        text += "event: " + event + sep
    if data is not None:
        text += "".join("data: " + line + sep for line in split_lines(data))
    if retry is not None:
        text += "retry: " + str(retry) + sep
    return (text + sep).encode("utf-8")


DATA = (None, "", "one line", "two\nlines", "cr\rlf\r\n", "trailing\n", " lead")
EVENTS = (None, "", "tick")
IDS = (None, "", "7", "é-ü")
RETRIES = (None, 0, 2500)
COMMENTS = (None, "", "note", "a\nb")
SEPS = ("\r\n", "\n", "\r")


@pytest.mark.parametrize("sep", SEPS)
def test_every_combination_of_fields_encodes_as_before(sep: str) -> None:
    for data, event, id, retry, comment in itertools.product(DATA, EVENTS, IDS, RETRIES, COMMENTS):
        fields = (data, event, id, retry, comment, sep)
        assert encode_fields(*fields) == reference(*fields), fields


line = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0"))
text = st.text(st.characters(exclude_categories=["Cs"]))


@settings(max_examples=300, deadline=None)
@given(
    data=st.none() | text,
    event=st.none() | line,
    id=st.none() | line,
    retry=st.none() | st.integers(min_value=0, max_value=2**40),
    comment=st.none() | text,
    sep=st.sampled_from(SEPS),
)
def test_any_event_encodes_as_before(
    data: str | None,
    event: str | None,
    id: str | None,
    retry: int | None,
    comment: str | None,
    sep: str,
) -> None:
    built = ServerSentEvent(data, event=event, id=id, retry=retry, comment=comment)
    expected = reference(data, event, id, retry, comment, sep)
    assert built.encode(sep) == expected
    assert ensure_bytes(built.replace(), sep) == expected  # the stream's path, a fresh cache


class Kind(str, enum.Enum):  # noqa: UP042 (a StrEnum formats as its value: not the case)
    TICK = "tick"
    ID = "41"


class Shouty(str):
    __slots__ = ()

    def __str__(self) -> str:
        return self.upper()

    def __format__(self, spec: str) -> str:
        return "formatted"


class Crlf(str):
    __slots__ = ()

    def __format__(self, spec: str) -> str:
        return "<sep>"


def test_a_str_enum_event_and_id_write_their_values() -> None:
    assert format(Kind.TICK) != "tick"  # what an f-string of the member itself would write
    event = ServerSentEvent("x", event=Kind.TICK, id=Kind.ID)
    assert event.encode("\n") == b"id: 41\nevent: tick\ndata: x\n\n"
    assert event.event == Kind.TICK and event.id == Kind.ID
    assert type(event.event) is str and type(event.id) is str


def test_str_subclasses_write_their_characters_not_their_format() -> None:
    event = ServerSentEvent("x", event=Shouty("ev"), id=Shouty("i"), sep=Crlf("\n"))
    assert event.encode() == b"id: i\nevent: ev\ndata: x\n\n"
    assert ServerSentEvent("x").encode(Crlf("\r")) == b"data: x\r\r"
    assert event.event == "ev" and event.sep == "\n"


def test_the_cache_is_per_separator_and_starts_empty() -> None:
    event = ServerSentEvent("a\nb", id="1")
    first = event.encode("\n")
    assert event.encode("\n") is first  # cached
    assert event.encode("\r") == b"id: 1\rdata: a\rdata: b\r\r"
    assert event.encode("\n") == first
    # No separator equals "no encoding yet": not even the empty string some caller passes.
    assert ensure_bytes(ServerSentEvent("x"), "") == b"data: x"
    with pytest.raises(ValueError, match=r"^sep must be one of"):
        ServerSentEvent("x").encode("")


def test_copies_and_pickles_do_not_share_a_stale_encoding() -> None:
    event = ServerSentEvent("x", id="1")
    event.encode("\n")
    changed = event.replace(id="2")
    assert changed.encode("\n") == b"id: 2\ndata: x\n\n"
    restored = pickle.loads(pickle.dumps(event))
    assert restored.encode("\r\n") == b"id: 1\r\ndata: x\r\n\r\n"
    typed = JSONServerSentEvent({"a": 1}, id="3")
    typed.encode("\n")
    assert typed.replace(event="e").encode("\n") == b'id: 3\nevent: e\ndata: {"a":1}\n\n'
