"""Migrating from sse-starlette: the same async generator, with one changed import.

``from sse_starlette import EventSourceResponse`` becomes ``from trio_sse import ...``;
dict items, ``ping``, ``send_timeout``, ``shutdown_event`` keep their meaning. The generator
is closed (``aclose()``) when the client leaves, so its ``finally`` runs at once.

Run:   python examples/async_generator_compat.py   (PORT=8000; uvicorn, asyncio)
Try:   curl -N http://127.0.0.1:8000/legacy
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventSourceResponse  # was: from sse_starlette import EventSourceResponse


async def legacy_events(request: Request) -> AsyncIterator[dict[str, Any]]:
    for number in range(5):
        if await request.is_disconnected():
            break
        yield {"event": "legacy", "data": f"item {number}", "id": str(number)}
        await asyncio.sleep(0.2)


async def endpoint(request: Request) -> EventSourceResponse:
    return EventSourceResponse(legacy_events(request), ping=5)


app = Starlette(routes=[Route("/legacy", endpoint)])

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_level="warning"
    )
