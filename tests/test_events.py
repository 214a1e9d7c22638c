"""ServerSentEvent / JSONServerSentEvent: validation, exact encoding, value semantics."""

from __future__ import annotations

import copy
import math
import pickle
import re
from typing import Any

import pytest

from trio_sse import EventDecoder, JSONServerSentEvent, ServerSentEvent
from trio_sse._encoder import SEPARATORS, split_lines
from trio_sse._events import encode_item

SEPS = ["\r\n", "\n", "\r"]


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\nb", "\n", "\r", "end\n"])
def test_event_with_line_break_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="event"):
        ServerSentEvent("x", event=bad)


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\nb", "\n", "1\x002", "\x00"])
def test_id_with_line_break_or_nul_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="id"):
        ServerSentEvent("x", id=bad)


@pytest.mark.parametrize("bad", [-1, -1000])
def test_negative_retry_is_a_value_error_by_name(bad: int) -> None:
    with pytest.raises(ValueError, match=f"^retry must be >= 0, got {bad}$"):
        ServerSentEvent("x", retry=bad)


@pytest.mark.parametrize("bad", ["ten", True, False, 1.0, 1.5, math.nan, "5", "", b"5", [1]])
def test_retry_of_wrong_type_is_a_type_error_by_name(bad: object) -> None:
    # sse-starlette and Python's convention: a wrong type is a TypeError (issue 12).
    with pytest.raises(TypeError, match=r"^retry must be an int \(milliseconds\), got "):
        ServerSentEvent("x", retry=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry"):
        JSONServerSentEvent({"a": 1}, retry=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [1, 1.5, b"e", ["e"]])
def test_event_of_wrong_type_rejected(bad: object) -> None:
    with pytest.raises(TypeError, match="^" + re.escape(f"event must be a str, got {bad!r}") + "$"):
        ServerSentEvent("x", event=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [True, 1.5, b"1", ["1"]])
def test_id_of_wrong_type_rejected(bad: object) -> None:
    with pytest.raises(TypeError, match=r"^id must be a str or an int, got "):
        ServerSentEvent("x", id=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", " ", "\n\n", "\r\n\r\n", "\n\r", "x"])
def test_bad_sep_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match=r"^sep must be one of"):
        ServerSentEvent("x", sep=bad)
    with pytest.raises(ValueError, match=r"^sep must be one of"):
        ServerSentEvent("x").encode(bad)


@pytest.mark.parametrize("bad", [b"\n", 10, ["\n"], {}])
def test_sep_of_wrong_type_is_a_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match=r"^sep must be one of .* \(a str\), got "):
        ServerSentEvent("x", sep=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^sep must be"):
        ServerSentEvent("x").encode(bad)  # type: ignore[arg-type]


def test_valid_values_accepted() -> None:
    event = ServerSentEvent("x", event="", id="", retry=0, comment="", sep="\n")
    assert (event.data, event.event, event.id, event.retry, event.comment, event.sep) == (
        "x",
        "",
        "",
        0,
        "",
        "\n",
    )
    assert ServerSentEvent(retry=10**20).retry == 10**20


def test_separators_constant() -> None:
    assert frozenset({"\r\n", "\n", "\r"}) == SEPARATORS


# --- exact bytes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sep", SEPS)
def test_encode_all_fields_in_order(sep: str) -> None:
    event = ServerSentEvent("d", event="e", id="i", retry=5, comment="c")
    expected = sep.join([": c", "id: i", "event: e", "data: d", "retry: 5", "", ""])
    assert event.encode(sep) == expected.encode()


def test_encode_default_sep_is_crlf() -> None:
    event = ServerSentEvent("d", event="e", id="i", retry=5, comment="c")
    assert event.encode() == b": c\r\nid: i\r\nevent: e\r\ndata: d\r\nretry: 5\r\n\r\n"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (ServerSentEvent("x"), b"data: x\n\n"),
        (ServerSentEvent(event="e"), b"event: e\n\n"),
        (ServerSentEvent(id="1"), b"id: 1\n\n"),
        (ServerSentEvent(retry=0), b"retry: 0\n\n"),
        (ServerSentEvent(comment="c"), b": c\n\n"),
        (ServerSentEvent(comment=""), b": \n\n"),
        (ServerSentEvent(), b"\n"),
        (ServerSentEvent("x", retry=3000, comment="hi"), b": hi\ndata: x\nretry: 3000\n\n"),
    ],
)
def test_encode_single_fields(event: ServerSentEvent, expected: bytes) -> None:
    assert event.encode("\n") == expected


