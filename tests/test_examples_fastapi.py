"""The FastAPI examples, each started as its header says and read over HTTP.

Each test runs twice: on trio, where the example serves with hypercorn's trio worker
(``BACKEND=trio``, ``trio_sse.run``) and the client runs under trio, and on asyncio, where it
serves with uvicorn and the client runs under asyncio. Every wait is bounded.
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from trio_sse import ServerSentEvent
from trio_sse.client import EventSource, connect

from .processes import REPO, child_env, free_port, kill_group, spawn, wait_accepting

pytestmark = pytest.mark.anyio

EXAMPLES = REPO / "examples"
READY_TIMEOUT = 20.0
GUARD = READY_TIMEOUT + 20.0  # start-up, then every exchange of one test


@dataclass
class Example:
    base: str
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


@asynccontextmanager
async def running(name: str, backend: str, tmp_path: Path) -> AsyncIterator[Example]:
    """``python examples/NAME.py`` on a free port, under *backend*; killed on exit."""
    port = free_port()
    log_file = tmp_path / f"{name}-{backend}.log"
    env = child_env({"PORT": str(port), "BACKEND": backend})
    process = spawn([sys.executable, str(EXAMPLES / f"{name}.py")], log_file, env)
    example = Example(f"http://127.0.0.1:{port}", log_file)
    try:
        await wait_accepting(port, process, example.log, READY_TIMEOUT)
        yield example
    finally:
        kill_group(process)


@asynccontextmanager
async def serving(
    name: str, backend: str, tmp_path: Path
) -> AsyncIterator[tuple[Example, httpx.AsyncClient]]:
    """:func:`running`, and an HTTP client of the example's base URL."""
    async with (
        running(name, backend, tmp_path) as example,
        httpx.AsyncClient(base_url=example.base, timeout=10) as client,
    ):
        yield example, client


async def take(source: EventSource, count: int) -> list[ServerSentEvent]:
    """The next *count* events of *source* (the stream must not end before)."""
    return [await anext(source) for _ in range(count)]


async def read_all(client: httpx.AsyncClient, url: str) -> list[ServerSentEvent]:
    """Every event of *url* up to the end of its body. Without reconnection, a body that is
    cut raises ``SSEConnectionError``: returning proves a clean end of body."""
    async with connect(client, url, reconnect=False) as source:
        return [event async for event in source]


def item_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    content = document["paths"][path]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]
    schema: dict[str, Any] = content["text/event-stream"]["itemSchema"]
    return schema


# fastapi_typed_stream.py


async def test_typed_stream_sends_models_as_json_and_ends_at_an_invalid_item(
    anyio_backend: str, tmp_path: Path
) -> None:
    with anyio.fail_after(GUARD):
        async with serving("fastapi_typed_stream", anyio_backend, tmp_path) as (example, client):
            ticks = await read_all(client, f"{example.base}/ticks?count=3")
            alerts = await read_all(client, f"{example.base}/alerts")
            readings = await read_all(client, f"{example.base}/readings")
            invalid = await client.get("/ticks?count=0")
            log = example.log()  # the server logged the rejection before it ended the body

    assert [(event.event, event.json()["n"]) for event in ticks] == [(None, n) for n in range(3)]
    assert all(datetime.datetime.fromisoformat(event.json()["at"]).tzinfo for event in ticks)
    assert [(e.event, e.id, e.retry, e.json()) for e in alerts] == [
        ("alert", "1", None, {"level": "info", "text": "deploy started"}),
        ("alert", "2", 5000, {"level": "warning", "text": "disk at 91%"}),
    ]
    # The third raw reading is not a Reading: the stream ended there (cleanly: read_all
    # returned), after the two valid ones, the second coerced as FastAPI's validation does.
    assert [event.json() for event in readings] == [
        {"sensor": "north", "celsius": 4.5},
        {"sensor": "south", "celsius": 11.0},
    ]
    assert "GET /readings (readings): stream item 3 does not match the declared type" in log
    assert invalid.status_code == 422  # a query parameter FastAPI refuses: before the stream


async def test_typed_stream_openapi_has_each_item_schema(
    anyio_backend: str, tmp_path: Path
) -> None:
    with anyio.fail_after(GUARD):
        async with serving("fastapi_typed_stream", anyio_backend, tmp_path) as (_example, client):
            response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()

    ticks = item_schema(document, "/ticks")
    assert ticks["required"] == ["data"]
    assert ticks["properties"]["data"] == {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": "#/components/schemas/Tick"},
    }
    assert ticks["properties"]["event"] == {"type": "string"}
    tick = document["components"]["schemas"]["Tick"]
    assert set(tick["properties"]) == {"n", "at"}

    alerts = item_schema(document, "/alerts")
    assert alerts["properties"]["event"] == {"type": "string", "enum": ["alert"]}
    assert sorted(alerts["required"]) == ["data", "event"]
    assert alerts["properties"]["data"]["contentSchema"] == {"$ref": "#/components/schemas/Alert"}
    assert set(document["components"]["schemas"]["Alert"]["properties"]) == {"level", "text"}

    readings = item_schema(document, "/readings")
    assert readings["properties"]["data"]["contentSchema"] == {
        "$ref": "#/components/schemas/Reading"
    }


