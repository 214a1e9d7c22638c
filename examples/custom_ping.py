"""Custom keep-alive: a named ping event every second of silence instead of a comment.

A ping is sent only after ``ping`` seconds without data, so a busy stream sends none.
Browsers ignore comments; a named event lets the page show "still connected".

Run:   python examples/custom_ping.py              (PORT=8000; hypercorn under trio)
Try:   curl -N http://127.0.0.1:8000/quiet
"""

from __future__ import annotations

import os
import time

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventSourceResponse, ServerSentEvent, run


def heartbeat() -> ServerSentEvent:
    return ServerSentEvent(f"{time.time():.0f}", event="heartbeat")


async def quiet(send: MemoryObjectSendStream[ServerSentEvent]) -> None:
    async with send:
        await send.send(ServerSentEvent("connected", event="hello"))
        await anyio.sleep_forever()  # nothing to say: the pings keep the connection alive


async def endpoint(request: Request) -> EventSourceResponse:
    return EventSourceResponse(quiet, ping=1, ping_message_factory=heartbeat)


app = Starlette(routes=[Route("/quiet", endpoint)])

if __name__ == "__main__":
    run(app, backend="trio", port=int(os.environ.get("PORT", "8000")))
