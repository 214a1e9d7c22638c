"""A broadcast app on Redis whose streams can be revoked in every process (issue 16 item 1),
served as two processes by tests/test_revoke_everywhere.py.

* ``GET /events/{topic}?user=<name>``: the topic, granted to any user not revoked (principal
  ``("user", name)``);
* ``POST /publish/{topic}``: publish the body; answers the id;
* ``POST /revoke/{user}``: record the user as revoked (the app's record, shared by the
  processes: a file here, a database in a real app), then ``revoke_everywhere``; answers this
  process's count;
* ``GET /health``.

Environment: ``TRIO_SSE_REDIS_URL``, ``TRIO_SSE_REDIS_PREFIX``, ``TRIO_SSE_REVOKED_FILE``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypedDict

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from trio_sse import Access, Broadcaster, EventSourceResponse
from trio_sse.backends import RedisBackend


class State(TypedDict):
    hub: Broadcaster
    revoked: Path


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[State]:
    backend = RedisBackend(
        os.environ["TRIO_SSE_REDIS_URL"], prefix=os.environ["TRIO_SSE_REDIS_PREFIX"]
    )
    async with Broadcaster(backend, history=100) as hub:
        yield {"hub": hub, "revoked": Path(os.environ["TRIO_SSE_REVOKED_FILE"])}


async def revoked_users(record: Path) -> set[str]:
    path = anyio.Path(record)
    return set((await path.read_text()).split()) if await path.exists() else set()


async def events(request: Request) -> EventSourceResponse:
    hub: Broadcaster = request.state.hub
    user = request.query_params.get("user", "")

    async def authorize(topic: str) -> Access | None:
        if not user or user in await revoked_users(request.state.revoked):
            return None
        return Access(("user", user))

    return EventSourceResponse(
        hub.stream(request.path_params["topic"], request, authorize=authorize), ping=1
    )


async def publish(request: Request) -> PlainTextResponse:
    hub: Broadcaster = request.state.hub
    body = (await request.body()).decode("utf-8")
    return PlainTextResponse(await hub.publish(request.path_params["topic"], body))


async def revoke(request: Request) -> PlainTextResponse:
    user = request.path_params["user"]
    record: Path = request.state.revoked
    async with await anyio.open_file(record, "a") as file:
        await file.write(f"{user}\n")  # first the app's record, then the streams
    hub: Broadcaster = request.state.hub
    farewell = {"event": "revoked", "data": f"goodbye {user}"}
    return PlainTextResponse(str(await hub.revoke_everywhere(("user", user), farewell=farewell)))


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/events/{topic}", events),
        Route("/publish/{topic}", publish, methods=["POST"]),
        Route("/revoke/{user}", revoke, methods=["POST"]),
        Route("/health", health),
    ],
    lifespan=lifespan,
)
