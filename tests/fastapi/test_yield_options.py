"""What trio_sse adds, on ``yield`` path operations: pings, shutdown with a farewell, the send
timeout, disconnects that close the generator; routers, ``HEAD``, headers; and an endpoint
that returns its own ``EventSourceResponse`` (trio_sse's item meanings, not fastapi.sse's).

FastAPI builds the response of a ``yield`` path operation itself (``response_class(content=
generator, status_code=..., background=...)``), so the options come from the class: a
subclass changes a class default (``DEFAULT_PING_INTERVAL``) or passes options from its
``__init__``. Class attributes named like the options (``shutdown = token``) are not options:
the constructor sets every option on the instance.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import fastapi.sse
import pytest
from fastapi import APIRouter, Depends, FastAPI, Response

from trio_sse import EventSourceResponse, SendTimeoutError, ServerSentEvent, ShutdownToken
from trio_sse.testing import open_event_stream

from .models import TIMEOUT, Tick, data_json, read_all

pytestmark = pytest.mark.anyio


class FastPings(EventSourceResponse):
    DEFAULT_PING_INTERVAL = 0.05


async def test_a_subclass_sets_the_ping_interval() -> None:
    released = anyio.Event()
    app = FastAPI()

    @app.get("/slow", response_class=FastPings)
    async def slow() -> AsyncIterator[Tick]:
        yield Tick(n=1)
        await released.wait()  # silent until the test saw pings
        yield Tick(n=2)

    with anyio.fail_after(TIMEOUT):
        async with open_event_stream(app, "/slow", comments=True) as stream:
            first = await anext(stream)
            assert data_json([first]) == [{"n": 1, "note": None}]
            pings = 0
            while pings < 2:
                event = await anext(stream)
                assert event.data is None and event.comment is not None, event
                pings += 1
            released.set()
            rest = [event async for event in stream if event.data is not None]
    assert data_json(rest) == [{"n": 2, "note": None}]


async def test_the_base_class_pings_only_after_15_seconds() -> None:
    # The control for the test above: without the subclass, no ping comes in a short silence.
    app = FastAPI()

    @app.get("/quiet", response_class=EventSourceResponse)
    async def quiet() -> AsyncIterator[int]:
        yield 1
        await anyio.sleep(0.3)
        yield 2

    with anyio.fail_after(TIMEOUT):
        _, events, _ = await read_all(app, "/quiet", comments=True)
    assert [event.data for event in events] == ["1", "2"]


TOKEN_FAREWELL = ServerSentEvent("server going away", event="bye")


def bound_class(token: ShutdownToken, **options: Any) -> type[EventSourceResponse]:
    """A response class whose streams obey *token* and say goodbye (options by ``__init__``)."""

    class Bound(EventSourceResponse):
        def __init__(self, content: Any, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("shutdown", token)
            kwargs.setdefault("farewell", TOKEN_FAREWELL)
            kwargs.setdefault("farewell_retry", 3000)
            super().__init__(content, *args, **{**options, **kwargs})

    return Bound


@pytest.mark.parametrize("sync", [False, True], ids=["async-gen", "sync-gen"])
async def test_a_triggered_shutdown_token_ends_the_stream_with_a_farewell(sync: bool) -> None:
    token = ShutdownToken()
    closed = anyio.Event() if not sync else None
    thread_closed = threading.Event()
    app = FastAPI()
    route = app.get("/forever", response_class=bound_class(token))
    if sync:

        @route
        def forever_sync() -> Iterator[Tick]:
            try:
                yield Tick(n=1)
                while not thread_closed.wait(0.01):  # blocks its worker thread, not the loop
                    yield Tick(n=2)
            finally:
                thread_closed.set()

    else:

        @route
        async def forever() -> AsyncIterator[Tick]:
            try:
                yield Tick(n=1)
                await anyio.sleep_forever()
            finally:
                assert closed is not None
                closed.set()

    with anyio.fail_after(TIMEOUT):
        async with open_event_stream(app, "/forever") as stream:
            assert data_json(await stream.read_events(1)) == [{"n": 1, "note": None}]
            token.trigger("deploy")
            rest = [event async for event in stream]
            assert stream.complete  # a clean end of body
        assert rest[-1].event == "bye" and rest[-1].data == "server going away"
        assert stream.retry == 3000
        if closed is not None:
            await closed.wait()
    assert thread_closed.is_set() or not sync


async def test_the_send_timeout_ends_a_stream_nobody_reads() -> None:
    closed: list[str] = []
    app = FastAPI()

    class Impatient(EventSourceResponse):
        def __init__(self, content: Any, *args: Any, **kwargs: Any) -> None:
            super().__init__(content, *args, send_timeout=0.2, **kwargs)

    @app.get("/firehose", response_class=Impatient)
    async def firehose() -> AsyncIterator[str]:
        try:
            while True:
                yield "x" * 1000
        finally:
            closed.append("firehose")

    async def read_one_then_stop_reading() -> None:
        async with open_event_stream(app, "/firehose", max_buffered_messages=1) as stream:
            await stream.read_events(1)
            await anyio.sleep(1.0)  # the app's send blocks, then times out

    with anyio.fail_after(TIMEOUT), pytest.raises(SendTimeoutError):
        await read_one_then_stop_reading()
    assert closed == ["firehose"]


async def test_events_ready_together_are_coalesced_into_one_body_message() -> None:
    # fastapi.sse sends one body message per event; trio_sse writes what is ready together
    # (at most max_prefetch, 16, per message) when the client is slower than the generator.
    app = FastAPI()
    for path, cls in (("/ours", EventSourceResponse), ("/theirs", fastapi.sse.EventSourceResponse)):

        async def burst() -> AsyncIterator[int]:
            for number in range(100):
                yield number

        app.get(path, response_class=cls)(burst)
    messages: dict[str, int] = {}
    for path in ("/ours", "/theirs"):
        with anyio.fail_after(TIMEOUT):
            async with open_event_stream(app, path, max_buffered_messages=1) as stream:
                await anyio.sleep(0.05)  # a slow client: the generator gets ahead
                assert data_json([event async for event in stream]) == list(range(100))
                messages[path] = stream.body_messages
    assert messages["/theirs"] >= 100
    assert messages["/ours"] <= 100 // 2, messages


@pytest.mark.parametrize("sync", [False, True], ids=["async-gen", "sync-gen"])
async def test_a_client_disconnect_closes_the_generator(sync: bool) -> None:
    made: list[int] = []
    closed: list[str] = []
    app = FastAPI()
    route = app.get("/count", response_class=EventSourceResponse)
    if sync:

        @route
        def count_sync() -> Iterator[int]:
            try:
                for number in range(10**9):
                    made.append(number)
                    yield number
                    threading.Event().wait(0.005)
            finally:
                closed.append("sync")

    else:

        @route
        async def count() -> AsyncIterator[int]:
            try:
                for number in range(10**9):
                    made.append(number)
                    yield number
                    await anyio.sleep(0.005)
            finally:
                closed.append("async")

    with anyio.fail_after(TIMEOUT):
        async with open_event_stream(app, "/count") as stream:
            assert data_json(await stream.read_events(3)) == [0, 1, 2]
            stream.disconnect()
        # Leaving waits for the app: the generator was closed by then, not by the GC later.
        assert closed == ["sync" if sync else "async"]
        seen = len(made)
        await anyio.sleep(0.05)
    assert len(made) == seen  # nothing more was made
    assert seen < 3 + 20  # at most the prefetch ahead of the client


async def test_a_route_of_an_included_router_with_a_prefix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = APIRouter(prefix="/feeds")

    @router.get("/{name}", response_class=EventSourceResponse, status_code=201)
    async def feed(name: str) -> AsyncIterator[Tick]:
        yield Tick(n=len(name))
        yield {"n": "bad"}  # type: ignore[misc]

    app = FastAPI()
    app.include_router(router, prefix="/v1")
    with anyio.fail_after(TIMEOUT):
        status, events, complete = await read_all(app, "/v1/feeds/abc")
    assert status == 201 and complete
    assert data_json(events) == [{"n": 3, "note": None}]
    [record] = [r for r in caplog.records if r.name == "trio_sse"]
    assert "/v1/feeds/{name}" in record.getMessage()  # the route with its prefixes


async def test_the_response_class_given_when_the_router_is_included() -> None:
    # FastAPI 0.165 keeps an inclusion's options (prefix, default_response_class,
    # response_model_*...) beside the router's own route: the stream must read them there.
    router = APIRouter()
    # No annotation: FastAPI would take a return annotation as the (JSON) response model.

    @router.get("/items")
    async def items():  # type: ignore[no-untyped-def]
        yield {"event": "x", "data": "y"}

    app = FastAPI()
    app.include_router(router, prefix="/ours", default_response_class=EventSourceResponse)
    app.include_router(
        router, prefix="/theirs", default_response_class=fastapi.sse.EventSourceResponse
    )
    with anyio.fail_after(TIMEOUT):
        ours = await read_all(app, "/ours/items")
        theirs = await read_all(app, "/theirs/items")
    assert ours[1][0].event is None  # a value, as fastapi.sse reads it, not event fields
    assert data_json(ours[1]) == data_json(theirs[1]) == [{"event": "x", "data": "y"}]


async def test_head_sends_the_headers_and_no_body() -> None:
    started: list[str] = []
    app = FastAPI()

    @app.api_route("/both", methods=["GET", "HEAD"], response_class=EventSourceResponse)
    async def both() -> AsyncIterator[int]:
        started.append("started")
        yield 1

    with anyio.fail_after(TIMEOUT):
        async with open_event_stream(app, "/both", method="HEAD") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert [chunk async for chunk in stream.iter_bytes()] == []
            assert stream.complete
        _, events, _ = await read_all(app, "/both")
    assert [event.data for event in events] == ["1"]
    assert started == ["started"]  # the HEAD request never ran the generator


def tag(response: Response) -> None:
    response.headers["X-Feed"] = "ticks"


async def test_headers_and_the_response_parameter() -> None:
    # The generator's body runs while streaming, after the headers went: a header is set by
    # a dependency (or the endpoint's caller), as with fastapi.sse.
    app = FastAPI()

    @app.get("/headers", response_class=EventSourceResponse, dependencies=[Depends(tag)])
    async def headers() -> AsyncIterator[int]:
        yield 1

    with anyio.fail_after(TIMEOUT):
        async with open_event_stream(app, "/headers") as stream:
            assert stream.headers["x-feed"] == "ticks"
            assert stream.headers["cache-control"] == "no-store"  # trio_sse's, not no-cache
            assert stream.headers["x-accel-buffering"] == "no"
            assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert [event.data async for event in stream] == ["1"]


async def test_an_endpoint_returning_its_own_response_keeps_trio_sse_item_meanings() -> None:
    app = FastAPI()

    async def items() -> AsyncIterator[Any]:
        yield {"event": "update", "data": "fields", "id": "1"}  # a dict is event fields here
        yield "text"  # and a str is data as it is, not JSON
        yield Tick(n=1)  # a model is JSON

    @app.get("/own")
    async def own() -> EventSourceResponse:
        return EventSourceResponse(items(), ping=0)

    @app.get("/own-class", response_class=EventSourceResponse)
    async def own_class() -> EventSourceResponse:
        return EventSourceResponse(items())

    for path in ("/own", "/own-class"):
        with anyio.fail_after(TIMEOUT):
            status, events, complete = await read_all(app, path)
        assert status == 200 and complete
        assert [(event.event, event.id, event.data) for event in events] == [
            ("update", "1", "fields"),
            (None, "1", "text"),  # the id carries on, as browsers keep it
            (None, "1", '{"n":1,"note":null}'),
        ]
