"""``trio_sse.fastapi.document_streams(app)``: ``app.openapi()`` describes trio_sse streams as
``fastapi.sse`` describes its own (``text/event-stream`` with an OpenAPI 3.2 ``itemSchema``).

Where ``fastapi.sse`` can say the same thing, the schema is compared with what FastAPI emits
for a twin route; typed events go further (the data type of each event, fixed event names).
Sync tests: ``app.openapi()`` does no I/O.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import fastapi.sse
import pytest
from fastapi import APIRouter, FastAPI

from trio_sse import EventSourceResponse, JSONServerSentEvent, ServerSentEvent
from trio_sse.fastapi import document_streams

from .models import Alert, AlertEvent, Tick, TickEvent

BASE_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


def stream_content(document: dict[str, Any], path: str, status: str = "200") -> dict[str, Any]:
    """The ``content`` of *path*'s GET response *status*."""
    content: dict[str, Any] = document["paths"][path]["get"]["responses"][status]["content"]
    return content


def item_schema(document: dict[str, Any], path: str, status: str = "200") -> dict[str, Any]:
    schema: dict[str, Any] = stream_content(document, path, status)["text/event-stream"][
        "itemSchema"
    ]
    return schema


def twin_app() -> FastAPI:
    app = document_streams(FastAPI())
    for prefix, cls in (
        ("/ours", EventSourceResponse),
        ("/theirs", fastapi.sse.EventSourceResponse),
    ):

        async def ticks() -> AsyncIterator[Tick]:
            yield Tick(n=1)

        def sync_ticks() -> Iterator[Tick]:
            yield Tick(n=1)

        async def untyped():  # type: ignore[no-untyped-def]
            yield 1

        app.get(f"{prefix}/ticks", response_class=cls)(ticks)
        app.get(f"{prefix}/sync-ticks", response_class=cls)(sync_ticks)
        app.get(f"{prefix}/untyped", response_class=cls)(untyped)
    return app


@pytest.mark.parametrize("route", ["ticks", "sync-ticks", "untyped"])
def test_the_item_schema_is_what_fastapi_sse_emits(route: str) -> None:
    document = twin_app().openapi()
    ours = stream_content(document, f"/ours/{route}")
    theirs = stream_content(document, f"/theirs/{route}")
    assert ours == theirs  # the whole content: text/event-stream alone, the same itemSchema
    assert list(ours) == ["text/event-stream"]


def test_a_typed_stream_refers_to_its_model_in_the_components() -> None:
    document = twin_app().openapi()
    schema = item_schema(document, "/ours/ticks")
    assert schema["required"] == ["data"]
    assert schema["properties"]["data"] == {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": "#/components/schemas/Tick"},
    }
    tick = document["components"]["schemas"]["Tick"]
    assert tick["properties"]["n"] == {"type": "integer", "title": "N"}
    assert tick["required"] == ["n"]


def test_an_untyped_stream_is_the_plain_event() -> None:
    assert item_schema(twin_app().openapi(), "/ours/untyped") == BASE_EVENT


def test_typed_events_with_fixed_names_list_them_and_require_them() -> None:
    app = document_streams(FastAPI())

    @app.get("/events", response_class=EventSourceResponse)
    async def events() -> AsyncIterator[TickEvent | AlertEvent]:
        yield TickEvent(Tick(n=1))

    @app.get("/generic", response_class=EventSourceResponse)
    async def generic() -> AsyncIterator[JSONServerSentEvent[Tick]]:
        yield JSONServerSentEvent(Tick(n=1))

    @app.get("/mixed", response_class=EventSourceResponse)
    async def mixed() -> AsyncIterator[Tick | AlertEvent]:
        yield Tick(n=1)

    @app.get("/text", response_class=EventSourceResponse)
    async def text() -> AsyncIterator[ServerSentEvent[str]]:
        yield ServerSentEvent("x")

    document = app.openapi()
    schema = item_schema(document, "/events")
    assert schema["properties"]["event"] == {"type": "string", "enum": ["tick", "alert"]}
    assert sorted(schema["required"]) == ["data", "event"]
    assert schema["properties"]["data"]["contentSchema"] == {
        "anyOf": [{"$ref": "#/components/schemas/Tick"}, {"$ref": "#/components/schemas/Alert"}]
    }
    assert {"Tick", "Alert"} <= set(document["components"]["schemas"])
    assert document["components"]["schemas"]["Alert"]["required"] == ["level"]

    generic_schema = item_schema(document, "/generic")
    assert generic_schema["properties"]["event"] == {"type": "string"}  # any name
    assert generic_schema["properties"]["data"]["contentSchema"] == {
        "$ref": "#/components/schemas/Tick"
    }

    mixed_schema = item_schema(document, "/mixed")
    assert mixed_schema["required"] == ["data"]  # a plain Tick has no event name
    # A Tick has no event field; when there is one, it is "alert".
    assert mixed_schema["properties"]["event"] == {"type": "string", "enum": ["alert"]}

    assert item_schema(document, "/text") == BASE_EVENT  # text data: a string


def test_response_model_is_the_item_type_without_an_annotation() -> None:
    app = document_streams(FastAPI())

    @app.get("/model", response_class=EventSourceResponse, response_model=Alert)
    async def model():  # type: ignore[no-untyped-def]
        yield {"level": "x"}

    schema = item_schema(app.openapi(), "/model")
    assert schema["properties"]["data"]["contentSchema"] == {"$ref": "#/components/schemas/Alert"}


