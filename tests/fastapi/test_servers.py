"""The FastAPI app of ``tests/fastapi/served.py`` on real servers: uvicorn and hypercorn's trio
and asyncio workers, each a subprocess on 127.0.0.1 (its own process group, killed by pid).

The client (httpx, under trio and asyncio) reads typed ``yield`` streams (the data as
JSON, an invalid item ending the stream cleanly, its log line in the server's output and the
generator closed), compares ``/openapi.json`` with the app's document in-process, and reads
a stream across a SIGTERM to its farewell and clean end of body.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from trio_sse import EventDecoder, ServerSentEvent

from .._backends import requires_trio
from ..middleware.test_servers import (
    EXIT,
    HYPERCORN_ASYNCIO_STUCK_ON_312,
    HYPERCORN_GRACE,
    READY_TIMEOUT,
    Server,
    open_raw_stream,
)
from ..processes import child_env, free_port, kill_group, spawn, wait_accepting
from .served import FAREWELL, NEVER_SENT
from .served import app as served_app

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

APP = "tests.fastapi.served:app"
SERVERS = [
    "uvicorn",
    pytest.param("hypercorn-trio", marks=requires_trio),
    pytest.param("hypercorn-asyncio", marks=HYPERCORN_ASYNCIO_STUCK_ON_312),
]
STREAM_TIMEOUT = 10.0


def server_command(server: str, port: int) -> list[str]:
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port)]
    worker = server.removeprefix("hypercorn-")
    return [
        *(sys.executable, "-m", "hypercorn", "-k", worker, "-b", f"127.0.0.1:{port}"),
        *("--graceful-timeout", f"{HYPERCORN_GRACE:g}", APP),
    ]


@asynccontextmanager
async def running(server: str, tmp_path: Path) -> AsyncIterator[tuple[Server, httpx.AsyncClient]]:
    port = free_port()
    log_file = tmp_path / f"{server}-{port}.log"
    process = spawn(server_command(server, port), log_file, child_env())
    handle = Server(server, process, port, log_file)
    try:
        await wait_accepting(port, process, handle.log, READY_TIMEOUT)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=httpx.Timeout(STREAM_TIMEOUT)
        ) as client:
            yield handle, client
    finally:
        kill_group(process)


async def read_stream(
    client: httpx.AsyncClient, path: str, params: dict[str, Any] | None = None
) -> tuple[httpx.Response, list[ServerSentEvent]]:
    """Every event of *path*, read as it streams. A cut body raises (httpx's
    ``RemoteProtocolError``); returning means the body ended cleanly."""
    decoder = EventDecoder()
    events: list[ServerSentEvent] = []
    async with client.stream("GET", path, params=params) as response:
        async for chunk in response.aiter_bytes():
            events.extend(decoder.feed(chunk))
    return response, events


@pytest.mark.parametrize("server", SERVERS)
async def test_typed_yield_streams_on_a_real_server(server: str, tmp_path: Path) -> None:
    async with running(server, tmp_path) as (handle, client):
        with anyio.fail_after(READY_TIMEOUT + 3 * STREAM_TIMEOUT):
            response, events = await read_stream(client, "/ticks", {"count": 3})
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert [json.loads(event.data or "") for event in events] == [
                {"n": number, "note": f"tick {number}"} for number in range(3)
            ]

            _, events = await read_stream(client, "/ticks", {"count": 2, "invalid": 1})
            assert [json.loads(event.data or "")["n"] for event in events] == [0, 1]
            assert str(NEVER_SENT) not in "".join(event.data or "" for event in events)
            assert (await client.get("/closed")).json() == ["ticks", "ticks"]

            _, typed = await read_stream(client, "/events")
            assert [(event.event, event.id) for event in typed] == [("tick", "1"), ("alert", "2")]
            assert json.loads(typed[1].data or "") == {"level": "high"}

            document = (await client.get("/openapi.json")).json()
    assert document == served_app.openapi()  # the same document, itemSchema and all
    responses = document["paths"]["/ticks"]["get"]["responses"]["200"]
    assert responses["content"]["text/event-stream"]["itemSchema"]["properties"]["data"][
        "contentSchema"
    ] == {"$ref": "#/components/schemas/Tick"}
    log = handle.log()
    assert log.count("does not match the declared type") == 1, log
    assert "GET /ticks (ticks): stream item 3" in log


@pytest.mark.parametrize("server", SERVERS)
async def test_a_yield_stream_says_farewell_when_the_server_stops(
    server: str, tmp_path: Path
) -> None:
    # uvicorn: trio_sse triggers the shutdown token on its signal, the stream ends at once.
    # hypercorn's CLI cancels the request at its graceful timeout; trio_sse still sends the
    # farewell and the end of body, shielded.
    async with running(server, tmp_path) as (handle, _):
        exit_within, exit_codes = EXIT[server]
        with anyio.fail_after(READY_TIMEOUT + exit_within + STREAM_TIMEOUT):
            async with open_raw_stream(handle.port, "/forever") as stream:
                first = await stream.next()
                assert first is not None and json.loads(first.data or "") == {
                    "n": 0,
                    "note": None,
                }
                handle.process.send_signal(signal.SIGTERM)
                rest = await stream.rest()
                assert stream.ended  # the last chunk came: a clean end of body
            assert [(event.event, event.data) for event in rest] == [
                (FAREWELL.event, FAREWELL.data)
            ]
            code = await handle.wait_exit(exit_within)
    assert code in exit_codes, (code, handle.log())
