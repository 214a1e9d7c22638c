"""The app that the client, conformance and browser tests talk to over real sockets.

Served in-process (``make_app()``, so that a test can read ``app.state``) and from a server
subprocess (``python -m trio_sse serve tests.servers.client_app:app``).

``/stream`` sends events ``id=n`` with ``data={"n": n, "last_event_id": ..., "connection": k}``,
resuming after a numeric ``Last-Event-ID`` (so the data tells what the server saw). Query:
``count`` events per connection (0: endless), ``interval`` seconds between events, ``retry``
milliseconds sent with the first event of each connection, ``hold`` seconds to keep the
connection open after the last event, ``ping`` keep-alive seconds, ``then=STATUS`` to answer
that status (say 204) to a request that carries ``Last-Event-ID``.

Other routes: ``/moved`` (a 307 to ``/stream?count=1&then=204``), ``/status/{code}`` (a plain response with that status), ``/wrong-type`` (200
``text/plain``), ``/empty`` (200 ``text/event-stream`` with an empty body), ``/flaky`` (the
first ``fail`` requests get ``code``, then a stream), ``/broken`` (one event, then the
connection is dropped mid-body), ``/echo`` (one event describing the request), ``/unicode``
(a non-ASCII id, then the ``Last-Event-ID`` it comes back with), ``/fixture?sep=``
(``TRICKY_EVENTS``, then the end of the stream), and ``/browser`` (a page whose
``EventSource`` records every message into ``window.received``) with its ``/browser/stream``.

``app.state``: ``requests`` (one dict per request: path, method, ``last_event_id``, headers,
time), ``ended`` (``(path, time)`` when a stream's producer finished), ``counters``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from trio_sse import EventSourceResponse, ServerSentEvent

Send = MemoryObjectSendStream[Any]


def last_event_id(request: Request) -> str | None:
    """The ``Last-Event-ID`` header as the client meant it: UTF-8 (WHATWG 9.2.4).

    ASGI servers hand header values over as bytes, which Starlette decodes as Latin-1.
    """
    value = request.headers.get("last-event-id")
    if value is None:
        return None
    return value.encode("latin-1").decode("utf-8", errors="replace")


def _record(request: Request) -> str | None:
    seen = last_event_id(request)
    request.app.state.requests.append(
        {
            "path": request.url.path,
            "method": request.method,
            "last_event_id": seen,
            "headers": dict(request.headers),
            "time": time.monotonic(),
        }
    )
    return seen


def _ended(request: Request) -> None:
    request.app.state.ended.append((request.url.path, time.monotonic()))


async def stream(request: Request) -> Response:
    seen = _record(request)
    query = request.query_params
    if "then" in query and seen is not None:
        return PlainTextResponse("then this", status_code=int(query["then"]))
    count = int(query.get("count", "0"))
    interval = float(query.get("interval", "0"))
    retry = int(query["retry"]) if "retry" in query else None
    hold = float(query.get("hold", "0"))
    ping = float(query.get("ping", "15"))
    start = int(seen) + 1 if seen is not None and seen.isdigit() else 1
    request.app.state.counters["stream"] += 1
    connection = request.app.state.counters["stream"]

    async def produce(send: Send) -> None:
        try:
            async with send:
                n = start
                while count == 0 or n < start + count:
                    data = {"n": n, "last_event_id": seen, "connection": connection}
                    first = n == start
                    await send.send(
                        ServerSentEvent(json.dumps(data), id=n, retry=retry if first else None)
                    )
                    n += 1
                    if interval:
                        await anyio.sleep(interval)
                if hold:
                    await anyio.sleep(hold)
        finally:
            _ended(request)

    return EventSourceResponse(produce, ping=ping)


async def moved(request: Request) -> Response:
    _record(request)
    return RedirectResponse("/stream?count=1&then=204", status_code=307)


async def status(request: Request) -> Response:
    _record(request)
    return PlainTextResponse("no stream here", status_code=int(request.path_params["code"]))


async def wrong_type(request: Request) -> Response:
    _record(request)
    return PlainTextResponse("data: this is not an event stream\n\n")


async def empty(request: Request) -> Response:
    _record(request)
    return Response(b"", media_type="text/event-stream")


async def flaky(request: Request) -> Response:
    _record(request)
    counters = request.app.state.counters
    counters["flaky"] += 1
    if counters["flaky"] <= int(request.query_params.get("fail", "2")):
        return PlainTextResponse("busy", status_code=int(request.query_params.get("code", "503")))
    return EventSourceResponse([ServerSentEvent("finally", id="flaky")])


async def echo(request: Request) -> Response:
    seen = _record(request)
    body = (await request.body()).decode()
    described = {
        "method": request.method,
        "body": body,
        "query": dict(request.query_params),
        "last_event_id": seen,
        "headers": dict(request.headers),
    }
    return EventSourceResponse([ServerSentEvent(json.dumps(described), event="echo")])


async def unicode_id(request: Request) -> Response:
    seen = _record(request)
    if seen is None:
        return EventSourceResponse([ServerSentEvent("first", id="ünï✓-1")])
    if request.app.state.counters["unicode"] == 0:
        request.app.state.counters["unicode"] += 1
        return EventSourceResponse([ServerSentEvent(seen, event="seen")])
    return Response(status_code=204)


class _BrokenBody:
    """A raw ASGI app: headers and one event, then the app fails mid-body.

    The server can only drop the connection: the client sees an incomplete chunked body,
    which is a network error (WHATWG: reestablish the connection).
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"id: b1\ndata: before\n\n", "more_body": True}
        )
        raise RuntimeError("the app failed mid-stream (on purpose, for the client tests)")


