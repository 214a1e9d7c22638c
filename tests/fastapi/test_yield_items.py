"""``yield`` path operations with ``response_class=trio_sse.EventSourceResponse``: each item
means what it means to ``fastapi.sse``.

Each route has a twin answered by ``fastapi.sse.EventSourceResponse`` that yields the same
items; the tests read both streams in-process (trio and asyncio) and compare what a client
sees: the data parsed as JSON (trio_sse writes compact JSON, FastAPI's ``json.dumps`` does not
always) and the other fields. trio_sse's own events and bytes are sent as they are.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import fastapi.routing
import fastapi.sse
import pytest
from fastapi import FastAPI

from trio_sse import EventSourceResponse, JSONServerSentEvent, ServerSentEvent

from .models import TIMEOUT, Tick, data_json, fields, read_all

pytestmark = pytest.mark.anyio


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Point:
    x: int
    y: int


# Values, as a path operation yields them: fastapi.sse sends each as JSON data.
VALUES: list[Any] = [
    Tick(n=1),
    {"n": 2, "nested": [1, 2, {"deep": True}]},
    "a string\nwith a line end",
    [1, "two", None, 3.5],
    42,
    False,
    datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    uuid.UUID(int=7),
    Colour.RED,
    Point(1, 2),
    decimal.Decimal("1.25"),
    {"model": Tick(n=3, note="inside")},
]

# fastapi.sse's own event, each field; data as JSON, raw_data as it is.
FASTAPI_EVENTS: list[fastapi.sse.ServerSentEvent] = [
    fastapi.sse.ServerSentEvent(data={"k": [1, 2]}, event="update", id="7", retry=2500),
    fastapi.sse.ServerSentEvent(data=Tick(n=9)),
    fastapi.sse.ServerSentEvent(data="quoted"),
    fastapi.sse.ServerSentEvent(raw_data="raw <b>html</b>\nsecond line", event="html"),
    fastapi.sse.ServerSentEvent(comment="a comment\nof two lines"),
    fastapi.sse.ServerSentEvent(data=1, comment="with data"),
]


def twins(items: list[Any], *, sync: bool = False, annotated: bool = True) -> FastAPI:
    """An app with ``/trio_sse`` and ``/fastapi`` yielding *items*, by an async generator
    (or a sync one, which both run in a worker thread), annotated ``-> AsyncIterator[Any]``
    (FastAPI then serializes by Pydantic) or not at all (by its ``jsonable_encoder``)."""
    app = FastAPI()
    responses = (("/trio_sse", EventSourceResponse), ("/fastapi", fastapi.sse.EventSourceResponse))
    for path, cls in responses:
        endpoint: Callable[[], Any]
        if sync:

            def endpoint() -> Iterator[Any]:
                yield from items

        else:

            async def endpoint() -> AsyncIterator[Any]:
                for item in items:
                    yield item

        if not annotated:
            del endpoint.__annotations__["return"]
        app.get(path, response_class=cls)(endpoint)
    return app


async def both(app: FastAPI, comments: bool = False) -> tuple[list[ServerSentEvent], ...]:
    with anyio.fail_after(TIMEOUT):
        ours = await read_all(app, "/trio_sse", comments=comments)
        theirs = await read_all(app, "/fastapi", comments=comments)
    assert ours[0] == theirs[0] == 200
    assert ours[2] and theirs[2]  # both bodies ended cleanly
    return ours[1], theirs[1]


@pytest.mark.parametrize("annotated", [True, False], ids=["Any", "unannotated"])
@pytest.mark.parametrize("sync", [False, True], ids=["async-gen", "sync-gen"])
async def test_values_are_json_data_as_fastapi_writes_them(sync: bool, annotated: bool) -> None:
    # Annotated ``Any``, FastAPI writes a datetime with "Z" and a Decimal as a string
    # (Pydantic); unannotated, "+00:00" and a number (jsonable_encoder): trio_sse follows.
    ours, theirs = await both(twins(VALUES, sync=sync, annotated=annotated))
    assert len(ours) == len(theirs) == len(VALUES)
    assert data_json(ours) == data_json(theirs)
    assert [fields(event) for event in ours] == [fields(event) for event in theirs]
    assert data_json(ours)[0] == {"n": 1, "note": None}
    assert data_json(ours)[2] == "a string\nwith a line end"  # a str is JSON too, quoted


@pytest.mark.parametrize("annotated", [True, False], ids=["Any", "unannotated"])
@pytest.mark.parametrize(
    "value",
    [None, math.nan, math.inf, {"x": -math.inf}, [1.0, math.nan]],
    ids=["none", "nan", "inf", "dict-inf", "list-nan"],
)
async def test_none_and_non_finite_floats_are_json_null_as_in_fastapi(
    value: object, annotated: bool
) -> None:
    # fastapi.sse writes ``data: null`` for None and a non-finite float as null; a stream
    # that dropped the None (no data field: no event) or died on NaN would differ.
    ours, theirs = await both(twins([value, "after"], annotated=annotated))
    assert len(ours) == 2
    expected = (
        {math.nan: None, math.inf: None}.get(value, value) if isinstance(value, float) else value
    )
    if isinstance(value, dict):
        expected = dict.fromkeys(value)
    elif isinstance(value, list):
        expected = [1.0, None]
    assert data_json(ours) == [expected, "after"]
    if hasattr(fastapi.routing, "_normalize_non_finite_floats"):  # FastAPI >= 0.14x
        assert data_json(ours) == data_json(theirs)


async def test_an_item_that_is_not_json_ends_the_stream_naming_the_route(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()

    @app.get("/opaque", response_class=EventSourceResponse)
    async def opaque():  # type: ignore[no-untyped-def]
        yield 1
        yield object()  # no JSON for it
        yield 3

    with anyio.fail_after(TIMEOUT):
        status, events, complete = await read_all(app, "/opaque")
    assert status == 200 and complete
    assert data_json(events) == [1]
    [record] = [r for r in caplog.records if r.name == "trio_sse"]
    assert "GET /opaque (opaque)" in record.getMessage()
    assert "object" in record.getMessage()


async def test_fastapi_server_sent_events_are_written_as_fastapi_writes_them() -> None:
    ours, theirs = await both(twins(list(FASTAPI_EVENTS)), comments=True)
    assert [fields(event) for event in ours] == [fields(event) for event in theirs]
    assert [event.data for event in ours if event.data is not None and event.event == "html"] == [
        "raw <b>html</b>\nsecond line"
    ]
    parsed = [
        data_json([o]) == data_json([t])
        for o, t in zip(ours, theirs, strict=True)
        if o.data is not None and o.event != "html"
    ]
    assert parsed and all(parsed)
    assert ours[0].event == "update" and ours[0].id == "7" and ours[0].retry == 2500
    comments = [event.comment for event in ours if event.comment is not None]
    assert comments == ["a comment", "of two lines", "with data"]  # the decoder: one per line


@pytest.mark.parametrize("sync", [False, True], ids=["async-gen", "sync-gen"])
async def test_trio_sse_events_and_bytes_are_sent_as_they_are(sync: bool) -> None:
    items: list[Any] = [
        ServerSentEvent("plain text, not JSON", event="text", id="1"),
        JSONServerSentEvent({"a": 1}, event="json"),
        ServerSentEvent({"a": 1}),  # a ServerSentEvent str()s its data, even here
        b"event: raw\ndata: as is\n\n",
        ServerSentEvent(comment="just a comment"),
    ]
    with anyio.fail_after(TIMEOUT):
        status, events, complete = await read_all(
            twins(items, sync=sync), "/trio_sse", comments=True
        )
    assert status == 200 and complete
    assert [(event.event, event.data) for event in events] == [
        ("text", "plain text, not JSON"),
        ("json", '{"a":1}'),
        (None, "{'a': 1}"),
        ("raw", "as is"),
        (None, None),
    ]
    assert events[-1].comment == "just a comment"


async def test_a_dict_is_data_not_event_fields() -> None:
    # trio_sse's own meaning of a dict (event fields, as in sse-starlette) does not apply
    # to a yield path operation: there it is a value, as in fastapi.sse.
    ours, _ = await both(twins([{"event": "not-a-name", "data": "x"}]))
    assert ours[0].event is None
    assert data_json(ours) == [{"event": "not-a-name", "data": "x"}]


def sleepy_sync() -> Callable[[], Iterator[int]]:
    def endpoint() -> Iterator[int]:
        for number in range(3):
            time.sleep(0.01)  # a blocking call: the generator runs in a worker thread
            yield number

    return endpoint


async def test_a_blocking_sync_generator_does_not_block_the_loop() -> None:
    app = FastAPI()
    app.get("/s", response_class=EventSourceResponse)(sleepy_sync())
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.sleep(0.001)

    with anyio.fail_after(TIMEOUT):
        async with anyio.create_task_group() as group:
            group.start_soon(ticker)
            _, events, _ = await read_all(app, "/s")
            group.cancel_scope.cancel()
    assert data_json(events) == [0, 1, 2]
    assert ticks > 3  # the loop ran while the generator slept
