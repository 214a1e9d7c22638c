"""A chat-style broadcast app on Redis, served from subprocesses by tests/test_broadcast_redis.py.

* ``GET /events/{topic}``: the topic's events, resuming from ``Last-Event-ID`` (header) or
  ``?lastEventId=``;
* ``POST /publish/{topic}``: publish the request body as the event's data; answers the id;
* ``GET /health``: ``ok`` once the hub is running.

Environment: ``TRIO_SSE_REDIS_URL`` (required), ``TRIO_SSE_REDIS_PREFIX`` (default
``trio_sse:``), ``TRIO_SSE_HISTORY`` (default 1000).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from trio_sse import Broadcaster, EventSourceResponse
from trio_sse.backends import RedisBackend


class State(TypedDict):
    hub: Broadcaster


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[State]:
    backend = RedisBackend(
        os.environ["TRIO_SSE_REDIS_URL"],
        prefix=os.environ.get("TRIO_SSE_REDIS_PREFIX", "trio_sse:"),
    )
    async with Broadcaster(backend, history=int(os.environ.get("TRIO_SSE_HISTORY", "1000"))) as hub:
        yield {"hub": hub}


async def events(request: Request) -> EventSourceResponse:
    hub: Broadcaster = request.state.hub
    return EventSourceResponse(hub.stream(request.path_params["topic"], request), ping=1)


async def publish(request: Request) -> PlainTextResponse:
    hub: Broadcaster = request.state.hub
    body = (await request.body()).decode("utf-8")
    event_id = await hub.publish(request.path_params["topic"], body)
    return PlainTextResponse(event_id)


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/events/{topic}", events),
        Route("/publish/{topic}", publish, methods=["POST"]),
        Route("/health", health),
    ],
    lifespan=lifespan,
)
