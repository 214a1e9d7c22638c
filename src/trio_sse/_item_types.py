"""What a stream's items are declared to be: read off a type annotation, once per route.

``AsyncIterator[Tick]``, ``Iterator[JSONServerSentEvent[Tick]]`` or
``AsyncIterator[TickEvent | AlertEvent]`` (a path operation's return annotation, or a FastAPI
``response_model``) become an :class:`ItemTypes`: the *plain* types (items that are data,
sent as JSON) and the *event* classes (items that are events, each with the type of its data
and its fixed event name, if any). FastAPI's item validation (``trio_sse._fastapi_items``) and
its OpenAPI documentation (``trio_sse.fastapi``) both read it. Standard library only: nothing
here imports FastAPI or Pydantic.
"""

from __future__ import annotations

import collections.abc
import inspect
import sys
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar, get_args, get_origin

from ._events import JSONServerSentEvent, ServerSentEvent

__all__ = ["EventMember", "ItemTypes", "item_types", "stream_item_annotation"]

_STREAMS = frozenset(
    {
        collections.abc.AsyncIterator,
        collections.abc.AsyncIterable,
        collections.abc.AsyncGenerator,
        collections.abc.Iterator,
        collections.abc.Iterable,
        collections.abc.Generator,
    }
)
_UNIONS = (typing.Union, types.UnionType)


@dataclass(frozen=True)
class EventMember:
    """One event class a stream may yield.

    ``data_type`` is the type its data is built from (``JSONServerSentEvent[Tick]``: ``Tick``),
    ``None`` when the class does not say; ``json`` whether that data is written as JSON (a
    ``JSONServerSentEvent``, or FastAPI's own ``ServerSentEvent``); ``name`` the event name
    every instance carries (``class TickEvent(..., event="tick")``), if any."""

    cls: type
    data_type: Any
    json: bool
    name: str | None


@dataclass(frozen=True)
class ItemTypes:
    """A stream's declared items: ``plain`` data types and ``events`` classes.

    ``untyped``: nothing was declared (or ``Any``): every item is accepted as it is."""

    plain: tuple[Any, ...]
    events: tuple[EventMember, ...]
    untyped: bool = False

    def member_for(self, event: object) -> EventMember | None:
        """The most derived declared event class *event* is an instance of, if any."""
        found = None
        for member in self.events:
            if isinstance(event, member.cls) and (
                found is None or issubclass(member.cls, found.cls)
            ):
                found = member
        return found

    @property
    def data_types(self) -> tuple[Any, ...]:
        """Every type that a ``data`` field written as JSON may hold (for the OpenAPI schema)."""
        found = list(self.plain)
        for member in self.events:
            if member.json and member.data_type is not None and member.data_type not in found:
                found.append(member.data_type)
        return tuple(found)


UNTYPED = ItemTypes(plain=(), events=(), untyped=True)


def stream_item_annotation(call: object) -> Any:
    """The item type of a generator function's return annotation (``AsyncIterator[X]``: ``X``),
    ``Any`` for a bare ``AsyncIterator``, ``None`` when there is no such annotation."""
    call = inspect.unwrap(call)  # type: ignore[arg-type]
    try:
        hints = typing.get_type_hints(call, include_extras=True)
    except Exception:  # an annotation that cannot be resolved: as if there were none
        return None
    annotation = hints.get("return")
    if annotation in _STREAMS:  # a bare ``AsyncIterator``
        return Any
    origin = get_origin(annotation)
    if origin not in _STREAMS:
        return None
    args = get_args(annotation)
    return args[0] if args else Any


def item_types(annotation: Any) -> ItemTypes:
    """The :class:`ItemTypes` an item annotation declares (``None`` or ``Any``: untyped)."""
    if annotation is None or annotation is Any:
        return UNTYPED
    members = get_args(annotation) if get_origin(annotation) in _UNIONS else (annotation,)
    plain: list[Any] = []
    events: list[EventMember] = []
    for member in members:
        event = _event_member(member)
        if event is None:
            plain.append(member)
        else:
            events.append(event)
    return ItemTypes(plain=tuple(plain), events=tuple(events))


def _event_member(annotation: Any) -> EventMember | None:
    """An :class:`EventMember` if *annotation* is an event class (or one parameterized)."""
    origin = get_origin(annotation)
    cls = origin if isinstance(origin, type) else annotation
    if not isinstance(cls, type):
        return None
    if issubclass(cls, ServerSentEvent):
        data_type = _parameter(annotation) if origin is not None else _declared_data(cls)
        return EventMember(cls, data_type, issubclass(cls, JSONServerSentEvent), cls.fixed_event)
    if _is_fastapi_event(cls):
        return EventMember(cls, None, True, None)
    return None


def _parameter(alias: Any) -> Any:
    args = get_args(alias)
    if not args or isinstance(args[0], TypeVar) or args[0] is Any:
        return None
    return args[0]


def _declared_data(cls: type) -> Any:
    """The data type a subclass fixed in its bases (``class E(JSONServerSentEvent[Tick])``)."""
    for klass in cls.__mro__:
        for base in klass.__dict__.get("__orig_bases__", ()):
            origin = get_origin(base)
            if isinstance(origin, type) and issubclass(origin, ServerSentEvent):
                return _parameter(base)
    return None


def _is_fastapi_event(cls: type) -> bool:
    module = sys.modules.get("fastapi.sse")
    fastapi_event = getattr(module, "ServerSentEvent", None) if module is not None else None
    return isinstance(fastapi_event, type) and issubclass(cls, fastapi_event)
