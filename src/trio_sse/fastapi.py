"""FastAPI integration: trio_sse streams in the OpenAPI document (:func:`document_streams`).

A FastAPI path operation that ``yield``s with ``response_class=trio_sse.EventSourceResponse``
streams without anything from this module: each item means what it means to ``fastapi.sse``
(events are sent as they are, anything else is JSON data validated against the declared item
type), with everything trio_sse adds (see ``trio_sse._fastapi_items``).

FastAPI writes an OpenAPI 3.2 ``itemSchema`` for ``text/event-stream`` only for its own
``fastapi.sse.EventSourceResponse``, and ``{"type": "string"}`` for any other class. One call
after creating the app, in FastAPI's documented way to extend its OpenAPI document (it sets
``app.openapi``), describes every trio_sse stream of the app, on included routers too::

    app = FastAPI()
    document_streams(app)

    @app.get("/ticks", response_class=EventSourceResponse)
    async def ticks() -> AsyncIterator[Tick]: ...

Each item is documented as ``fastapi.sse`` documents it (``data`` as JSON text whose
``contentSchema`` is ``Tick``, a component), and typed events go further: the data type of
``JSONServerSentEvent[Tick]`` and of ``class TickEvent(JSONServerSentEvent[Tick],
event="tick")`` is documented, and fixed event names are listed (``event``'s ``enum``,
required when every item is such an event). The item types are read where the stream reads
them to validate its items: the return annotation (``AsyncIterator[X]``...), else
``response_model``.

Needs FastAPI >= 0.135 and Pydantic (FastAPI's own dependency): ``trio_sse[fastapi]``, or
the FastAPI the app installs. Tested with FastAPI 0.135 and 0.165.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from ._extras import require
from ._fastapi_items import route_item_types
from ._item_types import ItemTypes, item_types
from ._response import EventSourceResponse

if TYPE_CHECKING:
    from fastapi import FastAPI

# A missing FastAPI is a MissingExtraError (an ImportError) naming the extra, on import.
_routing = require("fastapi.routing", part="trio_sse.fastapi", extras=("fastapi",))
TypeAdapter = require("pydantic", part="trio_sse.fastapi", extras=("fastapi",)).TypeAdapter

__all__ = ["document_streams", "item_schema"]

_MARK = "_trio_sse_documents_streams"
_REF = "#/components/schemas/{model}"
_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


def document_streams(app: FastAPI) -> FastAPI:
    """Make ``app.openapi()`` describe each ``trio_sse.EventSourceResponse`` route's items.

    Wraps the app's ``openapi`` method (whatever it is then: FastAPI's, or one of the app's
    own) once; calling it again changes nothing. The document is built on first use and
    cached by FastAPI as before. Returns *app*."""
    if getattr(app.openapi, _MARK, False):
        return app
    build = app.openapi

    @functools.wraps(build)
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        with _documented_status(app.routes):
            document = build()
        _describe_streams(document, app.routes)
        app.openapi_schema = document
        return document

    setattr(openapi, _MARK, True)
    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _stream_classes(routes: Iterable[Any]) -> set[type[EventSourceResponse]]:
    found: set[type[EventSourceResponse]] = set()
    for route in _api_routes(routes):
        response_class = getattr(route.response_class, "value", route.response_class)
        if isinstance(response_class, type) and issubclass(response_class, EventSourceResponse):
            found.add(response_class)
    return found


@contextmanager
def _documented_status(routes: Iterable[Any]) -> Iterator[None]:
    """While FastAPI builds the document: a subclass whose ``__init__`` takes no
    ``status_code`` shows one (``= 200``, what it sends). FastAPI (0.135 to 0.165 at least)
    reads a route's status from that default, and without one ``app.openapi()`` fails
    (``UnboundLocalError``). The signature is put back afterwards. Sync."""
    with ExitStack() as stack:
        for response_class in _stream_classes(routes):
            init = response_class.__init__
            signature = inspect.signature(init)
            if "status_code" in signature.parameters or "__signature__" in vars(init):
                continue
            keyword = inspect.Parameter("status_code", inspect.Parameter.KEYWORD_ONLY, default=200)
            parameters = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
            parameters += [
                keyword,
                *(p for p in signature.parameters.values() if p.kind == p.VAR_KEYWORD),
            ]
            init.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
            stack.callback(delattr, init, "__signature__")
        yield


def item_schema(annotation: Any, components: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI ``itemSchema`` of a stream whose items are declared by *annotation* (an
    item type: ``Tick``, ``TickEvent | AlertEvent``, ``None`` for untyped), as
    :func:`document_streams` writes it; the schemas it refers to are added to *components*
    (``components/schemas``) unless they are there already. Sync."""
    return _item_schema(item_types(annotation), components)


