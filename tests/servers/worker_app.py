"""The app that tests/test_serve_workers.py serves from ``python -m trio_sse serve --workers``.

``/sse`` sends ``{"pid": <the worker's pid>, "n": n}`` every 50 ms until the stream's shutdown
token triggers, then closes its channel; the farewell carries the pid too. So the test knows
which worker serves each stream, and that each worker drained its own.
"""

from __future__ import annotations

import os
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventSourceResponse, JSONServerSentEvent, current_shutdown_token

TICK = 0.05


async def cooperative(send: MemoryObjectSendStream[Any]) -> None:
    token = current_shutdown_token()
    async with send:
        n = 0
        while not token.triggered:
            await send.send(JSONServerSentEvent({"pid": os.getpid(), "n": n}, id=n))
            n += 1
            with anyio.move_on_after(TICK):
                await token.wait()


async def sse(request: Request) -> EventSourceResponse:
    return EventSourceResponse(
        cooperative,
        farewell=JSONServerSentEvent({"pid": os.getpid(), "bye": True}, event="shutdown"),
        shutdown_grace_period=1.0,
    )


app = Starlette(routes=[Route("/sse", sse)])
