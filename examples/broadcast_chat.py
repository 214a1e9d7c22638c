"""Chat-style broadcast with resume: memory by default, Redis Streams with REDIS_URL set.

Every open stream of a room gets every message; a client that drops and reconnects with
its Last-Event-ID (browsers do it by themselves) gets exactly what it missed. On Redis, two
processes share rooms and history, so a client can resume on the other one, and history
survives a restart (see broadcast_redis.py).

Run:   python examples/broadcast_chat.py                       (PORT=8000; memory)
       REDIS_URL=redis://127.0.0.1:6379/0 python examples/broadcast_chat.py
Try:   curl -N http://127.0.0.1:8000/rooms/lobby
       curl -d '{"user": "ada", "text": "hello"}' http://127.0.0.1:8000/rooms/lobby
       curl -N -H 'Last-Event-ID: <an id you saw>' http://127.0.0.1:8000/rooms/lobby
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trio_sse import Broadcaster, EventSourceResponse, JSONServerSentEvent, run
from trio_sse.backends import RedisBackend


def create_app(redis_url: str | None) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Broadcaster]]:
        backend = RedisBackend(redis_url, prefix="chat:") if redis_url else None
        async with Broadcaster(backend, history=500) as hub:
            yield {"hub": hub}

    async def room(request: Request) -> EventSourceResponse | JSONResponse:
        hub: Broadcaster = request.state.hub
        name = request.path_params["room"]
        if request.method == "POST":
            try:
                message = json.loads(await request.body())
                user, text = str(message["user"])[:40], str(message["text"])[:2000]
            except (ValueError, KeyError, TypeError):
                return JSONResponse(
                    {"error": 'expected {"user": ..., "text": ...}'}, status_code=400
                )
            event_id = await hub.publish(
                name, JSONServerSentEvent({"user": user, "text": text}, event="message")
            )
            return JSONResponse({"id": event_id})
        # Resumes from the Last-Event-ID header (or ?lastEventId=) on its own.
        return EventSourceResponse(hub.stream(name, request), ping=10)

    return Starlette(
        routes=[Route("/rooms/{room}", room, methods=["GET", "POST"])], lifespan=lifespan
    )


app = create_app(os.environ.get("REDIS_URL"))

if __name__ == "__main__":
    run(app, backend="trio", port=int(os.environ.get("PORT", "8000")))
