"""One SSE app behind each middleware kind, on Starlette or FastAPI.

Routes (the same behind every middleware):

* ``/sse?stream=ID``: a stepped stream. The producer makes event ``n`` (recorded in the
  stream's :class:`StreamState` ``made``), sends it, then waits for the client's ack of ``n``
  before it makes ``n + 1``; it stops when the stream's shutdown token triggers (the response
  then sends the farewell). A client that reads event ``n`` while ``made`` ends at ``n`` has
  shown that nothing between the producer and the client held the event back.
* ``/ack?stream=ID&n=N``: the client's ack of event ``N`` (for clients in another process).
* ``/state?stream=ID``: the stream's state as JSON (``made``, ``closed``, ``close_messages``);
  with ``&wait=closed``, answered once the producer has ended.

The producer's ``finally`` sets ``closed``; the response's ``client_close_handler_callable``
appends the disconnect message to ``close_messages``. Each app owns a :class:`Registry` of
stream states (``app.state.registry``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from fastapi import FastAPI
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from trio_sse import EventSourceResponse, ServerSentEvent, ShutdownToken, current_shutdown_token

KINDS = ("gzip", "cors", "base_http", "pure_asgi", "otel")
"""The middleware kinds, each in front of the whole app."""
FRAMEWORKS = ("starlette", "fastapi")

ORIGIN = "http://client.example"
REQUEST_HEADERS = {"accept-encoding": "gzip", "origin": ORIGIN}
"""What every test client sends: enough for GZip to want to compress and for CORS to answer."""

EVIDENCE = {
    "cors": ("access-control-allow-origin", ORIGIN),
    "base_http": ("x-dispatch", "base-http"),
    "pure_asgi": ("x-pure-asgi", "yes"),
}
"""A response header that shows the middleware ran (GZip and OTel leave none on a stream)."""

FAREWELL = ServerSentEvent("bye", event="shutdown")

ProducerSend = MemoryObjectSendStream[Any]


class StreamState:
    """What one stepped stream did: events made, acks received, how it ended.

    Created in the request's task (``anyio.Event`` needs a running loop); the producer and
    the ``/ack`` requests share it.
    """

    def __init__(self) -> None:
        self.made: list[int] = []
        self.close_messages: list[dict[str, Any]] = []
        self.closed = anyio.Event()
        self.started = anyio.Event()
        self._acks: dict[int, anyio.Event] = {}

    def _ack_event(self, number: int) -> anyio.Event:
        return self._acks.setdefault(number, anyio.Event())

    def ack(self, number: int) -> None:
        """The client has read event *number*: the producer may make the next one."""
        self._ack_event(number).set()

    async def wait_ack(self, number: int) -> None:
        """Until event *number* is acked. A checkpoint."""
        await self._ack_event(number).wait()

    def as_json(self) -> dict[str, Any]:
        return {
            "made": self.made,
            "closed": self.closed.is_set(),
            "close_messages": self.close_messages,
        }


class Registry:
    """The app's stream states by id, and the token its streams obey (``None``: the default)."""

    def __init__(self, shutdown: ShutdownToken | None = None) -> None:
        self.shutdown = shutdown
        self.streams: dict[str, StreamState] = {}

    def get(self, stream_id: str) -> StreamState:
        if stream_id not in self.streams:
            self.streams[stream_id] = StreamState()
        return self.streams[stream_id]


async def _until_acked_or_shutdown(state: StreamState, number: int, token: ShutdownToken) -> None:
    """Return once *number* is acked or *token* triggers, whichever is first. A checkpoint."""
    async with anyio.create_task_group() as group:

        async def stop_on_shutdown() -> None:
            await token.wait()
            group.cancel_scope.cancel()

        group.start_soon(stop_on_shutdown)
        await state.wait_ack(number)
        group.cancel_scope.cancel()


