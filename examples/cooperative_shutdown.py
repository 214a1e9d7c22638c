"""Cooperative shutdown: on Ctrl-C / SIGTERM the producer says goodbye before the stream ends.

The runner triggers the server's ShutdownToken; the producer sees it through
``current_shutdown_token()``, sends a last event and closes its channel within its grace
period; the response adds a ``retry:`` hint picked at random between 2 and 6 s so that clients
do not all reconnect in the same instant; the body ends cleanly; the server exits.

Run:   python examples/cooperative_shutdown.py     (PORT=8000; hypercorn under trio)
Try:   curl -N http://127.0.0.1:8000/work   then press Ctrl-C in the server's terminal
"""

from __future__ import annotations

import os

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventSourceResponse, ServerSentEvent, current_shutdown_token, run


async def work(send: MemoryObjectSendStream[ServerSentEvent]) -> None:
    token = current_shutdown_token()
    async with send:
        step = 0
        while not token.triggered:
            await send.send(ServerSentEvent(f"step {step}", event="progress", id=step))
            step += 1
            with anyio.move_on_after(0.5):
                await token.wait()  # wake at once when shutdown begins
        # The cooperative phase: finish the unit of work, say where we stopped.
        await send.send(ServerSentEvent(f"stopped after step {step - 1}", event="goodbye"))


async def endpoint(request: Request) -> EventSourceResponse:
    return EventSourceResponse(work, shutdown_grace_period=3, farewell_retry=(2000, 6000))


app = Starlette(routes=[Route("/work", endpoint)])

if __name__ == "__main__":
    run(app, backend="trio", port=int(os.environ.get("PORT", "8000")), shutdown_grace_period=5)
