"""The pure wire format of revocations between processes (``backends/_control``)."""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Hashable
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_sse import ServerSentEvent
from trio_sse.backends import RedisConnectionError
from trio_sse.backends._control import (
    decode_principal,
    encode_principal,
    read_entry,
    revocation_fields,
)


class Key(NamedTuple):
    kind: str
    number: int


class Role(enum.StrEnum):
    ADMIN = "admin"


class Level(enum.IntEnum):
    ONE = 1


class Color(enum.Enum):
    RED = "red"


class Folded(str):
    """A str that compares case-insensitively: its JSON (a plain str) would not match."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and self.lower() == other.lower()

    def __hash__(self) -> int:
        return hash(self.lower())


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
principals = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4).map(tuple))


@given(principals)
def test_a_principal_comes_back_equal_with_the_same_hash(principal: Hashable) -> None:
    wire = encode_principal(principal)
    assert wire.isascii()
    back = decode_principal(wire)
    assert back == principal
    assert hash(back) == hash(principal)
    assert {principal: 1}.get(back) == 1


def test_subclasses_that_keep_equality_cross_as_their_base_value() -> None:
    assert decode_principal(encode_principal(Key("user", 42))) == ("user", 42)
    assert decode_principal(encode_principal((Role.ADMIN, Level.ONE))) == ("admin", 1)
    assert decode_principal(encode_principal(("s", "\ud800"))) == ("s", "\ud800")  # lone surrogate


@pytest.mark.parametrize(
    "principal",
    [frozenset({"a"}), Color.RED, Folded("A"), b"bytes", math.nan, math.inf, ("ok", object())],
)
def test_what_cannot_cross_is_a_type_error(principal: Hashable) -> None:
    with pytest.raises(TypeError, match="a principal revoked in every process must be a str"):
        encode_principal(principal)


@pytest.mark.parametrize("wire", ['{"a":1}', "[1,{}]", "{"])
def test_what_is_not_a_principal_is_a_value_error(wire: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - json's own message, or ours
        decode_principal(wire)


def entry(stream_id: bytes, fields: list[bytes]) -> list[Any]:
    return [stream_id, fields]


@pytest.mark.parametrize(
    "farewell",
    [
        None,
        ServerSentEvent("bye", event="logout", retry=10, comment="c", sep="\n"),
        ServerSentEvent("with an id", id="my-id"),
        ServerSentEvent(),
    ],
)
def test_a_revocation_round_trips(farewell: ServerSentEvent | None) -> None:
    fields = revocation_fields(b"origin", ("user", 1), farewell)
    stream_id, position, revocation = read_entry(entry(b"5-1", fields))
    assert (stream_id, position) == ("5-1", (5, 1))
    assert revocation is not None
    assert (revocation.origin, revocation.principal) == (b"origin", ("user", 1))
    assert revocation.farewell == farewell
    if farewell is not None:
        assert revocation.farewell is not None
        assert revocation.farewell.encode() == farewell.encode()


def test_revocation_fields_refuse_a_principal_first() -> None:
    with pytest.raises(TypeError):
        revocation_fields(b"o", frozenset(), None)


@pytest.mark.parametrize(
    "fields",
    [
        [b"kind", b"other"],
        [b"kind", b"revoke", b"principal", b"1"],  # no origin
        [b"kind", b"revoke", b"origin", b"o", b"principal", b"{"],
        [
            b"kind",
            b"revoke",
            b"origin",
            b"o",
            b"principal",
            b"1",
            b"farewell",
            b"1",
            b"retry",
            b"x",
        ],
    ],
)
def test_an_entry_that_is_not_a_revocation_is_skipped(
    fields: list[bytes], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    assert read_entry(entry(b"1-0", fields)) == ("1-0", (1, 0), None)
    assert "skipping control entry 1-0" in caplog.text


@pytest.mark.parametrize("raw", [[b"1-0"], [b"not-an-id", []], "nonsense"])
def test_a_reply_that_is_not_an_entry_is_nonsense_from_redis(raw: object) -> None:
    with pytest.raises(RedisConnectionError):
        read_entry(raw)