def stepped_producer(state: StreamState) -> Callable[[ProducerSend], Awaitable[None]]:
    """The ``/sse`` producer: event ``n``, wait for its ack, ``n + 1``... until shutdown.

    It closes its channel itself (``async with send``) and sets ``state.closed`` however it
    ends (shutdown, cancelled by a disconnect).
    """

    async def producer(send: ProducerSend) -> None:
        token = current_shutdown_token()
        try:
            async with send:
                number = 0
                state.started.set()
                while not token.triggered:
                    state.made.append(number)
                    await send.send(ServerSentEvent(number, id=number))
                    await _until_acked_or_shutdown(state, number, token)
                    number += 1
        finally:
            state.closed.set()

    return producer


def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


async def sse(request: Request) -> Response:
    registry = _registry(request)
    state = registry.get(request.query_params["stream"])

    async def on_close(message: MutableMapping[str, Any]) -> None:
        state.close_messages.append(dict(message))

    return EventSourceResponse(
        stepped_producer(state),
        shutdown=registry.shutdown,
        shutdown_grace_period=2.0,
        farewell=FAREWELL,
        client_close_handler_callable=on_close,
    )


async def ack(request: Request) -> Response:
    state = _registry(request).get(request.query_params["stream"])
    state.ack(int(request.query_params["n"]))
    return PlainTextResponse("ok")


async def state(request: Request) -> Response:
    """The stream's state; with ``wait=closed``, once its producer has ended (a checkpoint,
    bounded by the client's timeout)."""
    stream_state = _registry(request).get(request.query_params["stream"])
    if request.query_params.get("wait") == "closed":
        await stream_state.closed.wait()
    return JSONResponse(stream_state.as_json())


ROUTES: list[tuple[str, Callable[[Request], Awaitable[Response]]]] = [
    ("/sse", sse),
    ("/ack", ack),
    ("/state", state),
]


class AddHeaderMiddleware(BaseHTTPMiddleware):
    """A user's ``BaseHTTPMiddleware``: its ``dispatch`` adds a header to every response."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-dispatch"] = "base-http"
        return response


class PureASGIHeaderMiddleware:
    """A pure-ASGI middleware: adds a header to ``http.response.start``, passes the rest."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("x-pure-asgi", "yes")
            await send(message)

        await self.app(scope, receive, send_with_header)


def middleware_for(
    kind: str,
    tracer_provider: TracerProvider | None = None,
    options: Mapping[str, Any] | None = None,
) -> Middleware:
    """The :class:`Middleware` entry for *kind* (OTel spans go to *tracer_provider*), its
    defaults updated with *options*."""
    options = options or {}
    if kind == "gzip":
        return Middleware(GZipMiddleware, **{"minimum_size": 1, **options})
    if kind == "cors":
        return Middleware(CORSMiddleware, **{"allow_origins": [ORIGIN], **options})
    if kind == "base_http":
        return Middleware(AddHeaderMiddleware)
    if kind == "pure_asgi":
        return Middleware(PureASGIHeaderMiddleware)
    if kind == "otel":
        return Middleware(
            OpenTelemetryMiddleware, **{"tracer_provider": tracer_provider, **options}
        )
    raise ValueError(f"unknown middleware kind {kind!r}")


def build_app(
    kind: str,
    framework: str = "starlette",
    *,
    shutdown: ShutdownToken | None = None,
    tracer_provider: TracerProvider | None = None,
    options: Mapping[str, Any] | None = None,
) -> Starlette:
    """The app of :data:`ROUTES` behind the *kind* middleware (given *options*), with a fresh
    :class:`Registry`."""
    middleware = middleware_for(kind, tracer_provider, options)
    app: Starlette
    if framework == "starlette":
        app = Starlette(
            routes=[Route(path, endpoint) for path, endpoint in ROUTES], middleware=[middleware]
        )
    elif framework == "fastapi":
        app = FastAPI(middleware=[middleware])
        for path, endpoint in ROUTES:
            app.add_api_route(path, endpoint)
    else:
        raise ValueError(f"unknown framework {framework!r}")
    app.state.registry = Registry(shutdown)
    return app
