"""Argument checks shared by every constructor and option setter: one rule for errors.

* a value of the wrong **type** raises ``TypeError``; a value of the right type that is out of
  range or not one of the choices raises ``ValueError`` (Python's own convention, and
  sse-starlette's: ``ServerSentEvent(retry="ten")`` is a ``TypeError``);
* the message always names the argument and shows the value:
  ``f"{name} must be ..., got {value!r}"`` (the value's repr is shortened when long);
* ``bool`` is never taken for a number: ``True`` where seconds or a count are wanted is a bug.

Each check returns the value (normalised: seconds become a ``float``) so that a constructor
stores what it checked. Standard library only: the sans-IO core (``_events``) uses it. Nothing
here is a checkpoint; nothing blocks.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Collection
from typing import Any, Literal, TypeVar, overload

__all__ = [
    "choice",
    "int_at_least",
    "is_int",
    "is_number",
    "non_negative_int",
    "optional_callable",
    "optional_instance",
    "positive_int",
    "seconds",
    "shown",
]

T = TypeVar("T")

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80


def shown(value: object) -> str:
    """*value*'s repr for an error message, shortened when it is long."""
    return _REPR.repr(value)


def is_int(value: object) -> bool:
    """An ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An ``int`` or a ``float`` that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def int_at_least(
    name: str, value: object, minimum: int, *, what: str = "an int", hint: str = ""
) -> int:
    """*value* if it is an ``int >= minimum``; ``TypeError`` / ``ValueError`` otherwise.

    *what* describes the expected value in the ``TypeError`` (``"an int (milliseconds)"``);
    *hint* follows the bound in the ``ValueError`` (``" (events kept per topic)"``).
    """
    if not is_int(value):
        raise TypeError(f"{name} must be {what}, got {shown(value)}")
    assert isinstance(value, int)
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}{hint}, got {shown(value)}")
    return value


def non_negative_int(name: str, value: object, *, what: str = "an int", hint: str = "") -> int:
    """*value* if it is an ``int >= 0``."""
    return int_at_least(name, value, 0, what=what, hint=hint)


def positive_int(name: str, value: object, *, what: str = "an int", hint: str = "") -> int:
    """*value* if it is an ``int >= 1``."""
    return int_at_least(name, value, 1, what=what, hint=hint)


@overload
def seconds(
    name: str, value: object, *, allow_none: Literal[False] = False, positive: bool = False
) -> float: ...


@overload
def seconds(
    name: str, value: object, *, allow_none: bool, positive: bool = False
) -> float | None: ...


def seconds(
    name: str, value: object, *, allow_none: bool = False, positive: bool = False
) -> float | None:
    """A duration in seconds as a ``float``: an ``int`` or ``float`` ``>= 0`` (``> 0`` if
    *positive*), not NaN; ``None`` passes through when *allow_none*. ``math.inf`` is accepted
    (it means "never").
    """
    if value is None and allow_none:
        return None
    if not is_number(value):
        extra = " or None" if allow_none else ""
        raise TypeError(f"{name} must be a number of seconds{extra}, got {shown(value)}")
    assert isinstance(value, (int, float))
    if math.isnan(value) or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be {bound} (seconds), got {shown(value)}")
    return float(value)


def optional_instance(name: str, value: object, cls: type[T], what: str) -> T | None:
    """*value* if it is ``None`` or an instance of *cls* (described as *what*)."""
    if value is None or isinstance(value, cls):
        return value
    raise TypeError(f"{name} must be {what} or None, got {shown(value)}")


def optional_callable(name: str, value: object) -> Callable[..., Any] | None:
    """*value* if it is ``None`` or callable."""
    if value is None or callable(value):
        return value
    raise TypeError(f"{name} must be callable or None, got {shown(value)}")


def choice(name: str, value: object, choices: Collection[str]) -> str:
    """*value* if it is one of the strings *choices*."""
    listed = ", ".join(map(repr, choices))
    if not isinstance(value, str):
        raise TypeError(f"{name} must be one of {listed} (a str), got {shown(value)}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {listed}, got {shown(value)}")
    return value
