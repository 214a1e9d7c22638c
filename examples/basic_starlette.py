"""Basic Starlette: a producer function streams ten numbered events, then the stream ends.

Run:   python examples/basic_starlette.py          (PORT=8000 by default; hypercorn under trio)
Try:   curl -N http://127.0.0.1:8000/numbers
"""

from __future__ import annotations

import os

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventSourceResponse, ServerSentEvent, run


async def numbers(send: MemoryObjectSendStream[ServerSentEvent]) -> None:
    async with send:  # closing the channel ends the stream
        for number in range(10):
            await send.send(ServerSentEvent(number, event="number", id=number))
            await anyio.sleep(0.2)


async def numbers_endpoint(request: Request) -> EventSourceResponse:
    return EventSourceResponse(numbers)


app = Starlette(routes=[Route("/numbers", numbers_endpoint)])

if __name__ == "__main__":
    run(app, backend="trio", port=int(os.environ.get("PORT", "8000")))
