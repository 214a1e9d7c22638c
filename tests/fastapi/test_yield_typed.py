"""Typed ``yield`` streams: items validated against the declared type before they are sent.

``-> AsyncIterator[Tick]`` (or ``response_model=Tick``) validates and serializes each item as
FastAPI does (the data is byte for byte what ``fastapi.sse`` sends); typed events
(``JSONServerSentEvent[Tick]``, ``class TickEvent(JSONServerSentEvent[Tick], event="tick")``
and unions of them) have their data validated. An item that does not match ends the stream
cleanly: the body ends, the events before it were delivered and none after it, the generator
is closed (its ``finally`` runs) and one record on the ``trio_sse`` logger names the route.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import fastapi.sse
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field

from trio_sse import EventSourceResponse, JSONServerSentEvent, ServerSentEvent

from .models import TIMEOUT, Alert, AlertEvent, Tick, TickEvent, data_json, read_all

pytestmark = pytest.mark.anyio


async def stream_of(app: FastAPI, path: str) -> list[ServerSentEvent]:
    with anyio.fail_after(TIMEOUT):
        status, events, complete = await read_all(app, path)
    assert status == 200
    assert complete  # a clean end of body, whatever happened
    return events


def rejections(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "trio_sse" and r.levelno >= logging.WARNING]


async def test_items_are_validated_and_serialized_as_fastapi_sse_does() -> None:
    app = FastAPI()
    items: list[Any] = [Tick(n=1), {"n": "2"}, {"n": 3, "note": "x", "extra": "dropped"}]
    for path, cls in (("/ours", EventSourceResponse), ("/theirs", fastapi.sse.EventSourceResponse)):

        async def ticks() -> AsyncIterator[Tick]:
            for item in items:
                yield item

        app.get(path, response_class=cls)(ticks)
    ours = await stream_of(app, "/ours")
    theirs = await stream_of(app, "/theirs")
    # The same Pydantic serializer: the same text, not only the same JSON.
    assert [event.data for event in ours] == [event.data for event in theirs]
    assert data_json(ours) == [
        {"n": 1, "note": None},
        {"n": 2, "note": None},  # "2" validated (lax mode) into an int
        {"n": 3, "note": "x"},
    ]


@pytest.mark.parametrize("sync", [False, True], ids=["async-gen", "sync-gen"])
async def test_an_invalid_item_ends_the_stream_cleanly_and_is_logged_once(
    sync: bool, caplog: pytest.LogCaptureFixture
) -> None:
    closed: list[str] = []
    app = FastAPI()
    if sync:

        @app.get("/feeds/{name}/ticks", response_class=EventSourceResponse)
        def ticks(name: str) -> Iterator[Tick]:
            try:
                yield Tick(n=1)
                yield {"n": 2}  # type: ignore[misc]
                yield {"n": "not a number"}  # type: ignore[misc]
                closed.append("not reached")
                yield Tick(n=4)
            finally:
                closed.append(name)

    else:

        @app.get("/feeds/{name}/ticks", response_class=EventSourceResponse)
        async def ticks(name: str) -> AsyncIterator[Tick]:  # type: ignore[misc]
            try:
                yield Tick(n=1)
                yield {"n": 2}  # type: ignore[misc]
                yield {"n": "not a number"}  # type: ignore[misc]
                closed.append("not reached")
                yield Tick(n=4)
            finally:
                closed.append(name)

    with caplog.at_level(logging.INFO, logger="trio_sse"):
        events = await stream_of(app, "/feeds/one/ticks")
    assert data_json(events) == [{"n": 1, "note": None}, {"n": 2, "note": None}]
    assert closed == ["one"]  # the generator was closed at the invalid item: finally ran
    [record] = rejections(caplog)
    message = record.getMessage()
    assert "/feeds/{name}/ticks" in message  # the route, as declared
    assert "ticks" in message and "item 3" in message
    assert "not a number" in message  # what was wrong with it
    assert record.exc_info is None  # a validation error, not a crash: no traceback


async def test_typed_events_have_their_data_validated(caplog: pytest.LogCaptureFixture) -> None:
    app = FastAPI()

    @app.get("/generic", response_class=EventSourceResponse)
    async def generic() -> AsyncIterator[JSONServerSentEvent[Tick]]:
        yield JSONServerSentEvent(Tick(n=1), id="1")
        # A type checker sees that a dict is not a Tick; at run time it is validated.
        yield JSONServerSentEvent({"n": 2}, event="named-by-the-app")  # type: ignore[arg-type]
        yield JSONServerSentEvent({"level": "not a tick"})  # type: ignore[arg-type]
        yield JSONServerSentEvent(Tick(n=4))

    with caplog.at_level(logging.INFO, logger="trio_sse"):
        events = await stream_of(app, "/generic")
    assert [(event.event, event.data) for event in events] == [
        (None, '{"n":1,"note":null}'),
        ("named-by-the-app", '{"n":2}'),  # an event is sent as it is: its JSON, not Tick's
    ]
    [record] = rejections(caplog)
    assert "/generic" in record.getMessage()


async def test_a_fixed_event_subclass_and_a_union_of_them() -> None:
    app = FastAPI()

    @app.get("/mixed", response_class=EventSourceResponse)
    async def mixed() -> AsyncIterator[TickEvent | AlertEvent]:
        yield TickEvent(Tick(n=1), id="a")
        yield AlertEvent(Alert(level="high"))
        yield TickEvent({"n": 3})  # type: ignore[arg-type]
        yield AlertEvent({"level": 5})  # type: ignore[arg-type]  # not a str: invalid

    events = await stream_of(app, "/mixed")
    assert [(event.event, event.data) for event in events] == [
        ("tick", '{"n":1,"note":null}'),
        ("alert", '{"level":"high"}'),
        ("tick", '{"n":3}'),
    ]
    with pytest.raises(ValueError, match="tick"):
        TickEvent(Tick(n=1), event="other")  # the name is the class's


@pytest.mark.parametrize(
    "intruder",
    [
        pytest.param(lambda: ServerSentEvent("plain"), id="plain-event"),
        pytest.param(lambda: JSONServerSentEvent(Tick(n=9)), id="untyped-json-event"),
        pytest.param(lambda: {"n": 1}, id="a-value"),
    ],
)
async def test_an_item_outside_a_union_of_events_ends_the_stream(
    intruder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app = FastAPI()

    @app.get("/only-events", response_class=EventSourceResponse)
    async def only_events() -> AsyncIterator[TickEvent | AlertEvent]:
        yield TickEvent(Tick(n=1))
        yield intruder()
        yield AlertEvent(Alert(level="never sent"))

    with caplog.at_level(logging.INFO, logger="trio_sse"):
        events = await stream_of(app, "/only-events")
    assert [event.event for event in events] == ["tick"]
    [record] = rejections(caplog)
    assert "/only-events" in record.getMessage()


async def test_a_union_of_data_and_events() -> None:
    app = FastAPI()

    @app.get("/both", response_class=EventSourceResponse)
    async def both() -> AsyncIterator[Tick | AlertEvent]:
        yield {"n": 1}  # type: ignore[misc]  # validated into a Tick
        yield AlertEvent(Alert(level="x"))
        yield Tick(n=2)

    events = await stream_of(app, "/both")
    assert [(event.event, event.data) for event in events] == [
        (None, '{"n":1,"note":null}'),
        ("alert", '{"level":"x"}'),
        (None, '{"n":2,"note":null}'),
    ]


async def test_response_model_is_the_item_type_without_an_annotation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()

    @app.get(
        "/model",
        response_class=EventSourceResponse,
        response_model=Tick,
        response_model_exclude_none=True,
    )
    async def model():  # type: ignore[no-untyped-def]  # no annotation: response_model rules
        yield {"n": 1}
        yield {"n": 2, "note": "kept"}
        yield {"n": "three"}
        yield {"n": 4}

    with caplog.at_level(logging.INFO, logger="trio_sse"):
        events = await stream_of(app, "/model")
    assert [event.data for event in events] == ['{"n":1}', '{"n":2,"note":"kept"}']
    [record] = rejections(caplog)
    assert "/model" in record.getMessage()


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"response_model_exclude_unset": True}, [{"n": 1}, {"n": 2, "note": None}]),
        ({"response_model_exclude": {"note"}}, [{"n": 1}, {"n": 2}]),
        ({"response_model_include": {"note"}}, [{"note": None}, {"note": None}]),
        ({"response_model_exclude_defaults": True}, [{"n": 1}, {"n": 2}]),
    ],
    ids=["exclude_unset", "exclude", "include", "exclude_defaults"],
)
async def test_response_model_options_are_honoured(
    options: dict[str, Any], expected: list[dict[str, Any]]
) -> None:
    app = FastAPI()

    @app.get("/opts", response_class=EventSourceResponse, **options)
    async def opts() -> AsyncIterator[Tick]:
        yield Tick(n=1)
        yield Tick(n=2, note=None)  # set explicitly: kept by exclude_unset

    assert data_json(await stream_of(app, "/opts")) == expected


class Aliased(BaseModel):
    value: int = Field(alias="theValue")


async def test_aliases_are_used_as_fastapi_does() -> None:
    app = FastAPI()
    for path, by_alias in (("/alias", True), ("/names", False)):

        async def aliased() -> AsyncIterator[Aliased]:
            yield Aliased(theValue=1)

        app.get(path, response_class=EventSourceResponse, response_model_by_alias=by_alias)(aliased)
    assert data_json(await stream_of(app, "/alias")) == [{"theValue": 1}]
    assert data_json(await stream_of(app, "/names")) == [{"value": 1}]
