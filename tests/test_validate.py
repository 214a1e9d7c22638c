"""The shared argument checks: wrong type -> TypeError, bad value -> ValueError, both named."""

from __future__ import annotations

import math
from typing import Any

import pytest

from trio_sse._validate import (
    choice,
    int_at_least,
    is_int,
    is_number,
    non_negative_int,
    optional_callable,
    optional_instance,
    positive_int,
    seconds,
    shown,
)


def test_bool_is_neither_an_int_nor_a_number() -> None:
    assert is_int(3) and not is_int(True) and not is_int(3.0) and not is_int("3")
    assert is_number(3) and is_number(2.5) and not is_number(False) and not is_number("1")


@pytest.mark.parametrize("value", [0, 1.5, 7, math.inf])
def test_seconds_accepts_non_negative_numbers_as_float(value: float) -> None:
    result = seconds("ping", value)
    assert result == value and type(result) is float


@pytest.mark.parametrize("value", ["15", True, None, b"1", [1]])
def test_seconds_wrong_type_is_a_type_error_naming_the_argument(value: object) -> None:
    with pytest.raises(TypeError) as caught:
        seconds("ping", value)
    assert str(caught.value) == f"ping must be a number of seconds, got {value!r}"


@pytest.mark.parametrize("value", [-1, -0.001, math.nan, -math.inf])
def test_seconds_bad_value_is_a_value_error_naming_the_argument(value: float) -> None:
    with pytest.raises(ValueError, match=r"^ping must be >= 0 \(seconds\), got "):
        seconds("ping", value)


def test_seconds_allow_none_and_positive() -> None:
    assert seconds("send_timeout", None, allow_none=True) is None
    assert seconds("send_timeout", 0.5, allow_none=True, positive=True) == 0.5
    with pytest.raises(ValueError, match=r"send_timeout must be > 0 \(seconds\), got 0"):
        seconds("send_timeout", 0, allow_none=True, positive=True)
    with pytest.raises(TypeError, match="send_timeout must be a number of seconds or None"):
        seconds("send_timeout", "1", allow_none=True)


def test_integers() -> None:
    assert non_negative_int("n", 0) == 0
    assert positive_int("n", 1) == 1
    assert int_at_least("n", 5, 5) == 5
    with pytest.raises(ValueError, match=r"^n must be >= 1, got 0$"):
        positive_int("n", 0)
    with pytest.raises(ValueError, match=r"^n must be >= 0, got -1$"):
        non_negative_int("n", -1)
    with pytest.raises(ValueError, match=r"^n must be >= 6, got 5$"):
        int_at_least("n", 5, 6)


@pytest.mark.parametrize("value", [True, 1.0, "1", None, math.inf])
def test_integers_of_the_wrong_type_are_type_errors_even_when_out_of_range(value: object) -> None:
    with pytest.raises(TypeError, match=r"^retry must be an int \(ms\), got "):
        non_negative_int("retry", value, what="an int (ms)")
    with pytest.raises(TypeError, match="max_buffer_size must be an int, got"):
        positive_int("max_buffer_size", value)


def test_optional_instance_and_callable() -> None:
    assert optional_instance("x", None, int, "an int") is None
    assert optional_instance("x", 3, int, "an int") == 3
    with pytest.raises(TypeError, match=r"^x must be an int or None, got 'a'$"):
        optional_instance("x", "a", int, "an int")
    assert optional_callable("f", None) is None
    assert optional_callable("f", print) is print
    with pytest.raises(TypeError, match=r"^f must be callable or None, got 3$"):
        optional_callable("f", 3)


def test_choice() -> None:
    assert choice("on_full", "retry", ("reject", "retry")) == "retry"
    with pytest.raises(ValueError, match=r"on_full must be one of 'reject', 'retry', got 'drop'"):
        choice("on_full", "drop", ("reject", "retry"))
    with pytest.raises(TypeError, match=r"on_full must be one of .* \(a str\), got None"):
        choice("on_full", None, ("reject", "retry"))


def test_long_values_are_shortened_in_messages() -> None:
    value: Any = "x" * 10_000
    assert len(shown(value)) < 100
    with pytest.raises(TypeError) as caught:
        seconds("ping", value)
    assert len(str(caught.value)) < 200