# fastapi_broadcast.py


async def publish(client: httpx.AsyncClient, text: str) -> str:
    response = await client.post("/rooms/lobby", json={"user": "ada", "text": text})
    assert response.status_code == 200, response.text
    event_id: str = response.json()["id"]
    return event_id


def messages(events: list[ServerSentEvent]) -> list[tuple[str | None, str | None, str]]:
    return [(event.event, event.id, event.json()["text"]) for event in events]


async def test_broadcast_resumes_from_the_last_event_id_with_no_gap_or_duplicate(
    anyio_backend: str, tmp_path: Path
) -> None:
    with anyio.fail_after(GUARD):
        async with serving("fastapi_broadcast", anyio_backend, tmp_path) as (example, client):
            ids = [await publish(client, text) for text in ("one", "two", "three")]
            # Reconnecting after "one": the history after it, then live messages.
            room = f"{example.base}/rooms/lobby"
            headers = {"Last-Event-ID": ids[0]}
            async with connect(client, room, headers=headers, reconnect=False) as source:
                replayed = await take(source, 2)
                ids.append(await publish(client, "four"))
                live = await take(source, 1)
            # A client that cannot set headers resumes with ?lastEventId= the same way.
            query = f"{room}?lastEventId={ids[2]}"
            async with connect(client, query, reconnect=False) as source:
                resumed = await take(source, 1)
                ids.append(await publish(client, "five"))
                resumed += await take(source, 1)

    assert messages(replayed + live) == [
        ("message", ids[1], "two"),
        ("message", ids[2], "three"),
        ("message", ids[3], "four"),
    ]
    assert messages(resumed) == [("message", ids[3], "four"), ("message", ids[4], "five")]
    assert len(set(ids)) == 5


async def test_broadcast_unknown_id_is_reset_then_history_and_bad_posts_are_422(
    anyio_backend: str, tmp_path: Path
) -> None:
    with anyio.fail_after(GUARD):
        async with serving("fastapi_broadcast", anyio_backend, tmp_path) as (example, client):
            ids = [await publish(client, text) for text in ("one", "two")]
            room = f"{example.base}/rooms/lobby"
            headers = {"Last-Event-ID": "nope"}
            async with connect(client, room, headers=headers, reconnect=False) as source:
                reset, *history = await take(source, 3)
            refused = await client.post("/rooms/lobby", json={"user": "ada"})
            empty = await client.post("/rooms/lobby", json={"user": "", "text": "x"})

    assert reset.event == "reset"
    assert reset.json() == {"reason": "unknown-id", "last_event_id": "nope"}
    assert messages(history) == [("message", ids[0], "one"), ("message", ids[1], "two")]
    assert (refused.status_code, empty.status_code) == (422, 422)


# fastapi_auth.py


async def test_auth_refuses_with_a_401_before_the_stream_starts(
    anyio_backend: str, tmp_path: Path
) -> None:
    with anyio.fail_after(GUARD):
        async with serving("fastapi_auth", anyio_backend, tmp_path) as (_example, client):
            anonymous = await client.get("/notifications")
            wrong_token = await client.get("/notifications", params={"token": "guess"})
            wrong_cookie = await client.get(
                "/notifications", headers={"cookie": "session=demo-token-not"}
            )

    for response in (anonymous, wrong_token, wrong_cookie):
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"detail": "not signed in"}


async def test_auth_streams_with_a_cookie_or_a_query_token(
    anyio_backend: str, tmp_path: Path
) -> None:
    with anyio.fail_after(GUARD):
        async with running("fastapi_auth", anyio_backend, tmp_path) as example:
            async with httpx.AsyncClient(base_url=example.base, timeout=10) as client:
                login = await client.post("/login")
                assert login.status_code == 200
                assert "session" in client.cookies  # the client's jar sends it from now on
                by_cookie = await read_all(client, f"{example.base}/notifications")
            async with httpx.AsyncClient(base_url=example.base, timeout=10) as client:
                by_query = await read_all(client, f"{example.base}/notifications?token=demo-token")

    expected = [{"user": "ada", "n": n, "text": f"notification {n} for ada"} for n in range(3)]
    assert [json.loads(event.data or "") for event in by_cookie] == expected
    assert [event.json() for event in by_query] == expected
