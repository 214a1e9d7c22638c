"""The client's reconnection policy and command line: the checks no other test reached.

Pure: no connection is made (``check_policy`` and ``reconnect_delay`` do no I/O; the command
line is only parsed).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from trio_sse.client._backoff import check_policy, reconnect_delay
from trio_sse.client._cli import build_parser

POLICY: dict[str, Any] = {
    "max_attempts": 3,
    "backoff": 1.0,
    "max_backoff": 30.0,
    "backoff_factor": 2.0,
    "jitter": 0.5,
}


def test_a_float_backoff_that_overflows_is_capped() -> None:
    # The policy is normalised to floats (check_policy): 2.0 ** 999_999 overflows a float.
    _, base, cap, factor, _ = check_policy(**POLICY)
    assert reconnect_delay(10**6, base=base, factor=factor, cap=cap, jitter=0) == 30.0
    assert (
        reconnect_delay(10**6, base=base, factor=factor, cap=cap, jitter=0.5, rand=lambda: 1.0)
        == 45.0
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("backoff", "1"),
        ("max_backoff", None),
        ("backoff", True),
        ("backoff_factor", "2"),
        ("backoff_factor", False),
        ("jitter", "0.1"),
        ("jitter", None),
    ],
)
def test_a_wrong_type_is_a_type_error_naming_the_option(name: str, value: object) -> None:
    with pytest.raises(TypeError, match=rf"^{name} must be a number"):
        check_policy(**{**POLICY, name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("backoff", -1.0),
        ("max_backoff", math.inf),
        ("backoff_factor", 0.5),
        ("backoff_factor", math.nan),
        ("jitter", 1.5),
        ("jitter", math.nan),
        ("max_attempts", 0),
    ],
)
def test_a_bad_value_is_a_value_error_naming_the_option(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        check_policy(**{**POLICY, name: value})


def test_the_policy_is_returned_as_floats() -> None:
    options = {**POLICY, "backoff": 1, "max_backoff": 30, "backoff_factor": 2, "jitter": 0}
    normalised = check_policy(**options)
    assert normalised == (3, 1.0, 30.0, 2.0, 0.0)
    assert all(type(value) is float for value in normalised[1:])


def test_headers_are_parsed_and_stripped() -> None:
    args = build_parser().parse_args(
        ["http://x/", "-H", " X-Token : abc ", "--header", "Accept:text/event-stream"]
    )
    assert args.header == [("X-Token", "abc"), ("Accept", "text/event-stream")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-H", "no-colon"], "expected NAME:VALUE, got 'no-colon'"),
        (["-H", " :value"], "expected NAME:VALUE, got ' :value'"),
        (["--max-attempts", "-1"], "must be >= 0 (0: never give up)"),
        (["--max-attempts", "two"], "argument --max-attempts: invalid"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["http://x/", *argv])
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_zero_attempts_means_never_give_up() -> None:
    assert build_parser().parse_args(["http://x/", "--max-attempts", "0"]).max_attempts == 0
