"""``EventSourceResponse``'s options: readable and settable after construction, checked on set.

sse-starlette keeps its options as plain attributes that its stream reads when it runs, so an
app may write ``response.ping_interval = 5`` between building the response and returning it.
trio_sse's options are :class:`Option` descriptors: setting one runs the same check as the
constructor (the rule of ``_validate``: ``TypeError`` for a type, ``ValueError`` for a value,
naming the option), and the response builds its stream's spec from the current values when
its ASGI call starts. A value set while a call is already streaming applies to the next call
only. Nothing here is a checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, overload

from ._encoder import check_sep
from ._events import DEFAULT_SEPARATOR, ServerSentEvent
from ._validate import is_int, is_number, non_negative_int, seconds, shown

__all__ = [
    "Option",
    "check_duration",
    "check_event",
    "check_farewell",
    "check_retry_range",
    "check_sep_or_default",
]

T = TypeVar("T")


class Option(Generic[T]):
    """A checked attribute: ``check(name, value)`` returns what is stored, or raises.

    The value lives in the instance's ``_<name>`` attribute.
    """

    __slots__ = ("_check", "name", "private")

    def __init__(self, check: Callable[[str, object], T]) -> None:
        self._check = check
        self.name = ""
        self.private = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.private = "_" + name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Option[T]: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object, owner: type | None = None) -> T | Option[T]:
        if instance is None:
            return self
        value: T = getattr(instance, self.private)
        return value

    def __set__(self, instance: object, value: object) -> None:
        setattr(instance, self.private, self._check(self.name, value))

    def __delete__(self, instance: object) -> None:
        raise AttributeError(f"the option {self.name} cannot be deleted; set it instead")


def check_sep_or_default(name: str, value: object) -> str:
    """A line end, or ``None`` for the default ``"\\r\\n"``."""
    return DEFAULT_SEPARATOR if value is None else check_sep(value, field=name)


def check_retry_range(name: str, value: object) -> int | tuple[int, int] | None:
    """Milliseconds (an ``int >= 0``), a ``(low, high)`` range of them, or ``None``."""
    what = "milliseconds (an int >= 0) or a (low, high) range of them, or None"
    if value is None or is_int(value):
        return None if value is None else non_negative_int(name, value, what=what)
    if not isinstance(value, tuple) or len(value) != 2 or not all(map(is_int, value)):
        raise TypeError(f"{name} must be {what}, got {shown(value)}")
    low, high = value
    if not 0 <= low <= high:
        raise ValueError(f"{name} must be a range 0 <= low <= high, got {shown(value)}")
    return (low, high)


def check_duration(name: str, value: object) -> float | tuple[float, float] | None:
    """Seconds (a number ``> 0``), a ``(low, high)`` range of them to pick from, or ``None``."""
    if value is None or is_number(value):
        return seconds(name, value, allow_none=True, positive=True)
    if not isinstance(value, tuple) or len(value) != 2 or not all(map(is_number, value)):
        raise TypeError(
            f"{name} must be seconds (a number > 0), a (low, high) range of them or None, "
            f"got {shown(value)}"
        )
    low, high = (seconds(name, bound, positive=True) for bound in value)
    if not low <= high:
        raise ValueError(f"{name} must be a range 0 < low <= high, got {shown(value)}")
    return (low, high)


def check_farewell(name: str, value: object) -> object:
    """An item a stream can send: an event, a dict of its fields, ``str``, ``bytes``, or ``None``."""
    if value is None or isinstance(value, (ServerSentEvent, str, bytes, Mapping)):
        return value
    raise TypeError(
        f"{name} must be a ServerSentEvent, a dict, a str, bytes or None, got {shown(value)}"
    )


def check_event(name: str, value: object) -> Any:
    """Anything with a ``set()`` method (an anyio, trio or asyncio event), or ``None``.

    Duck-typed: the response only ever calls ``set()`` on it.
    """
    if value is None or callable(getattr(value, "set", None)):
        return value
    raise TypeError(
        f"{name} must be an anyio.Event (anything with set()) or None, got {shown(value)}"
    )
