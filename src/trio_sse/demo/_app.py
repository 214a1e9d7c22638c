"""The demo's Starlette app: a page, a clock, a broadcast room with resume, live statistics.

Every stream is an :class:`~trio_sse.EventSourceResponse` around a *producer function*
(``async def producer(send)``) that runs in the response's own task group:

* ``GET /clock``: the server time once a second (event ``tick``, numeric ids, resumed from
  ``Last-Event-ID``);
* ``GET /room``: the broadcast room, ``hub.stream("room", ...)`` behind a ``hello`` event;
  ``POST /room`` (JSON ``{"name": ..., "text": ...}``) publishes a ``chat`` event to every
  subscriber; a client that comes back with ``Last-Event-ID`` (or ``?lastEventId=``) gets
  what it missed from the hub's history first;
* ``GET /stats``: the demo's counters and ``hub.stats()``, pushed once a second.

Graceful shutdown: when the server's :class:`~trio_sse.ShutdownToken` triggers (Ctrl-C),
every producer stops at once (:func:`_until_shutdown`) and each response's ``farewell=``
event tells the page goodbye, with a jittered ``retry:`` (``farewell_retry=``) so that the
pages do not all come back in the same instant; the body ends cleanly.
"""

from __future__ import annotations

import itertools
import json
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from importlib.resources import files
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from trio_sse import (
    Broadcaster,
    EventSourceResponse,
    JSONServerSentEvent,
    ServerSentEvent,
    current_shutdown_token,
)

from .._asynclib import running_under_trio

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_NAME_LENGTH",
    "MAX_TEXT_LENGTH",
    "SHUTDOWN_GRACE_PERIOD",
    "create_app",
]

#: Seconds a stream gets, once shutdown begins, before it is cancelled. The demo's producers
#: stop as soon as shutdown begins, so this is only an upper bound.
SHUTDOWN_GRACE_PERIOD = 2.0

ROOM = "room"
HISTORY = 200  # room messages the hub keeps for resuming clients
MAX_BODY_BYTES = 4096  # a larger POST body is refused with 413 before it is parsed
MAX_TEXT_LENGTH = 280  # characters; a longer message is refused with 413
MAX_NAME_LENGTH = 32  # characters; a longer name is refused with 400
STATS_INTERVAL = 1.0

# What every stream says when the server shuts down (the responses' farewell= option).
FAREWELL = ServerSentEvent("The server is shutting down. Goodbye!", event="shutdown")
# Reconnect after 2-5 s (chosen at random per stream): after a restart, not all at once.
FAREWELL_RETRY = (2000, 5000)

Send = MemoryObjectSendStream[Any]
Producer = Callable[[Send], Awaitable[None]]


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _clock_last_id(request: Request) -> int:
    """The numeric ``Last-Event-ID`` a reconnecting browser sent to ``/clock``, else 0."""
    value = request.headers.get("last-event-id", "")
    if value.isascii() and value.isdigit() and len(value) < 19:
        return int(value)
    return 0


def _resuming(request: Request) -> bool:
    """Does the request ask to resume (``Last-Event-ID`` header or ``?lastEventId=``)?

    The same two places ``hub.stream(topic, request)`` reads the id from: a browser's
    ``EventSource`` sends the header when it reconnects by itself; a page that closed its
    ``EventSource`` and opens a new one cannot set headers, so it puts the id in the URL.
    """
    return bool(request.headers.get("last-event-id") or request.query_params.get("lastEventId"))


async def _until_shutdown(producer: Producer, send: Send) -> None:
    """Run *producer* until it returns or the stream's shutdown token triggers.

    ``current_shutdown_token()`` is the token the response obeys. Cancelling the producer
    makes it close its channel (``async with send``), so the body ends at once and the
    response adds its ``farewell=`` event, instead of waiting for the grace period to end.
    """
    token = current_shutdown_token()
    async with send, anyio.create_task_group() as group:

        async def stop_on_shutdown() -> None:
            await token.wait()
            group.cancel_scope.cancel()

        group.start_soon(stop_on_shutdown)
        await producer(send)
        group.cancel_scope.cancel()


