"""The FastAPI app tests/fastapi/test_servers.py serves from real uvicorn and hypercorn.

``yield`` path operations with ``response_class=trio_sse.EventSourceResponse``, documented by
``document_streams``:

* ``GET /ticks?count=N&invalid=1``: ``N`` ticks (``-> AsyncIterator[Tick]``), then, with
  ``invalid``, an item that is not a ``Tick`` (the stream ends there) and one never sent;
* ``GET /events``: typed events with fixed names (a union);
* ``GET /forever``: one tick, then silence until the server shuts down (a farewell, on the
  process-wide shutdown token that the server integrations trigger);
* ``GET /closed``: the names of the generators whose ``finally`` ran, in order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import FastAPI

from trio_sse import EventSourceResponse, ServerSentEvent
from trio_sse.fastapi import document_streams

from .models import Alert, AlertEvent, Tick, TickEvent

FAREWELL = ServerSentEvent("restarting", event="bye")
NEVER_SENT = 99

closed: list[str] = []
app = document_streams(FastAPI())


class Farewell(EventSourceResponse):
    """Streams that say goodbye when the server shuts down.

    ``status_code`` stays in the signature: FastAPI's OpenAPI reads its default there (and
    fails without it, for a route with no ``status_code=``)."""

    def __init__(self, content: Any, *args: Any, status_code: int = 200, **kwargs: Any) -> None:
        super().__init__(content, *args, status_code=status_code, farewell=FAREWELL, **kwargs)


@app.get("/ticks", response_class=EventSourceResponse)
async def ticks(count: int = 3, invalid: bool = False) -> AsyncIterator[Tick]:
    try:
        for number in range(count):
            yield Tick(n=number, note=f"tick {number}")
            await anyio.sleep(0.01)
        if invalid:
            yield {"n": "not a number"}  # type: ignore[misc]  # on purpose: it ends the stream
            yield Tick(n=NEVER_SENT)
    finally:
        closed.append("ticks")


@app.get("/events", response_class=EventSourceResponse)
async def events() -> AsyncIterator[TickEvent | AlertEvent]:
    yield TickEvent(Tick(n=1), id="1")
    yield AlertEvent(Alert(level="high"), id="2")


@app.get("/forever", response_class=Farewell)
async def forever() -> AsyncIterator[Tick]:
    try:
        yield Tick(n=0)
        await anyio.sleep_forever()
    finally:
        closed.append("forever")


@app.get("/closed")
async def closed_generators() -> list[str]:
    return closed
