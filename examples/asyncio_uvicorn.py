"""An asyncio app served by uvicorn: SSE drains on Ctrl-C / SIGTERM with no wiring.

When the first stream starts, trio_sse chains uvicorn's own signal handler to its shutdown
token, so ``uvicorn examples.asyncio_uvicorn:app`` (or this file) ends every stream with a
farewell and a clean end of body before uvicorn exits.

Run:   python examples/asyncio_uvicorn.py          (PORT=8000)
       or: uvicorn examples.asyncio_uvicorn:app --port 8000
Try:   curl -N http://127.0.0.1:8000/clock   then Ctrl-C the server
"""

from __future__ import annotations

import asyncio
import datetime
import os

import uvicorn
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventSourceResponse, ServerSentEvent


async def clock(send: MemoryObjectSendStream[ServerSentEvent]) -> None:
    async with send:
        while True:
            now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            await send.send(ServerSentEvent(now, event="tick"))
            await asyncio.sleep(1)


async def endpoint(request: Request) -> EventSourceResponse:
    return EventSourceResponse(
        clock, farewell=ServerSentEvent("server restarting", event="shutdown")
    )


app = Starlette(routes=[Route("/clock", endpoint)])

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_level="warning"
    )
