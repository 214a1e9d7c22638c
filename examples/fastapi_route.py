"""FastAPI: a route that returns an EventSourceResponse, with a path parameter.

Run:   python examples/fastapi_route.py            (PORT=8000; uvicorn, asyncio)
Try:   curl -N http://127.0.0.1:8000/countdown/5
"""

from __future__ import annotations

import os

import anyio
import uvicorn
from anyio.streams.memory import MemoryObjectSendStream
from fastapi import FastAPI

from trio_sse import EventSourceResponse, ServerSentEvent

app = FastAPI()


@app.get("/countdown/{start}")
async def countdown(start: int) -> EventSourceResponse:
    async def producer(send: MemoryObjectSendStream[ServerSentEvent]) -> None:
        async with send:
            for remaining in range(start, -1, -1):
                await send.send(ServerSentEvent(remaining, event="countdown"))
                await anyio.sleep(0.2)

    return EventSourceResponse(producer)


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_level="warning"
    )
