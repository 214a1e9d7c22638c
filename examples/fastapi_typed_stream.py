"""FastAPI: typed streams from `yield` path operations, validated and in the OpenAPI document.

`/ticks` yields Pydantic models: each is validated against the declared item type and sent
as JSON data. `/alerts` yields typed events whose class fixes the event name. `/readings`
relays untrusted dicts: the first one that is not a `Reading` ends the stream cleanly, with
a log line naming the route. `document_streams(app)` gives each stream its OpenAPI 3.2
`itemSchema` (FastAPI writes one only for its own `fastapi.sse` response class).

Run:   python examples/fastapi_typed_stream.py               (PORT=8000; uvicorn, asyncio)
       BACKEND=trio python examples/fastapi_typed_stream.py  (hypercorn's trio worker)
Try:   curl -N 'http://127.0.0.1:8000/ticks?count=3'
       curl -N http://127.0.0.1:8000/alerts
       curl -N http://127.0.0.1:8000/readings
       curl http://127.0.0.1:8000/openapi.json
"""

from __future__ import annotations

import datetime
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import uvicorn
from fastapi import FastAPI, Query
from pydantic import BaseModel

from trio_sse import EventSourceResponse, JSONServerSentEvent, run
from trio_sse.fastapi import document_streams


class Tick(BaseModel):
    n: int
    at: datetime.datetime


class Alert(BaseModel):
    level: str
    text: str


class AlertEvent(JSONServerSentEvent[Alert], event="alert"):
    """Every instance is an `event: alert` whose data is an `Alert` as JSON."""


class Reading(BaseModel):
    sensor: str
    celsius: float


# What a sensor gateway might send (untrusted JSON, so typed Any); the third is not a Reading.
RAW_READINGS: list[Any] = [
    {"sensor": "north", "celsius": 4.5},
    {"sensor": "south", "celsius": "11"},  # lax validation, as FastAPI's: becomes 11.0
    {"sensor": "east", "celsius": "warm"},
    {"sensor": "west", "celsius": 7.0},
]

app = FastAPI(title="typed streams")
document_streams(app)  # once, after creating the app; included routers are covered too


@app.get("/ticks", response_class=EventSourceResponse)
async def ticks(count: int = Query(5, ge=1, le=100)) -> AsyncIterator[Tick]:
    for n in range(count):
        yield Tick(n=n, at=datetime.datetime.now(datetime.UTC))
        await anyio.sleep(0.1)


@app.get("/alerts", response_class=EventSourceResponse)
async def alerts() -> AsyncIterator[AlertEvent]:
    yield AlertEvent(Alert(level="info", text="deploy started"), id=1)
    await anyio.sleep(0.1)
    yield AlertEvent(Alert(level="warning", text="disk at 91%"), id=2, retry=5000)


@app.get("/readings", response_class=EventSourceResponse)
async def readings() -> AsyncIterator[Reading]:
    for raw in RAW_READINGS:
        yield raw  # a dict: validated into a Reading, then sent as JSON data
        await anyio.sleep(0.05)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    if os.environ.get("BACKEND") == "trio":
        run(app, backend="trio", port=port)
    else:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