class BadMessage(Exception):
    """A POST to the room that is refused: its status code and a message for the sender."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


def _clean(value: object, field: str, *, limit: int, status_code: int) -> str:
    """One line of printable text: whitespace runs collapsed, no control characters."""
    if not isinstance(value, str):
        raise BadMessage(400, f"{field} must be a string")
    text = " ".join(value.split())
    # Cc: control characters; Cs: lone surrogates, which JSON allows ("\ud800") but UTF-8
    # cannot encode (the stream would fail to encode the event for every subscriber).
    if any(unicodedata.category(character) in ("Cc", "Cs") for character in text):
        raise BadMessage(400, f"{field} contains control characters or lone surrogates")
    if len(text) > limit:
        raise BadMessage(status_code, f"{field} is longer than {limit} characters")
    return text


async def _read_message(request: Request) -> tuple[str, str]:
    """The ``(name, text)`` of a room POST, or :class:`BadMessage` (400, 413 or 415)."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != "application/json":
        # Also keeps other sites' plain HTML forms from posting here (they cannot send JSON).
        raise BadMessage(415, "send the message as application/json")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise BadMessage(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():  # bounded: stop reading at the limit
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadMessage(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd nesting
        raise BadMessage(400, "the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise BadMessage(400, 'expected a JSON object: {"name": ..., "text": ...}')
    text = _clean(payload.get("text"), "text", limit=MAX_TEXT_LENGTH, status_code=413)
    if not text:
        raise BadMessage(400, "text is empty")
    name = _clean(payload.get("name", ""), "name", limit=MAX_NAME_LENGTH, status_code=400)
    return name or "anonymous", text


class Demo:
    """The demo's state (the hub and a few counters) and its endpoints."""

    def __init__(self) -> None:
        self.page = files("trio_sse.demo").joinpath("index.html").read_text(encoding="utf-8")
        self._hub: Broadcaster | None = None
        self.started = 0.0  # when the lifespan began (time.monotonic())
        self.open_streams = {"clock": 0, "room": 0, "stats": 0}
        self.sent = 0  # events sent by the demo's own producers (room messages: the hub counts)
        self.seq = 0  # the sequence number given to the last room message
        # The newest message whose publish() has returned (it is in the hub's history):
        # its sequence number and hub id.
        self.published_seq = 0
        self.last_id: str | None = None

    @property
    def hub(self) -> Broadcaster:
        assert self._hub is not None, "the app's lifespan has not started"
        return self._hub

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with Broadcaster(history=HISTORY) as hub:
            self._hub = hub
            self.started = time.monotonic()
            # The first message: from now on there is always an id for a new subscriber to
            # start after (see room_stream), and a restarted server's room says so.
            await self.publish("trio_sse", f"Room opened: the server started at {_now()[11:19]}.")
            try:
                yield
            finally:
                self._hub = None

    async def publish(self, name: str, text: str) -> tuple[int, str]:
        """Publish one room message; returns its sequence number and hub id."""
        self.seq += 1
        seq = self.seq
        message = {"seq": seq, "name": name, "text": text, "time": _now()}
        event_id = await self.hub.publish(ROOM, JSONServerSentEvent(message, event="chat"))
        if seq > self.published_seq:
            self.published_seq, self.last_id = seq, event_id
        return seq, event_id

    def tracked(self, kind: str, producer: Producer) -> Producer:
        """*producer*, counted in ``open_streams`` while it runs, and stopped by shutdown."""

        async def run(send: Send) -> None:
            self.open_streams[kind] += 1
            try:
                await _until_shutdown(producer, send)
            finally:
                self.open_streams[kind] -= 1

        return run

    def respond(self, kind: str, producer: Producer) -> EventSourceResponse:
        return EventSourceResponse(
            self.tracked(kind, producer),
            shutdown_grace_period=SHUTDOWN_GRACE_PERIOD,
            farewell=FAREWELL,
            farewell_retry=FAREWELL_RETRY,
        )

    # -- endpoints ------------------------------------------------------------------------

    async def index(self, request: Request) -> HTMLResponse:
        return HTMLResponse(self.page, headers={"Cache-Control": "no-store"})

    async def clock(self, request: Request) -> EventSourceResponse:
        last_id = _clock_last_id(request)

        async def ticks(send: Send) -> None:
            for event_id in itertools.count(last_id + 1):
                # retry: on the first event only; the browser remembers it for this EventSource.
                retry = 2000 if event_id == last_id + 1 else None
                await send.send(ServerSentEvent(_now(), event="tick", id=event_id, retry=retry))
                self.sent += 1
                # Tick just after the wall clock's second boundaries, so that the page's
                # seconds change in step with the system clock.
                await anyio.sleep(1.01 - time.time() % 1.0)

        return self.respond("clock", ticks)

    async def room_stream(self, request: Request) -> EventSourceResponse:
        resuming = _resuming(request)
        # A snapshot, taken when this connection begins, of the newest message published.
        live_after, newest_id = self.published_seq, self.last_id
        hub_stream = self.hub.stream(ROOM, request if resuming else newest_id)

        async def room(send: Send) -> None:
            # How the page marks replayed messages, honestly: a message is *replayed* when it
            # was published before this connection began, so this tab cannot have received it
            # live: it came from the hub's history through Last-Event-ID. The server numbers
            # the messages (seq) and tells each connection, first, the last number published
            # before it began (live_after); the page marks every chat event with
            # seq <= live_after. Comparing numbers assigned by one server avoids client clock
            # skew, and arrival times cannot tell the two apart (the replay and the first live
            # events arrive back to back).
            #
            # A new connection (no id) resumes after the newest id too, so a message
            # published while it subscribes is not lost; the hello event carries that id,
            # which becomes the EventSource's lastEventId. A resuming connection's hello has
            # no id: its lastEventId must stay the last message it actually received.
            hello = {"live_after": live_after, "resumed": resuming}
            event_id = None if resuming else newest_id
            await send.send(JSONServerSentEvent(hello, event="hello", id=event_id))
            self.sent += 1
            await hub_stream(send)

        return self.respond("room", room)

    async def room_post(self, request: Request) -> Response:
        try:
            name, text = await _read_message(request)
        except BadMessage as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status_code)
        except ClientDisconnect:
            return Response(status_code=400)  # nobody is left to read it
        seq, event_id = await self.publish(name, text)
        return JSONResponse({"seq": seq, "id": event_id}, status_code=201)

    def snapshot(self) -> dict[str, object]:
        """The numbers the stats panel shows."""
        stats = self.hub.stats()
        return {
            "backend": "trio" if running_under_trio() else "asyncio",
            "uptime": round(time.monotonic() - self.started),
            "open_streams": sum(self.open_streams.values()),
            "streams": dict(self.open_streams),
            # The demo's own events (ticks, hellos, stats) and the room messages delivered
            # (one per subscriber and message, replays included).
            "events_sent": self.sent + stats.delivered,
            "subscribers": stats.total_subscribers,
            "published": stats.published,
            "delivered": stats.delivered,
            "dropped": stats.dropped,
            "disconnected": stats.disconnected,
        }

    async def stats(self, request: Request) -> EventSourceResponse:
        async def push(send: Send) -> None:
            while True:
                await send.send(JSONServerSentEvent(self.snapshot(), event="stats"))
                self.sent += 1
                await anyio.sleep(STATS_INTERVAL)

        return self.respond("stats", push)


def create_app() -> Starlette:
    """Build the demo app: ``/`` (the page), ``/clock``, ``/room`` (GET, POST), ``/stats``."""
    demo = Demo()
    return Starlette(
        routes=[
            Route("/", demo.index),
            Route("/clock", demo.clock),
            Route("/room", demo.room_stream, methods=["GET"]),
            Route("/room", demo.room_post, methods=["POST"]),
            Route("/stats", demo.stats),
        ],
        lifespan=demo.lifespan,
    )
