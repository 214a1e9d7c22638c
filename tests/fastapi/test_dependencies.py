"""FastAPI dependencies in front of trio_sse streams (issue 14 item 4), for a ``yield`` path
operation and for an endpoint that returns its own ``EventSourceResponse``.

* a dependency that raises ``HTTPException(401)`` answers a real 401 (JSON, no stream), and
  the generator never starts;
* a ``Broadcaster`` from the lifespan is injected by a dependency and resumed by
  ``Last-Event-ID`` through the route;
* background tasks (added by the endpoint or a dependency) run after the stream ended;
* a dependency with ``yield``: when its exit code runs, as FastAPI 0.165 does it (pinned).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import anyio.lowlevel
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, Header, HTTPException, Request

from trio_sse import Broadcaster, EventSourceResponse, ServerSentEvent
from trio_sse.testing import open_app, open_event_stream

from .models import TIMEOUT, Tick, data_json, read_all

pytestmark = pytest.mark.anyio


def authenticate(authorization: Annotated[str | None, Header()] = None) -> str:
    if authorization != "Bearer good":
        raise HTTPException(401, detail="not signed in", headers={"WWW-Authenticate": "Bearer"})
    return "alice"


def auth_app(started: list[str]) -> FastAPI:
    app = FastAPI()

    @app.get("/yield", response_class=EventSourceResponse)
    async def by_yield(user: Annotated[str, Depends(authenticate)]) -> AsyncIterator[Tick]:
        started.append("yield")
        yield Tick(n=1, note=user)

    @app.get("/returned")
    async def returned(user: Annotated[str, Depends(authenticate)]) -> EventSourceResponse:
        async def items() -> AsyncIterator[str]:
            started.append("returned")
            yield user

        return EventSourceResponse(items())

    return app


@pytest.mark.parametrize("path", ["/yield", "/returned"])
async def test_an_authenticating_dependency_answers_401_before_any_stream(path: str) -> None:
    started: list[str] = []
    app = auth_app(started)
    with anyio.fail_after(TIMEOUT):
        async with open_event_stream(app, path) as stream:
            body = b"".join([chunk async for chunk in stream.iter_bytes()])
            assert stream.status_code == 401
            assert stream.headers["content-type"] == "application/json"
            assert stream.headers["www-authenticate"] == "Bearer"
        assert json.loads(body) == {"detail": "not signed in"}
        assert started == []  # the stream never started
        status, events, complete = await read_all(
            app, path, headers={"Authorization": "Bearer good"}
        )
    assert status == 200 and complete
    assert started == [path.strip("/")]
    assert "alice" in (events[0].data or "")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    async with Broadcaster(history=100) as hub:
        yield {"hub": hub}


def get_hub(request: Request) -> Broadcaster:
    hub: Broadcaster = request.state.hub
    return hub


Hub = Annotated[Broadcaster, Depends(get_hub)]


def broadcast_app() -> FastAPI:
    app = FastAPI(lifespan=lifespan)

    @app.get("/returned/{room}")
    async def returned(room: str, request: Request, hub: Hub) -> EventSourceResponse:
        return EventSourceResponse(hub.stream(room, request))

    @app.get("/yield/{room}", response_class=EventSourceResponse)
    async def by_yield(
        room: str, hub: Hub, last_event_id: Annotated[str | None, Header()] = None
    ) -> AsyncIterator[ServerSentEvent]:
        # The hub's events are trio_sse events: sent as they are, ids and all.
        async with hub.subscribe(room, last_event_id=last_event_id) as events:
            async for event in events:
                yield event

    return app


@pytest.mark.parametrize("route", ["returned", "yield"])
async def test_a_broadcaster_from_the_lifespan_resumes_by_last_event_id(route: str) -> None:
    app = broadcast_app()
    with anyio.fail_after(TIMEOUT):
        async with open_app(app) as running:
            hub: Broadcaster = running.state["hub"]
            ids = [await hub.publish("room", Tick(n=n)) for n in range(3)]
            headers = {"Last-Event-ID": ids[0]}
            async with open_event_stream(running, f"/{route}/room", headers=headers) as stream:
                assert stream.status_code == 200
                history = await stream.read_events(2)  # after ids[0]: no gap, no duplicate
                assert [event.id for event in history] == ids[1:]
                assert data_json(history) == [{"n": 1, "note": None}, {"n": 2, "note": None}]
                live_id = await hub.publish("room", Tick(n=3, note="live"))
                [live] = await stream.read_events(1)
                assert (live.id, data_json([live])) == (live_id, [{"n": 3, "note": "live"}])
                stream.disconnect()
            await anyio.lowlevel.checkpoint()
            assert hub.stats().subscribers.get("room", 0) == 0  # the subscription closed


def order_app(log: list[str]) -> FastAPI:
    app = FastAPI()

    def tagged(background: BackgroundTasks) -> None:
        background.add_task(log.append, "dependency's task")

    @app.get("/yield", response_class=EventSourceResponse, dependencies=[Depends(tagged)])
    async def by_yield(background: BackgroundTasks) -> AsyncIterator[int]:
        try:
            for number in range(2):
                log.append(f"event {number}")
                yield number
            background.add_task(log.append, "endpoint's task")  # added while streaming
        finally:
            log.append("generator closed")

    @app.get("/returned", dependencies=[Depends(tagged)])
    async def returned(background: BackgroundTasks) -> EventSourceResponse:
        background.add_task(log.append, "endpoint's task")

        async def items() -> AsyncIterator[int]:
            try:
                for number in range(2):
                    log.append(f"event {number}")
                    yield number
            finally:
                log.append("generator closed")

        return EventSourceResponse(items())  # FastAPI gives it the background tasks

    return app


@pytest.mark.parametrize("path", ["/yield", "/returned"])
async def test_background_tasks_run_after_the_stream(path: str) -> None:
    log: list[str] = []
    with anyio.fail_after(TIMEOUT):
        async with open_event_stream(order_app(log), path) as stream:
            assert data_json([event async for event in stream]) == [0, 1]
            assert stream.complete
    assert log == [
        "event 0",
        "event 1",
        "generator closed",
        "dependency's task",
        "endpoint's task",
    ]


# Dependencies are module-level: FastAPI resolves the (string) annotations in this module.
def app_log(request: Request) -> list[str]:
    log: list[str] = request.app.state.log
    return log


Log = Annotated[list[str], Depends(app_log)]


async def request_session(log: Log) -> AsyncIterator[str]:
    """A "DB session" of the default scope."""
    log.append("request-scoped opened")
    try:
        yield "session"
    finally:
        log.append("request-scoped closed")


def function_session(log: Log) -> Iterator[str]:
    """A sync one, meant for ``scope="function"``."""
    log.append("function-scoped opened")
    try:
        yield "function session"
    finally:
        log.append("function-scoped closed")


RequestSession = Annotated[str, Depends(request_session)]
FunctionSession = Annotated[str, Depends(function_session, scope="function")]


def session_app(log: list[str]) -> FastAPI:
    """A ``yield`` stream behind two ``yield`` dependencies, of each scope."""
    app = FastAPI()
    app.state.log = log

    @app.get("/stream", response_class=EventSourceResponse)
    async def stream(db: RequestSession, other: FunctionSession, log: Log) -> AsyncIterator[str]:
        try:
            for number in range(2):
                log.append(f"event {number}")
                yield f"{db} {number}"
        finally:
            log.append("generator closed")

    release = anyio.Event()

    @app.get("/endless", response_class=EventSourceResponse)
    async def endless(db: RequestSession, log: Log) -> AsyncIterator[str]:
        try:
            yield db
            await release.wait()
        finally:
            log.append("generator closed")

    return app


async def test_when_yield_dependencies_are_closed() -> None:
    # FastAPI 0.165: a dependency with ``yield`` of the default scope is closed after the
    # response, i.e. after the stream ended (and after its generator was closed): a DB
    # session from one is usable by every event. One with ``scope="function"`` is closed when
    # the endpoint function returns, which for a ``yield`` path operation is before the
    # response starts: before the first event, before the generator body even runs. So a
    # stream must not use a ``scope="function"`` resource: use the default scope (or open the
    # resource inside the generator). A disconnect closes the request-scoped one too.
    log: list[str] = []
    app = session_app(log)
    with anyio.fail_after(TIMEOUT):
        status, events, complete = await read_all(app, "/stream")
    assert status == 200 and complete
    assert data_json(events) == ["session 0", "session 1"]
    assert log == [
        "request-scoped opened",
        "function-scoped opened",
        "function-scoped closed",
        "event 0",
        "event 1",
        "generator closed",
        "request-scoped closed",
    ]


async def test_a_disconnect_closes_the_request_scoped_dependency_after_the_generator() -> None:
    log: list[str] = []
    app = session_app(log)
    with anyio.fail_after(TIMEOUT):
        async with open_event_stream(app, "/endless") as stream:
            assert data_json(await stream.read_events(1)) == ["session"]
            assert log == ["request-scoped opened"]  # still open while streaming
            stream.disconnect()
    assert log == ["request-scoped opened", "generator closed", "request-scoped closed"]