def test_encode_sep_argument_vs_own_sep_vs_default() -> None:
    own = ServerSentEvent("a\nb", sep="\n")
    assert own.encode() == b"data: a\ndata: b\n\n"  # its own sep
    assert own.encode("\r") == b"data: a\rdata: b\r\r"  # the argument wins
    assert own.encode("\r\n") == b"data: a\r\ndata: b\r\n\r\n"
    assert own.encode() == b"data: a\ndata: b\n\n"  # the cache did not stick to the last sep
    plain = ServerSentEvent("a\nb")
    assert plain.encode() == b"data: a\r\ndata: b\r\n\r\n"  # the default
    assert plain.encode(None) == plain.encode("\r\n")


def test_encode_is_repeatable_across_seps() -> None:
    event = ServerSentEvent("x", id="1")
    for sep in [*SEPS, *reversed(SEPS), "\n", "\n"]:
        assert event.encode(sep) == f"id: 1{sep}data: x{sep}{sep}".encode()


@pytest.mark.parametrize("data", ["a\nb\nc", "a\rb\rc", "a\r\nb\r\nc", "a\nb\r\nc"])
def test_multi_line_data(data: str) -> None:
    assert ServerSentEvent(data).encode("\n") == b"data: a\ndata: b\ndata: c\n\n"


def test_crlf_in_data_is_one_line_break() -> None:
    assert ServerSentEvent("a\r\n\r\nb").encode("\n") == b"data: a\ndata: \ndata: b\n\n"
    assert ServerSentEvent("a\n\rb").encode("\n") == b"data: a\ndata: \ndata: b\n\n"


def test_multi_line_comment() -> None:
    assert ServerSentEvent(comment="a\nb\r\nc\rd").encode("\n") == b": a\n: b\n: c\n: d\n\n"


def test_empty_data_is_one_empty_data_line() -> None:
    encoded = ServerSentEvent("").encode("\n")
    assert encoded == b"data: \n\n"
    assert EventDecoder().feed(encoded) == [ServerSentEvent("")]


def test_data_ending_in_newline() -> None:
    encoded = ServerSentEvent("a\n").encode("\n")
    assert encoded == b"data: a\ndata: \n\n"
    assert EventDecoder().feed(encoded) == [ServerSentEvent("a\n")]


@pytest.mark.parametrize("data", [" x", "  x", " ", "x ", "\tx"])
def test_leading_space_kept_after_decode(data: str) -> None:
    encoded = ServerSentEvent(data, event=data, id=data).encode()
    assert EventDecoder().feed(encoded) == [ServerSentEvent(data, event=data, id=data)]


def test_other_unicode_line_separators_not_split() -> None:
    data = "a\u2028b\u2029c\x85d\x0be\x0cf"
    assert split_lines(data) == [data]
    assert ServerSentEvent(data).encode("\n") == f"data: {data}\n\n".encode()


def test_utf8_encoded() -> None:
    assert ServerSentEvent("é😀", event="ü").encode("\n") == "event: ü\ndata: é😀\n\n".encode()


def test_non_str_data_is_str_ed() -> None:
    class Thing:
        def __str__(self) -> str:
            return "line1\nline2"

    assert ServerSentEvent(42).data == "42"
    assert ServerSentEvent(1.5).data == "1.5"
    assert ServerSentEvent([1, 2]).data == "[1, 2]"
    assert ServerSentEvent(Thing()).encode("\n") == b"data: line1\ndata: line2\n\n"


