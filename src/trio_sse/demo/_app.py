"""The demo's Starlette app: a page, an endless clock stream and a finite numbers stream."""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from importlib.resources import files

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from trio_sse import EventSourceResponse, ServerSentEvent, current_shutdown_token

__all__ = ["SHUTDOWN_GRACE_PERIOD", "create_app"]

#: Seconds a stream gets, once shutdown begins, to say goodbye before it is cancelled.
SHUTDOWN_GRACE_PERIOD = 2.0

NUMBER_COUNT = 10
NUMBER_INTERVAL = 0.3

Send = MemoryObjectSendStream[ServerSentEvent]


def _last_event_id(request: Request) -> int:
    """The numeric ``Last-Event-ID`` a reconnecting browser sent, else 0.

    The browser repeats the last ``id`` it saw when it reconnects (WHATWG 9.2.4), so the
    streams below resume where they stopped instead of starting over.
    """
    value = request.headers.get("last-event-id", "")
    if value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    return 0


async def clock(send: Send, last_id: int) -> None:
    """Send the server time once a second, forever; say goodbye when shutdown begins.

    ``current_shutdown_token()`` is the token this stream obeys: once it triggers, the
    response gives us ``shutdown_grace_period`` seconds to send a farewell and close.
    """
    token = current_shutdown_token()
    async with send:
        for event_id in itertools.count(last_id + 1):
            now = datetime.now().astimezone().isoformat(timespec="seconds")
            # retry: on the first event only; the browser remembers it for this EventSource.
            retry = 2000 if event_id == last_id + 1 else None
            await send.send(ServerSentEvent(now, event="tick", id=event_id, retry=retry))
            # Tick just after the wall clock's second boundaries (so the page's seconds change
            # in step with the system clock), but wake at once when shutdown begins.
            with anyio.move_on_after(1.01 - time.time() % 1.0):
                await token.wait()
            if token.triggered:
                # A long retry: the server is going away, do not reconnect within its grace.
                await send.send(
                    ServerSentEvent(
                        "The server is shutting down. Goodbye!", event="shutdown", retry=5000
                    )
                )
                return


async def numbers(send: Send, last_id: int) -> None:
    """Send the numbers 1..10, ~0.3 s apart, then a final "done" event, and close.

    The page closes its ``EventSource`` on "done"; without that the browser would reconnect
    when the stream ends (after ``retry`` ms), and resume after the last id it saw.
    """
    async with send:
        for number in range(last_id + 1, NUMBER_COUNT + 1):
            if number > last_id + 1:
                await anyio.sleep(NUMBER_INTERVAL)
            retry = 3000 if number == last_id + 1 else None
            await send.send(ServerSentEvent(number, event="number", id=number, retry=retry))
        await send.send(ServerSentEvent(f"{NUMBER_COUNT} numbers sent", event="done"))


def create_app() -> Starlette:
    """Build the demo app: ``/`` (the page), ``/clock`` (endless), ``/numbers`` (finite)."""
    page = files("trio_sse.demo").joinpath("index.html").read_text(encoding="utf-8")

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    async def clock_endpoint(request: Request) -> EventSourceResponse:
        return EventSourceResponse(
            clock, _last_event_id(request), shutdown_grace_period=SHUTDOWN_GRACE_PERIOD
        )

    async def numbers_endpoint(request: Request) -> EventSourceResponse:
        return EventSourceResponse(
            numbers, _last_event_id(request), shutdown_grace_period=SHUTDOWN_GRACE_PERIOD
        )

    return Starlette(
        routes=[
            Route("/", index),
            Route("/clock", clock_endpoint),
            Route("/numbers", numbers_endpoint),
        ]
    )
