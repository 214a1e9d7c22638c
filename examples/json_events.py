"""JSON events: compact JSON data (UTF-8 kept, NaN refused), parsed back with ``.json()``.

Run:   python examples/json_events.py              (PORT=8000; hypercorn under trio)
Try:   curl -N http://127.0.0.1:8000/orders
       python -m trio_sse.client --json http://127.0.0.1:8000/orders
"""

from __future__ import annotations

import os

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventSourceResponse, JSONServerSentEvent, ServerSentEvent, run

ORDERS = [
    {"item": "café crème", "price": 3.5},
    {"item": "croissant", "price": 1.8, "tags": ["warm", "butter"]},
    {"item": "jus d'orange", "price": 4.0},
]


async def orders(send: MemoryObjectSendStream[ServerSentEvent]) -> None:
    async with send:
        for number, order in enumerate(ORDERS, start=1):
            await send.send(JSONServerSentEvent(order, event="order", id=number))
            await anyio.sleep(0.1)


async def endpoint(request: Request) -> EventSourceResponse:
    return EventSourceResponse(orders)


app = Starlette(routes=[Route("/orders", endpoint)])

if __name__ == "__main__":
    run(app, backend="trio", port=int(os.environ.get("PORT", "8000")))
