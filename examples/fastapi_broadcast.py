"""FastAPI: a broadcast room with resume; the Broadcaster comes from the lifespan, injected.

The lifespan owns one `Broadcaster` (its tasks stop when the app stops); a dependency hands
it to the path operations. POST publishes a validated `Message` as an `event: message`;
GET streams the room. A client that reconnects with `Last-Event-ID` (browsers do it by
themselves; `?lastEventId=` for clients that cannot set headers) gets exactly what it
missed, then live messages: no gap, no duplicate. An id the history no longer holds starts
the stream with `event: reset`, then the whole retained history.

The GET operation returns the response itself (so it can pass options such as `ping`);
`response_class=EventSourceResponse` documents it as `text/event-stream`.

Run:   python examples/fastapi_broadcast.py               (PORT=8000; uvicorn, asyncio)
       BACKEND=trio python examples/fastapi_broadcast.py  (hypercorn's trio worker)
Try:   curl -N http://127.0.0.1:8000/rooms/lobby
       curl -H 'content-type: application/json' -d '{"user": "ada", "text": "hello"}' \
            http://127.0.0.1:8000/rooms/lobby
       curl -N -H 'Last-Event-ID: <an id you saw>' http://127.0.0.1:8000/rooms/lobby
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import uvicorn
from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, Field

from trio_sse import Broadcaster, EventSourceResponse, JSONServerSentEvent, run
from trio_sse.fastapi import document_streams


class Message(BaseModel):
    user: str = Field(min_length=1, max_length=40)
    text: str = Field(min_length=1, max_length=2000)


class MessageEvent(JSONServerSentEvent[Message], event="message"):
    """A chat message as `event: message`, its data the `Message` as JSON."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Broadcaster]]:
    async with Broadcaster(history=500) as hub:  # owns its tasks; stops them on exit
        yield {"hub": hub}


def get_hub(request: Request) -> Broadcaster:
    """The lifespan's hub (what it yielded is in every request's state)."""
    hub: Broadcaster = request.state.hub
    return hub


Hub = Annotated[Broadcaster, Depends(get_hub)]

app = FastAPI(title="broadcast", lifespan=lifespan)
document_streams(app)


@app.post("/rooms/{room}")
async def post(room: str, message: Message, hub: Hub) -> dict[str, str]:
    return {"id": await hub.publish(room, MessageEvent(message))}


@app.get("/rooms/{room}", response_class=EventSourceResponse)
async def stream(room: str, request: Request, hub: Hub) -> EventSourceResponse:
    # hub.stream reads Last-Event-ID (or ?lastEventId=) from the request and resumes.
    return EventSourceResponse(hub.stream(room, request), ping=10)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8000"))
    if os.environ.get("BACKEND") == "trio":
        run(app, backend="trio", port=port)
    else:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