def _item_schema(types: ItemTypes, components: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = copy.deepcopy(_EVENT)
    properties: dict[str, Any] = schema["properties"]
    data_types = () if types.untyped else types.data_types
    if data_types:
        schema["required"] = ["data"]
        properties["data"] = {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": _content_schema(data_types, components),
        }
    names = [member.name for member in types.events]
    if types.events and None not in names:
        properties["event"] = {"type": "string", "enum": list(dict.fromkeys(names))}
        if not types.plain:
            schema.setdefault("required", []).append("event")
    return schema


def _describe_streams(document: dict[str, Any], routes: Iterable[Any]) -> None:
    components = document.setdefault("components", {}).setdefault("schemas", {})
    for route in _api_routes(routes):
        response_class = getattr(route.response_class, "value", route.response_class)
        if not (
            isinstance(response_class, type) and issubclass(response_class, EventSourceResponse)
        ):
            continue
        if not route.include_in_schema:
            continue
        operations = document.get("paths", {}).get(route.path_format, {})
        schema = _item_schema(route_item_types(route), components)
        status = str(route.status_code or 200)
        for method in route.methods or ():
            response = operations.get(method.lower(), {}).get("responses", {}).get(status)
            if response is not None:
                content = response.setdefault("content", {})
                content["text/event-stream"] = {"itemSchema": copy.deepcopy(schema)}
    if not components:
        del document["components"]["schemas"]
        if not document["components"]:
            del document["components"]


def _api_routes(routes: Iterable[Any]) -> Iterator[Any]:
    """Every ``APIRoute`` of the app with its effective path, included routers' too.

    FastAPI 0.165 keeps an included router's routes behind ``iter_route_contexts`` (each
    context answers as the route would, with the prefix applied); earlier releases copy them
    into ``app.routes``."""
    contexts = getattr(_routing, "iter_route_contexts", None)
    found = contexts(list(routes)) if contexts is not None else routes
    for route in found:
        original = getattr(route, "original_route", route)
        if isinstance(original, _routing.APIRoute):
            yield _Effective(route, original)


class _Effective:
    """A route's attributes as FastAPI's OpenAPI generation sees them (context first)."""

    def __init__(self, context: Any, route: Any) -> None:
        self._context = context
        self._route = route

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._context, name, None)
        return getattr(self._route, name) if value is None else value


def _content_schema(data_types: tuple[Any, ...], components: dict[str, Any]) -> dict[str, Any]:
    parts = [_type_schema(data_type, components) for data_type in data_types]
    return parts[0] if len(parts) == 1 else {"anyOf": parts}


def _type_schema(data_type: Any, components: dict[str, Any]) -> dict[str, Any]:
    """*data_type*'s JSON schema; a model's is a component, referred to by ``$ref`` (as
    FastAPI documents models), named as FastAPI names it when the name is unique."""
    schema: dict[str, Any] = TypeAdapter(data_type).json_schema(
        mode="serialization", ref_template=_REF
    )
    for name, definition in schema.pop("$defs", {}).items():
        components.setdefault(name, definition)
    name = getattr(data_type, "__name__", None)
    if (
        isinstance(data_type, type)
        and name
        and schema.get("title") == name
        and "properties" in schema
    ):
        components.setdefault(name, schema)
        return {"$ref": _REF.format(model=name)}
    return schema
