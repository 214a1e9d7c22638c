"""A stream that sends as fast as the client takes it, and how its producers are doing.

``/flood`` sends 64 KiB events for as long as the client reads them (and the producer's
channel has room); ``/state`` says how many events were handed to the stream and how many
producers are running and have ended: a client that stops reading shows as ``sent`` that
stops growing, and its connection being dropped as ``ended`` going up. ``/flood?send_timeout=S``
gives the response its own ``send_timeout``, ``pace=S`` a pause after each event (for a server
that buffers whatever it is given: it never stalls); ``/state``'s ``alive`` counts the responses still
in memory after a full garbage collection (a dropped stream's must be freed).
"""

from __future__ import annotations

import gc
import weakref

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trio_sse import EventSourceResponse, ServerSentEvent

state = {"active": 0, "ended": 0, "sent": 0}
CHUNK = ServerSentEvent("x" * 65536)
responses: weakref.WeakSet[EventSourceResponse] = weakref.WeakSet()


async def flood(request: Request) -> EventSourceResponse:
    pace = float(request.query_params.get("pace", 0))

    async def producer(send: MemoryObjectSendStream[ServerSentEvent]) -> None:
        state["active"] += 1
        try:
            async with send:
                while True:
                    await send.send(CHUNK)
                    state["sent"] += 1
                    if pace:
                        await anyio.sleep(pace)
        finally:
            state["active"] -= 1
            state["ended"] += 1

    timeout = request.query_params.get("send_timeout")
    response = EventSourceResponse(
        producer,
        ping=0,
        max_buffer_size=4,
        disconnect_grace_period=0,
        send_timeout=float(timeout) if timeout else None,
    )
    responses.add(response)
    return response


async def status(request: Request) -> JSONResponse:
    gc.collect()
    return JSONResponse({**state, "alive": len(responses)})


app = Starlette(routes=[Route("/flood", flood), Route("/state", status)])
