"""``trio_sse.testing.open_app`` with the HTTP clients apps test with: httpx and httpx2.

A ``RunningApp`` is itself an ASGI app, so ``httpx.ASGITransport`` and
``httpx2.ASGITransport`` (each buffers a whole body: fine for a stream that ends) reach the
app with its lifespan state, on trio and asyncio alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventDecoder, EventSourceResponse, ServerSentEvent
from trio_sse.testing import open_app

pytestmark = pytest.mark.anyio


def greeting_app(log: list[str]) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        log.append("startup")
        yield {"greeting": "hello"}
        log.append("shutdown")

    async def events(request: Request) -> EventSourceResponse:
        greeting = request.state.greeting
        return EventSourceResponse([ServerSentEvent(f"{greeting} {n}", id=str(n)) for n in (1, 2)])

    return Starlette(routes=[Route("/events", events)], lifespan=lifespan)


@pytest.mark.parametrize("library", [httpx, httpx2], ids=["httpx", "httpx2"])
async def test_a_running_app_serves_an_http_client_with_its_lifespan_state(
    library: ModuleType,
) -> None:
    log: list[str] = []
    with anyio.fail_after(10):
        async with open_app(greeting_app(log)) as running:
            transport = library.ASGITransport(app=running)
            async with library.AsyncClient(transport=transport, base_url="http://test") as client:
                response = await client.get("/events")
            assert log == ["startup"]
        assert log == ["startup", "shutdown"]
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    decoder = EventDecoder()
    events = decoder.feed(response.content)
    decoder.close()
    assert [(event.id, event.data) for event in events] == [("1", "hello 1"), ("2", "hello 2")]
