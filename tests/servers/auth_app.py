"""A broadcast app whose streams are authorized (issue 16 item 1), served in-process and by
``python -m trio_sse serve tests.servers.auth_app:app`` in tests/test_access.py.

Who is who: the ``session`` cookie or the ``?token=`` query parameter (an ``EventSource``
cannot send headers) names a user of :data:`USERS`. A user reads the topics listed for it,
and on every topic only the events meant for everyone or for its own tenant (an event whose
``event`` field is ``tenant:<name>`` is for that tenant only).

* ``GET /events/{topic}``: the topic, authorized as above (principals: the user, the tenant);
* ``GET /broken/{topic}``, ``GET /hanging/{topic}``: a hook that raises, one that never answers
  (``authorize_timeout=0.2``);
* ``POST /publish/{topic}?event=...``: publish the body (a test app: a real one checks who
  publishes and guards against CSRF, see the README's "Security");
* ``POST /revoke/{user}``: mark the user revoked (the hook refuses it from now on) and end
  its open streams; answers how many ended;
* ``GET /health``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypedDict

import anyio
import anyio.lowlevel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from trio_sse import Access, Broadcaster, EventSourceResponse, ServerSentEvent


@dataclass(frozen=True)
class User:
    name: str
    tenant: str
    topics: frozenset[str]


USERS = {
    "alice-token": User("alice", "acme", frozenset({"news", "acme-orders"})),
    "bob-token": User("bob", "globex", frozenset({"news"})),
}


class State(TypedDict):
    hub: Broadcaster
    revoked: set[str]


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[State]:
    async with Broadcaster(history=100) as hub:
        yield {"hub": hub, "revoked": set()}


def user_of(request: Request) -> User | None:
    token = request.cookies.get("session") or request.query_params.get("token")
    return USERS.get(token) if token else None


async def events(request: Request) -> EventSourceResponse:
    hub: Broadcaster = request.state.hub
    revoked: set[str] = request.state.revoked
    user = user_of(request)

    async def authorize(topic: str) -> Access | None:
        await anyio.lowlevel.checkpoint()  # as a session-store lookup would
        if user is None or user.name in revoked or topic not in user.topics:
            return None
        tenant = user.tenant

        def allow_event(event: ServerSentEvent) -> bool:
            name = event.event or ""
            return not name.startswith("tenant:") or name == f"tenant:{tenant}"

        return Access(("user", user.name), ("tenant", tenant), allow_event=allow_event)

    return EventSourceResponse(
        hub.stream(request.path_params["topic"], request, authorize=authorize), ping=1
    )


async def broken(request: Request) -> EventSourceResponse:
    async def authorize(topic: str) -> Access | None:
        raise RuntimeError("the session store is down")

    hub: Broadcaster = request.state.hub
    return EventSourceResponse(
        hub.stream(request.path_params["topic"], request, authorize=authorize)
    )


async def hanging(request: Request) -> EventSourceResponse:
    async def authorize(topic: str) -> Access | None:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    hub: Broadcaster = request.state.hub
    return EventSourceResponse(
        hub.stream(
            request.path_params["topic"], request, authorize=authorize, authorize_timeout=0.2
        )
    )


async def publish(request: Request) -> PlainTextResponse:
    hub: Broadcaster = request.state.hub
    event = ServerSentEvent(
        (await request.body()).decode("utf-8"), event=request.query_params.get("event")
    )
    return PlainTextResponse(await hub.publish(request.path_params["topic"], event))


async def revoke(request: Request) -> PlainTextResponse:
    name = request.path_params["user"]
    request.state.revoked.add(name)
    hub: Broadcaster = request.state.hub
    return PlainTextResponse(str(hub.revoke(("user", name))))


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/events/{topic}", events, methods=["GET", "HEAD"]),
        Route("/broken/{topic}", broken),
        Route("/hanging/{topic}", hanging),
        Route("/publish/{topic}", publish, methods=["POST"]),
        Route("/revoke/{user}", revoke, methods=["POST"]),
        Route("/health", health),
    ],
    lifespan=lifespan,
)
