"""A producer function with a channel: arguments, backpressure, and cleanup that always runs.

The producer gets the send end of a bounded channel (``max_buffer_size``); when the client
is slow it waits in ``send`` instead of piling events up; when the client leaves it is
cancelled and its ``finally`` runs.

Run:   python examples/producer_channel.py         (PORT=8000; hypercorn under trio)
Try:   curl -N 'http://127.0.0.1:8000/squares?upto=6'
"""

from __future__ import annotations

import logging
import os

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventSourceResponse, ServerSentEvent, run

log = logging.getLogger("example")


async def squares(send: MemoryObjectSendStream[ServerSentEvent], upto: int) -> None:
    try:
        async with send:
            for number in range(1, upto + 1):
                await send.send(ServerSentEvent(number * number, event="square", id=number))
                await anyio.sleep(0.1)
    finally:
        log.warning("squares(%d) finished or cancelled: cleanup ran", upto)


async def endpoint(request: Request) -> EventSourceResponse:
    upto = min(int(request.query_params.get("upto", "10")), 1000)
    # Positional arguments after the producer are passed to it.
    return EventSourceResponse(squares, upto, max_buffer_size=4)


app = Starlette(routes=[Route("/squares", endpoint)])

if __name__ == "__main__":
    run(app, backend="trio", port=int(os.environ.get("PORT", "8000")))
