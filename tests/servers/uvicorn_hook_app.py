"""A uvicorn app that turns automatic chaining off and chains explicitly in its lifespan.

Served by tests/test_uvicorn_hook.py from a real ``uvicorn`` process. ``/sse`` sends an event
every 50 ms until its shutdown token triggers, then closes its channel (the response sends
the farewell). The file named by ``SSE_COUNT_FILE`` gets one line from the lifespan (whether
it got a run token) and one per producer (whether its token was the lifespan's).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

import trio_sse
from trio_sse import EventSourceResponse, ServerSentEvent, ShutdownToken, current_shutdown_token

Send = MemoryObjectSendStream[Any]

_lifespan_token: ShutdownToken | None = None


def _record(line: str) -> None:
    with open(os.environ["SSE_COUNT_FILE"], "a", encoding="utf-8") as file:
        file.write(line + "\n")


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global _lifespan_token
    trio_sse.set_uvicorn_chaining(False)
    _lifespan_token = trio_sse.chain_uvicorn_signals()  # uvicorn's handlers are installed
    _record(f"lifespan chained: {_lifespan_token is not None}")
    yield


async def cooperative(send: Send) -> None:
    token = current_shutdown_token()
    try:
        async with send:
            number = 0
            while not token.triggered:
                await send.send(ServerSentEvent(number, id=number))
                number += 1
                with anyio.move_on_after(0.05):
                    await token.wait()
    finally:
        _record("same token" if token is _lifespan_token else "other token")


async def sse(request: Request) -> EventSourceResponse:
    return EventSourceResponse(
        cooperative,
        farewell=ServerSentEvent("bye", event="shutdown"),
        farewell_retry=(1000, 3000),
        shutdown_grace_period=1,
    )


app = Starlette(routes=[Route("/sse", sse)], lifespan=lifespan)