def test_included_routers_with_prefixes_hidden_routes_and_status_codes() -> None:
    router = APIRouter(prefix="/feeds")

    @router.get("/{name}", response_class=EventSourceResponse, status_code=201)
    async def feed(name: str) -> AsyncIterator[Tick]:
        yield Tick(n=1)

    @router.get("/hidden/{name}", response_class=EventSourceResponse, include_in_schema=False)
    async def hidden(name: str) -> AsyncIterator[Tick]:
        yield Tick(n=1)

    plain = APIRouter()

    @plain.get("/items")
    async def items():  # type: ignore[no-untyped-def]
        yield Alert(level="x")

    app = document_streams(FastAPI())
    app.include_router(router, prefix="/v1")
    app.include_router(plain, prefix="/by-default", default_response_class=EventSourceResponse)
    document = app.openapi()
    responses = document["paths"]["/v1/feeds/{name}"]["get"]["responses"]
    assert "200" not in responses
    schema = item_schema(document, "/v1/feeds/{name}", "201")
    assert schema["properties"]["data"]["contentSchema"] == {"$ref": "#/components/schemas/Tick"}
    assert not any("hidden" in path for path in document["paths"])
    assert item_schema(document, "/by-default/items") == BASE_EVENT  # untyped, but a stream


class WithOptions(EventSourceResponse):
    """Options for a yield route come from the class (FastAPI builds the response)."""

    DEFAULT_PING_INTERVAL = 5.0

    def __init__(self, content: Any, *args: Any, status_code: int = 200, **kwargs: Any) -> None:
        super().__init__(content, *args, status_code=status_code, farewell="bye", **kwargs)


def test_a_subclass_with_options_is_documented_if_it_keeps_status_code() -> None:
    # FastAPI 0.165 reads a route's default status from ``response_class.__init__``'s
    # ``status_code`` parameter (see the next test for a subclass without it).
    app = document_streams(FastAPI())

    @app.get("/kept", response_class=WithOptions)
    async def kept() -> AsyncIterator[Tick]:
        yield Tick(n=1)

    schema = item_schema(app.openapi(), "/kept")
    assert schema["properties"]["data"]["contentSchema"] == {"$ref": "#/components/schemas/Tick"}


class KeywordsOnly(EventSourceResponse):
    def __init__(self, content: Any, **options: Any) -> None:
        super().__init__(content, ping=5, **options)


def test_a_subclass_without_status_code_is_documented_as_200() -> None:
    # Without document_streams FastAPI fails on it (UnboundLocalError); with it, the document
    # is built, and the class's signature is as it was afterwards.
    app = document_streams(FastAPI())

    @app.get("/keywords", response_class=KeywordsOnly)
    async def keywords() -> AsyncIterator[Tick]:
        yield Tick(n=1)

    schema = item_schema(app.openapi(), "/keywords")
    assert schema["properties"]["data"]["contentSchema"] == {"$ref": "#/components/schemas/Tick"}
    assert "status_code" not in inspect.signature(KeywordsOnly.__init__).parameters
    assert "__signature__" not in vars(KeywordsOnly.__init__)


def test_calling_document_streams_twice_changes_nothing() -> None:
    app = twin_app()
    once = copy.deepcopy(app.openapi())
    app.openapi_schema = None
    assert document_streams(app) is app
    assert app.openapi() == once
    assert app.openapi() is app.openapi()  # cached by FastAPI as before


def test_an_apps_own_openapi_function_keeps_its_changes() -> None:
    app = FastAPI()

    @app.get("/ticks", response_class=EventSourceResponse)
    async def ticks() -> AsyncIterator[Tick]:
        yield Tick(n=1)

    build = app.openapi

    def custom_openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = build()
        document["info"]["x-logo"] = {"url": "logo.png"}
        app.openapi_schema = document
        return document

    app.openapi = custom_openapi  # type: ignore[method-assign]
    document_streams(app)
    document = app.openapi()
    assert document["info"]["x-logo"] == {"url": "logo.png"}
    assert item_schema(document, "/ticks")["required"] == ["data"]


def test_without_document_streams_fastapi_says_string() -> None:
    # The control: FastAPI alone documents a trio_sse route as a string, no itemSchema.
    app = FastAPI()

    @app.get("/ticks", response_class=EventSourceResponse)
    async def ticks() -> AsyncIterator[Tick]:
        yield Tick(n=1)

    content = stream_content(app.openapi(), "/ticks")
    assert "itemSchema" not in content.get("text/event-stream", {})


def test_the_document_is_valid_openapi_3_2() -> None:
    # FastAPI labels its document 3.1.0 but ``itemSchema`` is OpenAPI 3.2's (a 3.1 validator
    # refuses fastapi.sse's own document for it): validated as what it is, 3.2.
    from openapi_spec_validator import OpenAPIV32SpecValidator, validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    app = twin_app()

    @app.get("/events", response_class=EventSourceResponse)
    async def events() -> AsyncIterator[TickEvent | AlertEvent]:
        yield TickEvent(Tick(n=1))

    document = {**app.openapi(), "openapi": "3.2.0"}
    validate(document, cls=OpenAPIV32SpecValidator)
    broken = copy.deepcopy(document)  # the control: the validator does look at the content
    media = stream_content(broken, "/events")["text/event-stream"]
    media["itemSchemas"] = media.pop("itemSchema")
    with pytest.raises(OpenAPIValidationError, match="itemSchemas"):
        validate(broken, cls=OpenAPIV32SpecValidator)