def test_int_id_kept_as_decimal_string() -> None:
    event = ServerSentEvent("x", id=42)
    assert event.id == "42"
    assert event.encode("\n") == b"id: 42\ndata: x\n\n"
    assert ServerSentEvent(id=0).id == "0"
    assert ServerSentEvent(id=-3).id == "-3"


def test_id_never_rewritten() -> None:
    for value in ["  spaced  ", "ünïcode", "a:b", "", "0007"]:
        assert ServerSentEvent(id=value).id == value


# --- value semantics ------------------------------------------------------------------------------


def test_immutable() -> None:
    event = ServerSentEvent("x")
    for name in ["data", "event", "id", "retry", "comment", "sep", "other"]:
        with pytest.raises(AttributeError):
            setattr(event, name, "y")
    with pytest.raises(AttributeError):
        del event.data
    assert event.data == "x"


def test_equality_and_hash_ignore_sep() -> None:
    a = ServerSentEvent("x", event="e", id="1", retry=5, comment="c", sep="\n")
    b = ServerSentEvent("x", event="e", id="1", retry=5, comment="c")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1


@pytest.mark.parametrize(
    "other",
    [
        ServerSentEvent("y", event="e", id="1", retry=5, comment="c"),
        ServerSentEvent("x", event="f", id="1", retry=5, comment="c"),
        ServerSentEvent("x", event="e", id="2", retry=5, comment="c"),
        ServerSentEvent("x", event="e", id="1", retry=6, comment="c"),
        ServerSentEvent("x", event="e", id="1", retry=5, comment="d"),
        ServerSentEvent("x", event="e", id="1", retry=5),
    ],
)
def test_inequality(other: ServerSentEvent) -> None:
    assert ServerSentEvent("x", event="e", id="1", retry=5, comment="c") != other


def test_not_equal_to_other_types() -> None:
    assert ServerSentEvent("x") != "x"
    assert ServerSentEvent("x") != {"data": "x"}
    assert ServerSentEvent("") != ServerSentEvent(None)


def test_repr_shows_set_fields() -> None:
    assert repr(ServerSentEvent("x", id="1")) == "ServerSentEvent(data='x', id='1')"
    assert repr(JSONServerSentEvent([1])) == "JSONServerSentEvent(data='[1]')"


def test_replace_method() -> None:
    event = ServerSentEvent("x", event="e", id="1", retry=5, comment="c", sep="\n")
    changed = event.replace(id="2", data="y")
    assert changed == ServerSentEvent("y", event="e", id="2", retry=5, comment="c")
    assert changed.sep == "\n"
    assert event.id == "1"  # the original is untouched
    assert event.replace(sep=None).sep is None
    assert event.replace(id=7).id == "7"


def test_replace_validates_again() -> None:
    event = ServerSentEvent("x")
    with pytest.raises(ValueError, match="id"):
        event.replace(id="a\nb")
    with pytest.raises(ValueError, match="retry"):
        event.replace(retry=-1)
    with pytest.raises(ValueError, match="sep"):
        event.replace(sep="\n\n")
    with pytest.raises(TypeError, match="bogus"):
        event.replace(bogus=1)


def test_copy_replace() -> None:
    """``copy.replace`` (3.13+) calls ``__replace__``; older Pythons call it directly."""
    event = ServerSentEvent("x", id="1")
    replace: Any = getattr(copy, "replace", lambda obj, **changes: obj.__replace__(**changes))
    assert replace(event, id="2") == ServerSentEvent("x", id="2")
    with pytest.raises(ValueError, match="event"):
        replace(event, event="a\rb")


def test_dunder_replace_is_replace() -> None:
    event = ServerSentEvent("x", id="1")
    assert event.__replace__(id="2") == ServerSentEvent("x", id="2")


