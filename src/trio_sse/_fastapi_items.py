"""FastAPI ``yield`` path operations with ``response_class=trio_sse.EventSourceResponse``.

For such an operation FastAPI calls the function and hands the generator to the response
class as its content; it cannot say that the items are *values* rather than trio_sse's own
stream items. The response finds out from the scope (FastAPI's ``APIRoute``, or what an
included router made of it: :func:`effective_route`) when its ASGI call starts, and its
iterable is then read through :class:`ItemPolicy`, with ``fastapi.sse``'s meaning for each
item:

* a trio_sse ``ServerSentEvent`` (or ``bytes``, already encoded) is sent as it is; its data
  is validated first when the route declares the event's data type
  (``-> AsyncIterator[JSONServerSentEvent[Tick]]``);
* FastAPI's own ``fastapi.sse.ServerSentEvent`` is written as FastAPI writes it (``data`` as
  JSON, ``raw_data`` as it is, ``event``, ``id``, ``retry``, ``comment``);
* anything else (a model, a dict, a list, a string...) is *data*, sent as JSON: validated
  against and serialized by the declared item type (``-> AsyncIterator[Tick]``, or the
  route's ``response_model``) with the route's ``response_model_*`` options (by Pydantic
  for ``-> AsyncIterator[Any]`` too, as FastAPI does), or by FastAPI's JSON rules
  (``trio_sse._json``, with the stream's ``json_dumps``) when the route declares none;
  ``None`` and a non-finite float are ``null``, as in ``fastapi.sse``.

An item that does not match the declared type ends the stream cleanly (the end of body, no
farewell) with one log line on the ``trio_sse`` logger naming the route and the item.
The policy is built once per route (per inclusion of a router) and kept on it
(``_trio_sse_item_policy``); Pydantic is imported only for a route that declares an item
type, FastAPI only when it is loaded.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ._events import JSONServerSentEvent, ServerSentEvent
from ._item_types import ItemTypes, item_types, stream_item_annotation
from ._json import to_json
from ._sources import AsyncIterableContent, Content, SyncIterableContent
from ._streaminfo import where

__all__ = [
    "ItemPolicy",
    "ItemRejected",
    "adapt_for_route",
    "effective_route",
    "route_item_types",
]

logger = logging.getLogger("trio_sse")

_POLICY_ATTRIBUTE = "_trio_sse_item_policy"
_DUMP_OPTIONS = (
    "include",
    "exclude",
    "by_alias",
    "exclude_unset",
    "exclude_defaults",
    "exclude_none",
)


class ItemRejected(Exception):
    """An item that does not match the stream's declared type (the message says why)."""


def adapt_for_route(content: Content, scope: Any, response_class: type) -> Content:
    """*content*, read through the route's :class:`ItemPolicy` if the scope's route is a
    FastAPI yield path operation answered by *response_class*; else *content* itself. Sync."""
    if type(content) not in (AsyncIterableContent, SyncIterableContent):
        return content
    route = effective_route(scope)
    policy: ItemPolicy | bool | None = getattr(route, _POLICY_ATTRIBUTE, False)
    if policy is False:
        policy = _policy_for(route, response_class)
        try:
            setattr(route, _POLICY_ATTRIBUTE, policy)
        except (AttributeError, TypeError):  # a route with __slots__: built again next time
            pass
    if not isinstance(policy, ItemPolicy):
        return content
    if type(content) is AsyncIterableContent:
        return AsyncIterableContent(_ConvertedAsync(_unwrapped(content.value), policy))
    return SyncIterableContent(_ConvertedSync(content.value, policy))


def _unwrapped(iterator: Any) -> Any:
    """The endpoint's own async generator, when *iterator* is FastAPI's wrapper around it.

    FastAPI (0.135 to 0.165 at least) hands a response class ``_async_stream_raw(gen)``, an
    async generator that re-yields each item of ``gen`` after an ``anyio.sleep(0)`` so that a
    ``StreamingResponse`` can be cancelled; the pump needs no such pass (it gives way by
    itself, see ``_sources``) and the pass costs about two thirds of a yield route's
    throughput. The wrapper is taken apart only before it started (then dropping it runs
    nothing and warns of nothing); any other shape is streamed as it is (slower, not wrong).
    ``tests/test_fastapi_items.py`` pins that the tested FastAPI is recognised.
    """
    inner = _fastapi_wrapped(iterator)
    return inner if inner is not None and _never_started(iterator) else iterator