async def broken(request: Request) -> Response:
    _record(request)
    counters = request.app.state.counters
    counters["broken"] += 1
    if counters["broken"] == 1:
        return _AsgiResponse(_BrokenBody())
    return EventSourceResponse([ServerSentEvent("after", id="b2")])


class _AsgiResponse(Response):
    def __init__(self, asgi: _BrokenBody) -> None:
        super().__init__()
        self._asgi = asgi

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._asgi(scope, receive, send)


BROWSER_PAGE = """<!doctype html>
<meta charset="utf-8">
<title>trio_sse EventSource check</title>
<script>
window.received = [];
window.opens = 0;
window.errors = 0;
window.finished = false;
const source = new EventSource("/browser/stream");
function record(event) {
  window.received.push({type: event.type, data: event.data, lastEventId: event.lastEventId});
}
source.onopen = () => { window.opens += 1; };
source.onerror = () => { window.errors += 1; };
source.onmessage = record;
source.addEventListener("tick", record);
source.addEventListener("done", (event) => {
  record(event);
  source.close();
  window.finished = true;
});
</script>
"""

# What the first browser connection gets, then what the page must have recorded.
BROWSER_FIRST = [
    ServerSentEvent("hello", id="1", retry=500),
    ServerSentEvent("tock", event="tick", id="2"),
    # CR-only line ends, data ending with a newline
    ServerSentEvent("line one\nline two\n", id="3", sep="\r"),
    # LF-only line ends, empty data: still dispatched
    ServerSentEvent("", id="4", sep="\n"),
    # a comment alone: nothing dispatched
    ServerSentEvent(comment="only a comment"),
    # leading spaces (one is the field's own), non-ASCII, astral plane; a non-ASCII id, which
    # comes back as a UTF-8 Last-Event-ID header
    ServerSentEvent("  ünïcødé ✓ 🎉", event="tick", id="5-ünï"),
    # no id field: lastEventId stays "5-ünï"
    ServerSentEvent("no id here"),
]


async def browser_page(request: Request) -> Response:
    return HTMLResponse(BROWSER_PAGE)


async def browser_stream(request: Request) -> Response:
    seen = _record(request)
    counters = request.app.state.counters
    counters["browser"] += 1
    if counters["browser"] == 1:

        async def first(send: Send) -> None:
            try:
                async with send:
                    for event in BROWSER_FIRST:
                        await send.send(event)
            finally:
                _ended(request)

        return EventSourceResponse(first)
    if counters["browser"] == 2:

        async def second(send: Send) -> None:
            try:
                async with send:
                    await send.send(ServerSentEvent(f"resumed after {seen}", event="done", id="6"))
                    # Held open: the page's close() must end it (the server sees the disconnect).
                    await anyio.sleep(30)
            finally:
                _ended(request)

        return EventSourceResponse(second)
    return Response(status_code=204)


# Events that exercise the encoder's corners: every separator, empty and multi-line data, data
# ending with line ends, leading spaces, colons, non-ASCII and astral characters, characters
# that other line splitters treat as line ends (U+2028, NEL, VT, FF), a BOM inside data,
# empty and changing ids and event types, retry values, comments.
TRICKY_EVENTS = [
    ServerSentEvent("plain", id="1"),
    ServerSentEvent("", event="empty"),
    ServerSentEvent("two\nlines", id="2", retry=0),
    ServerSentEvent("cr\rand\r\ncrlf\n", event="ends", sep="\r"),
    ServerSentEvent("\n\n", sep="\n"),
    ServerSentEvent("  leading spaces", event=" spaced ", id=" 3"),
    ServerSentEvent("colon: inside: data", event="a:b"),
    ServerSentEvent("üñí©ødé 🎉 \u2028 \x85 \x0b \x0c \ufeff", id="ïd-4", retry=12345),
    ServerSentEvent("x" * 70_000, comment="long data follows\nin two comment lines"),
    ServerSentEvent("after an empty id", id=""),
    ServerSentEvent("data: looks like a field", event=""),
    ServerSentEvent("last", id="5", retry=2**40),
]


async def fixture(request: Request) -> Response:
    _record(request)
    return EventSourceResponse(TRICKY_EVENTS, sep=request.query_params.get("sep", "\r\n"), ping=0)


def make_app() -> Starlette:
    app = Starlette(
        routes=[
            Route("/stream", stream),
            Route("/moved", moved),
            Route("/status/{code:int}", status),
            Route("/wrong-type", wrong_type),
            Route("/empty", empty),
            Route("/flaky", flaky),
            Route("/broken", broken),
            Route("/echo", echo, methods=["GET", "POST", "PUT"]),
            Route("/unicode", unicode_id),
            Route("/browser", browser_page),
            Route("/browser/stream", browser_stream),
            Route("/fixture", fixture),
        ]
    )
    app.state.requests = []
    app.state.ended = []
    app.state.counters = {"stream": 0, "flaky": 0, "broken": 0, "unicode": 0, "browser": 0}
    return app


app = make_app()
