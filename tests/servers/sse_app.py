"""The app that tests/test_graceful_shutdown.py serves from real server subprocesses.

``/sse`` sends an event every 50 ms until the stream's shutdown token triggers, then closes
its channel; ``/stubborn`` ignores the token and is cancelled at the end of the grace period.
Each producer's ``finally`` appends one line to the file named by ``SSE_COUNT_FILE``, so that
the test can check that every producer was closed, however the stream ended: ``/sse`` writes
``sse`` when it saw the token (its cooperative phase) and ``sse:ended`` when it did not (it
was cancelled, or its client left).
Environment: ``SSE_COUNT_FILE`` (required for the count), ``SSE_GRACE`` (seconds, default 1).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventSourceResponse, ServerSentEvent, current_shutdown_token

Send = MemoryObjectSendStream[Any]

TICK = 0.05


def _record(marker: str) -> None:
    path = os.environ.get("SSE_COUNT_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(marker + "\n")


async def cooperative(send: Send) -> None:
    """Send ``n`` every TICK until shutdown begins, then close the channel."""
    token = current_shutdown_token()
    saw_token = False
    try:
        async with send:
            n = 0
            while not token.triggered:
                await send.send(ServerSentEvent(n, id=n))
                n += 1
                with anyio.move_on_after(TICK):
                    await token.wait()
            saw_token = True
    finally:
        _record("sse" if saw_token else "sse:ended")


async def stubborn(send: Send) -> None:
    """Ignore shutdown: one event, then sleep until cancelled."""
    try:
        async with send:
            await send.send(ServerSentEvent(0, id=0))
            await anyio.sleep_forever()
    finally:
        _record("stubborn")


def _response(producer: Callable[[Send], Awaitable[None]]) -> EventSourceResponse:
    return EventSourceResponse(
        producer,
        farewell=ServerSentEvent("bye", event="shutdown"),
        farewell_retry=(1000, 3000),
        shutdown_grace_period=float(os.environ.get("SSE_GRACE", "1")),
    )


async def sse(request: Request) -> EventSourceResponse:
    return _response(cooperative)


async def stubborn_sse(request: Request) -> EventSourceResponse:
    return _response(stubborn)


app = Starlette(routes=[Route("/sse", sse), Route("/stubborn", stubborn_sse)])
