"""A stream that sends as fast as the client takes it, and how its producers are doing.

``/flood`` sends 64 KiB events for as long as the client reads them (and the producer's
channel has room); ``/state`` says how many events were handed to the stream and how many
producers are running and have ended: a client that stops reading shows as ``sent`` that
stops growing, and its connection being dropped as ``ended`` going up.
"""

from __future__ import annotations

from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trio_sse import EventSourceResponse, ServerSentEvent

state = {"active": 0, "ended": 0, "sent": 0}
CHUNK = ServerSentEvent("x" * 65536)


async def flood(request: Request) -> EventSourceResponse:
    async def producer(send: MemoryObjectSendStream[ServerSentEvent]) -> None:
        state["active"] += 1
        try:
            async with send:
                while True:
                    await send.send(CHUNK)
                    state["sent"] += 1
        finally:
            state["active"] -= 1
            state["ended"] += 1

    return EventSourceResponse(producer, ping=0, max_buffer_size=4, disconnect_grace_period=0)


async def status(request: Request) -> JSONResponse:
    return JSONResponse(state)


app = Starlette(routes=[Route("/flood", flood), Route("/state", status)])