def _fastapi_wrapped(wrapper: object) -> Any:
    """The async generator that *wrapper* iterates, if *wrapper* is FastAPI's wrapper of it.

    FastAPI's wrapper (``_async_stream_raw``: ``async for chunk in async_gen: yield chunk``)
    is FastAPI's private code: it is recognised by its code object (name and file), and what
    it iterates is found as the one async generator among its locals, whatever the local's
    name. ``None`` for anything else, and for a wrapper already finished."""
    code = getattr(wrapper, "ag_code", None)
    frame = getattr(wrapper, "ag_frame", None)
    if (
        code is None
        or frame is None
        or code.co_name != "_async_stream_raw"
        or not code.co_filename.endswith(_FASTAPI_ROUTING_FILE)
    ):
        return None
    found = [
        value
        for value in frame.f_locals.values()
        if inspect.isasyncgen(value) and value is not wrapper
    ]
    return found[0] if len(found) == 1 else None


_FASTAPI_ROUTING_FILE = os.path.join("fastapi", "routing.py")


def _never_started(agen: Any) -> bool:
    state = getattr(inspect, "getasyncgenstate", None)  # Python 3.12+
    if state is not None:
        return bool(state(agen) == "AGEN_CREATED")
    # Python 3.11: a frame that has not run an instruction yet.
    return not agen.ag_running and agen.ag_frame is not None and agen.ag_frame.f_lasti == 0


def effective_route(scope: Any) -> Any:
    """The route as FastAPI runs it for this request.

    FastAPI 0.165 keeps an included router's own ``APIRoute`` in ``scope["route"]`` and what
    the inclusion made of it (the path with its prefixes, ``default_response_class``, the
    ``response_model_*`` options...) in ``scope["fastapi"]["effective_route_context"]``, one
    object per inclusion, which answers as the route would; earlier releases copy the route
    into the app, with those applied, and put that in ``scope["route"]``."""
    route = scope.get("route")
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        context = fastapi_scope.get("effective_route_context")
        if context is not None and getattr(context, "original_route", None) is route:
            return context
    return route


def route_item_types(route: Any) -> ItemTypes:
    """The items *route* declares: its return annotation's item type, else its
    ``response_model``, else untyped."""
    annotation = stream_item_annotation(route.dependant.call)
    if annotation is None:
        annotation = route.response_model
    return item_types(annotation)


def _policy_for(route: Any, response_class: type) -> ItemPolicy | None:
    routing = sys.modules.get("fastapi.routing")
    api_route = getattr(routing, "APIRoute", None)
    if api_route is None or not isinstance(getattr(route, "original_route", route), api_route):
        return None
    declared = getattr(route.response_class, "value", route.response_class)  # a Default(...)
    if not (isinstance(declared, type) and issubclass(response_class, declared)):
        return None
    if not _is_generator_function(route.dependant.call):
        return None  # an endpoint that returns its own response: trio_sse's item meanings
    return ItemPolicy(route)


def _is_generator_function(call: object) -> bool:
    call = inspect.unwrap(call)  # type: ignore[arg-type]
    if not inspect.isroutine(call) and callable(call):
        call = call.__call__
    return inspect.isasyncgenfunction(call) or inspect.isgeneratorfunction(call)


class ItemPolicy:
    """How one route's items become stream items (see the module's docstring)."""

    def __init__(self, route: Any) -> None:
        methods = ",".join(sorted(route.methods or ()))
        self.label = f"{methods} {route.path} ({route.name})"
        self.types = route_item_types(route)
        self._plain = (
            None if self.types.untyped or not self.types.plain else _adapter(self.types.plain)
        )
        if self.types.untyped and stream_item_annotation(route.dependant.call) is Any:
            # ``-> AsyncIterator[Any]``: FastAPI serializes by Pydantic (datetimes with ``Z``,
            # decimals as strings), not by its JSON encoder as for an unannotated generator.
            self._plain = _adapter((Any,))
        self._events = {
            member.cls: _adapter((member.data_type,))
            for member in self.types.events
            if member.json
            and member.data_type is not None
            and issubclass(member.cls, ServerSentEvent)
        }
        self._dump = {name: getattr(route, f"response_model_{name}") for name in _DUMP_OPTIONS}

    def convert(self, item: object) -> object:
        """The stream item for *item*; :class:`ItemRejected` if it does not match. Sync."""
        if isinstance(item, ServerSentEvent):
            return self._event(item)
        if isinstance(item, (bytes, bytearray, memoryview)):
            return item
        if _is_fastapi_event(item):
            return _from_fastapi_event(item)
        if self.types.untyped and self._plain is None:
            return _json_data(item)
        if self._plain is None:
            raise ItemRejected(
                f"a {type(item).__name__} is not one of the declared events "
                f"({', '.join(m.cls.__name__ for m in self.types.events)})"
            )
        value = self._validate(self._plain.validate_python, item)
        return ServerSentEvent(self._plain.dump_json(value, **self._dump).decode())

    def _event(self, event: ServerSentEvent[Any]) -> ServerSentEvent[Any]:
        member = self.types.member_for(event)
        if member is None:
            if self.types.events:
                raise ItemRejected(f"a {type(event).__name__} is not one of the declared events")
            return event  # declared data only: an event is the app's own choice, as in fastapi.sse
        adapter = self._events.get(member.cls)
        if adapter is not None and event.data is not None:
            self._validate(adapter.validate_json, event.data)
        return event

    @staticmethod
    def _validate(validate: Any, value: object) -> Any:
        try:
            return validate(value)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ItemRejected(str(exc)) from None