def test_copy_and_deepcopy() -> None:
    event = ServerSentEvent("x", event="e", id="1", retry=5, comment="c", sep="\r")
    for clone in (copy.copy(event), copy.deepcopy(event)):
        assert clone == event
        assert clone.sep == "\r"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_round_trip(protocol: int) -> None:
    event = ServerSentEvent("x\ny", event="e", id="1", retry=5, comment="c", sep="\n")
    clone = pickle.loads(pickle.dumps(event, protocol=protocol))
    assert clone == event
    assert clone.sep == "\n"
    assert clone.encode() == event.encode()


def test_pickle_json_event_keeps_its_data() -> None:
    event = JSONServerSentEvent({"a": [1, 2]}, id="1")
    clone = pickle.loads(pickle.dumps(event))
    assert clone == event
    assert clone.data == '{"a":[1,2]}'  # not JSON-encoded a second time


def test_encode_cached_result_is_stable() -> None:
    event = ServerSentEvent("x")
    first = event.encode("\n")
    assert event.encode("\n") is first
    assert event.encode("\r") == b"data: x\r\r"
    assert event.encode("\n") == first


# --- JSONServerSentEvent --------------------------------------------------------------------------


def test_json_event_is_compact() -> None:
    event = JSONServerSentEvent({"a": [1, 2], "b": {"c": None}}, event="e", id=3)
    assert event.data == '{"a":[1,2],"b":{"c":null}}'
    assert event.encode("\n") == b'id: 3\nevent: e\ndata: {"a":[1,2],"b":{"c":null}}\n\n'
    assert isinstance(event, ServerSentEvent)


def test_json_event_not_ascii_escaped() -> None:
    event = JSONServerSentEvent({"k": "é😀"})
    assert event.data == '{"k":"é😀"}'
    assert event.encode("\n") == '{"k":"é😀"}'.join(["data: ", "\n\n"]).encode()


