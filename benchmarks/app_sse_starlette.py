"""The sse-starlette 3.7 benchmark app: ``benchmarks.app_sse_starlette:app``.

Written the way sse-starlette's documentation and examples write it: async generators that
``yield ServerSentEvent(...)``, and for fan-out its broadcasting example's pattern, one
queue per client that the publisher puts every event into (an anyio memory channel rather
than an ``asyncio.Queue``, so that the same app also runs on hypercorn's trio worker).
The same ``sse_starlette.ServerSentEvent`` object goes to every subscriber; sse-starlette
encodes it once per subscriber, which is its design.

Imported only in its own server process: importing sse_starlette patches uvicorn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._common import (
    DEFAULT_TOPIC,
    ENDLESS_INTERVAL,
    SHUTDOWN_GRACE,
    SUBSCRIBER_BUFFER,
    float_arg,
    int_arg,
    make_payload,
    paced_sequence,
    publish_data,
    query,
)

__all__ = ["app"]

Queue = MemoryObjectSendStream[ServerSentEvent]

_topics: dict[str, set[Queue]] = {}


async def _events(n: int, data: str) -> AsyncIterator[ServerSentEvent]:
    for i in range(n):
        yield ServerSentEvent(data=data, id=str(i))


async def stream(request: Request) -> Response:
    params = query(request.scope)
    n = int_arg(params, "n", 1000)
    return EventSourceResponse(_events(n, make_payload(int_arg(params, "size", 32))))


async def subscribe(scope: Scope, receive: Receive, send: Send) -> None:
    """``/subscribe``: a plain ASGI endpoint, so that the subscription ends with the response."""
    topic = query(scope).get("topic", DEFAULT_TOPIC)
    queue, events = anyio.create_memory_object_stream[ServerSentEvent](SUBSCRIBER_BUFFER)
    subscribers = _topics.setdefault(topic, set())
    subscribers.add(queue)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        async with events:
            async for event in events:
                yield event

    try:
        await EventSourceResponse(stream())(scope, receive, send)
    finally:
        subscribers.discard(queue)
        queue.close()


class _SubscribeEndpoint:
    """Starlette routes to an object that is not a function as to an ASGI app."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await subscribe(scope, receive, send)


async def publish(request: Request) -> Response:
    params = query(request.scope)
    topic = params.get("topic", DEFAULT_TOPIC)
    reached = 0
    async for seq in paced_sequence(params):
        event = ServerSentEvent(data=publish_data(seq), id=str(seq))
        subscribers = _topics.get(topic, set())
        for send in list(subscribers):
            try:
                send.send_nowait(event)
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                subscribers.discard(send)
                send.close()
        reached = len(subscribers)
    return PlainTextResponse(str(reached))


async def _endless(interval: float) -> AsyncIterator[ServerSentEvent]:
    n = 0
    while True:
        yield ServerSentEvent(data=str(n), id=str(n))
        n += 1
        await anyio.sleep(interval)


async def endless(request: Request) -> Response:
    interval = float_arg(query(request.scope), "interval", ENDLESS_INTERVAL)
    return EventSourceResponse(_endless(interval), shutdown_grace_period=SHUTDOWN_GRACE)


async def stats(request: Request) -> Response:
    return JSONResponse({"app": "sse-starlette", "impl": "queue per client (its example)"})


app = Starlette(
    routes=[
        Route("/stream", stream),
        Route("/subscribe", _SubscribeEndpoint()),
        Route("/publish", publish),
        Route("/endless", endless),
        Route("/stats", stats),
    ]
)