def _json_data(item: object) -> ServerSentEvent[Any]:
    """*item* as JSON data by FastAPI's rules for an undeclared item: ``None`` and non-finite
    floats are ``null`` (fastapi.sse writes ``data: null``; a ``JSONServerSentEvent(None)``
    would have no data, which no client dispatches)."""
    try:
        return ServerSentEvent(to_json(_finite(item)))
    except (TypeError, ValueError) as exc:  # not JSON: logged naming the route, as a mismatch
        raise ItemRejected(str(exc)) from None


def _finite(value: object) -> object:
    """*value* with its non-finite floats (in lists and dicts too) made ``None``, as FastAPI's
    ``_normalize_non_finite_floats`` does."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def _adapter(types_: tuple[Any, ...]) -> Any:
    from pydantic import TypeAdapter  # FastAPI's own dependency

    annotation = types_[0] if len(types_) == 1 else _union(types_)
    return TypeAdapter(annotation)


def _union(types_: tuple[Any, ...]) -> Any:
    from typing import Union

    return Union[types_]  # noqa: UP007 (a union built from a tuple at run time)


def _is_fastapi_event(item: object) -> bool:
    module = sys.modules.get("fastapi.sse")
    cls = getattr(module, "ServerSentEvent", None) if module is not None else None
    return cls is not None and isinstance(item, cls)


def _from_fastapi_event(item: Any) -> ServerSentEvent[Any]:
    """FastAPI's ``ServerSentEvent`` as FastAPI writes it: ``data`` as JSON, ``raw_data`` raw."""
    if item.raw_data is not None:
        data: Any = item.raw_data
        cls: type[ServerSentEvent[Any]] = ServerSentEvent
    else:
        data = item.data
        cls = JSONServerSentEvent
    return cls(data, event=item.event, id=item.id, retry=item.retry, comment=item.comment)


class _Converted:
    """The route's iterable, each item through :meth:`ItemPolicy.convert`; the first rejected
    item is logged and ends it (the stream then ends as when its generator returns)."""

    __slots__ = ("_count", "_inner", "_policy")

    def __init__(self, inner: Any, policy: ItemPolicy) -> None:
        self._inner = inner
        self._policy = policy
        self._count = 0

    def _convert(self, item: object) -> object:
        self._count += 1
        try:
            return self._policy.convert(item)
        except ItemRejected as exc:
            logger.error(  # noqa: TRY400 (a validation error: its message says all, no traceback)
                "trio_sse: %s: stream item %d does not match the declared type; "
                "ending the stream%s: %s",
                self._policy.label,
                self._count,
                where(),
                exc,
            )
            raise


class _ConvertedAsync(_Converted):
    """An async iterator; ``aclose()`` closes the route's generator."""

    __slots__ = ()

    def __aiter__(self) -> AsyncIterator[object]:
        return self

    async def __anext__(self) -> object:
        item = await self._inner.__anext__()
        try:
            return self._convert(item)
        except ItemRejected:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Close the route's generator. Where it is still read through FastAPI's wrapper
        (:func:`_unwrapped` declined), close the generator the wrapper iterates too: an
        interrupted ``async for`` never closes what it iterates, whose ``finally`` would run
        only when the garbage collector finds it, outside the request. A checkpoint."""
        wrapped = _fastapi_wrapped(self._inner)
        aclose = getattr(self._inner, "aclose", None)
        if aclose is not None:
            await aclose()
        if wrapped is not None:
            await wrapped.aclose()


class _ConvertedSync(_Converted):
    """A sync iterator (iterated in a worker thread); ``close()`` closes the generator."""

    __slots__ = ()

    def __iter__(self) -> Iterator[object]:
        return self

    def __next__(self) -> object:
        item = next(self._inner)
        try:
            return self._convert(item)
        except ItemRejected:
            raise StopIteration from None

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()