def test_json_event_escapes_newlines_in_strings() -> None:
    event = JSONServerSentEvent({"k": "a\nb\r"})
    assert event.encode("\n") == b'data: {"k":"a\\nb\\r"}\n\n'


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, [1.0, math.nan]])
def test_json_event_refuses_nan_and_infinity(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^data must be valid JSON .*, got "):
        JSONServerSentEvent(bad)


def test_json_event_refuses_unserialisable() -> None:
    with pytest.raises(TypeError, match=r"^data must be JSON serialisable .*, got <object object"):
        JSONServerSentEvent(object())


def test_json_event_none_means_no_data() -> None:
    event = JSONServerSentEvent(None, event="e")
    assert event.data is None
    assert event.encode("\n") == b"event: e\n\n"


@pytest.mark.parametrize("value", ["null", 0, "", [], {}, False, "text"])
def test_json_event_falsy_and_scalar_values(value: object) -> None:
    event = JSONServerSentEvent(value)
    assert event.data is not None
    assert event.json() == value


def test_json_method() -> None:
    assert ServerSentEvent('{"a":1}').json() == {"a": 1}
    assert ServerSentEvent("[1, 2.5, null]").json() == [1, 2.5, None]
    with pytest.raises(ValueError, match="no data"):
        ServerSentEvent(event="e").json()
    with pytest.raises(ValueError):  # noqa: PT011 - json.JSONDecodeError's message varies
        ServerSentEvent("not json").json()


def test_json_round_trip_through_decoder() -> None:
    value = {"list": [1, 2.5, None, True], "text": "a\nb é", "nested": {"x": []}}
    (decoded,) = EventDecoder().feed(JSONServerSentEvent(value, id=1).encode())
    assert decoded.json() == value
    assert decoded.id == "1"


# --- encode_item ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sep", SEPS)
def test_encode_item_event_without_own_sep_uses_given_sep(sep: str) -> None:
    event = ServerSentEvent("a\nb", id="1")
    assert encode_item(event, sep) == event.encode(sep)


@pytest.mark.parametrize("sep", SEPS)
def test_encode_item_event_own_sep_wins(sep: str) -> None:
    event = ServerSentEvent("a\nb", sep="\r")
    assert encode_item(event, sep) == b"data: a\rdata: b\r\r"
    # And the response's sep does not leak into the event's own encode() afterwards.
    assert event.encode() == b"data: a\rdata: b\r\r"


def test_encode_item_json_event_and_subclass() -> None:
    class MyEvent(ServerSentEvent):
        __slots__ = ()

    assert encode_item(JSONServerSentEvent({"a": 1}), "\n") == b'data: {"a":1}\n\n'
    assert encode_item(MyEvent("x", sep="\r"), "\n") == b"data: x\r\r"
    assert encode_item(MyEvent("x"), "\n") == b"data: x\n\n"


def test_encode_item_caches_per_sep() -> None:
    event = ServerSentEvent("x")
    assert encode_item(event, "\n") == b"data: x\n\n"
    assert encode_item(event, "\r") == b"data: x\r\r"
    assert encode_item(event, "\n") == b"data: x\n\n"
    assert event.encode() == b"data: x\r\n\r\n"


def test_encode_item_bytes_as_is() -> None:
    raw = b"data: raw\n\n"
    assert encode_item(raw, "\r\n") is raw
    assert encode_item(bytearray(raw), "\r\n") == raw
    assert type(encode_item(bytearray(raw), "\r\n")) is bytes
    assert encode_item(memoryview(raw), "\r\n") == raw
    assert type(encode_item(memoryview(raw), "\r\n")) is bytes
    assert encode_item(b"", "\n") == b""


@pytest.mark.parametrize("sep", SEPS)
def test_encode_item_dict(sep: str) -> None:
    item: dict[str, object] = {"data": "a\nb", "event": "e", "id": 1, "retry": 5, "comment": "c"}
    before = dict(item)
    expected = ServerSentEvent("a\nb", event="e", id=1, retry=5, comment="c").encode(sep)
    assert encode_item(item, sep) == expected
    assert item == before  # not mutated
    assert encode_item(item, sep) == expected  # and so usable twice


def test_encode_item_dict_variants() -> None:
    assert encode_item({}, "\n") == b"\n"
    assert encode_item({"event": "e"}, "\n") == b"event: e\n\n"
    assert encode_item({"data": 5}, "\n") == b"data: 5\n\n"
    assert encode_item({"data": "x", "sep": "\r"}, "\n") == b"data: x\r\r"


def test_encode_item_dict_unknown_key() -> None:
    with pytest.raises(TypeError, match="'bogus'"):
        encode_item({"data": "x", "bogus": 1}, "\n")


def test_encode_item_dict_invalid_value() -> None:
    with pytest.raises(ValueError, match="id"):
        encode_item({"data": "x", "id": "a\nb"}, "\n")


@pytest.mark.parametrize("sep", SEPS)
def test_encode_item_str(sep: str) -> None:
    assert encode_item("hello", sep) == f"data: hello{sep}{sep}".encode()
    assert encode_item("", sep) == f"data: {sep}{sep}".encode()
    assert encode_item(" lead", sep) == f"data:  lead{sep}{sep}".encode()


@pytest.mark.parametrize("text", ["a\nb", "a\rb", "a\r\nb"])
def test_encode_item_multi_line_str(text: str) -> None:
    assert encode_item(text, "\n") == b"data: a\ndata: b\n\n"


def test_encode_item_str_subclass() -> None:
    class Text(str):
        __slots__ = ()

    assert encode_item(Text("a\nb"), "\n") == b"data: a\ndata: b\n\n"
    assert encode_item(Text("a"), "\n") == b"data: a\n\n"


def test_encode_item_other_objects_str_ed() -> None:
    class Thing:
        def __str__(self) -> str:
            return "x\ny"

    assert encode_item(42, "\n") == b"data: 42\n\n"
    assert encode_item(1.5, "\r\n") == b"data: 1.5\r\n\r\n"
    assert encode_item([1, 2], "\n") == b"data: [1, 2]\n\n"
    assert encode_item(Thing(), "\n") == b"data: x\ndata: y\n\n"
