"""A receive channel fed by a background task that the app's lifespan owns.

A sensor task runs in the app's task group for the app's whole life and pushes readings
into a channel per client; each response streams its receive channel directly: no producer
task per client at all. Closing the send end ends that client's stream.

Run:   python examples/receive_channel.py          (PORT=8000; hypercorn under trio)
Try:   curl -N http://127.0.0.1:8000/readings
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import AsyncIterator

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventSourceResponse, JSONServerSentEvent, ServerSentEvent, run

listeners: set[MemoryObjectSendStream[ServerSentEvent]] = set()


async def sensor() -> None:
    for sequence in itertools.count():
        reading = JSONServerSentEvent(
            {"sequence": sequence, "celsius": 20 + sequence % 5}, id=sequence
        )
        for send in list(listeners):
            try:
                send.send_nowait(reading)  # one shared, immutable event: encoded once
            except (anyio.WouldBlock, anyio.BrokenResourceError):
                listeners.discard(send)  # too slow, or gone: close its stream
                send.close()
        await anyio.sleep(0.2)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with anyio.create_task_group() as group:
        group.start_soon(sensor)
        yield
        group.cancel_scope.cancel()


async def readings(request: Request) -> EventSourceResponse:
    send, receive = anyio.create_memory_object_stream[ServerSentEvent](16)
    listeners.add(send)
    return EventSourceResponse(receive)


app = Starlette(routes=[Route("/readings", readings)], lifespan=lifespan)

if __name__ == "__main__":
    run(app, backend="trio", port=int(os.environ.get("PORT", "8000")))
