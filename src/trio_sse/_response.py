"""``EventSourceResponse``: the Starlette face of the stream loop in ``_stream``."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from starlette.background import BackgroundTask
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ._encoder import check_sep
from ._events import DEFAULT_SEPARATOR, ServerSentEvent
from ._limit import StreamLimit, limit_from_scope
from ._prefetch import DEFAULT_MAX_PREFETCH as DEFAULT_MAX_PREFETCH
from ._shutdown import ShutdownToken
from ._sources import classify
from ._stream import Connection, Message, StreamSpec
from ._uvicorn import chain_uvicorn_signals_automatically
from ._validate import (
    is_int,
    non_negative_int,
    optional_callable,
    optional_instance,
    positive_int,
    seconds,
    shown,
)

__all__ = ["EventSourceResponse"]

DEFAULT_PING_INTERVAL = 15
DEFAULT_MAX_BUFFER_SIZE = 256
DEFAULT_CLEANUP_TIMEOUT = 30.0


def _check_retry_range(value: object) -> int | tuple[int, int] | None:
    what = "milliseconds (an int >= 0) or a (low, high) range of them, or None"
    if value is None or is_int(value):
        return None if value is None else non_negative_int("farewell_retry", value, what=what)
    if not isinstance(value, tuple) or len(value) != 2 or not all(map(is_int, value)):
        raise TypeError(f"farewell_retry must be {what}, got {shown(value)}")
    low, high = value
    if not 0 <= low <= high:
        raise ValueError(f"farewell_retry must be a range 0 <= low <= high, got {shown(value)}")
    return (low, high)


def _check_farewell(value: object) -> object:
    if value is None or isinstance(value, (ServerSentEvent, str, bytes, Mapping)):
        return value
    raise TypeError(
        f"farewell must be a ServerSentEvent, a dict, a str, bytes or None, got {shown(value)}"
    )


def _check_event(name: str, value: object) -> anyio.Event | None:
    # Duck-typed: the response only calls ``set()`` (an anyio, trio or asyncio event will do).
    if value is None or callable(getattr(value, "set", None)):
        return value  # type: ignore[return-value]
    raise TypeError(
        f"{name} must be an anyio.Event (anything with set()) or None, got {shown(value)}"
    )


class EventSourceResponse(Response):
    """A ``text/event-stream`` response, streamed under structured concurrency.

    ``content`` is, in order of preference:

    1. a **producer function** ``async def producer(send, *args)``: it runs in the response's
       own task group with the send end of a bounded memory channel (``max_buffer_size``
       items) and closes it (``async with send:``) to end the stream. It is cancelled when the
       client disconnects, when a send times out, or when the shutdown grace period ends;
    2. a **receive channel** (anyio ``MemoryObjectReceiveStream`` or trio
       ``MemoryReceiveChannel``): streamed until its send side is closed; the response closes
       the receive end when it is done ("nobody is listening");
    3. an **async iterable** (closed with ``aclose()`` when the stream ends) or a **sync
       iterable** (iterated in a worker thread), as in sse-starlette.

    Items may be ``ServerSentEvent``, ``dict`` (``ServerSentEvent``'s parameters; not mutated),
    ``bytes``/``memoryview`` (sent as-is) or anything else (``str()``-ed and sent as data).
    An item that cannot be encoded, or a producer that raises, is logged on the ``trio_sse``
    logger and ends the stream with a clean end of body.

    Options, with sse-starlette's names and meanings:

    * ``ping``: seconds of silence after which a keep-alive comment is sent (``None``: 15;
      ``0``: never). Pings are a deadline in the writer, not a task; any data resets the timer.
    * ``ping_message_factory``: returns the ``ServerSentEvent`` sent as a ping.
    * ``sep``: line end for events that have none of their own (``"\\r\\n"`` by default).
    * ``send_timeout``: seconds a send may take; when exceeded the producer is cancelled and
      the ASGI call raises :class:`SendTimeoutError`. ``None``: no limit (and no cancel scope).
    * ``data_sender_callable``: an ``async def`` run beside the producer, in a cancel scope of
      its own, cancelled when the stream ends (the content ended, shutdown, a disconnect).
    * ``client_close_handler_callable``: ``async def handler(message)`` awaited on disconnect.
    * ``shutdown``: the :class:`ShutdownToken` to obey (default: the process-wide token that
      the server integrations trigger); ``shutdown_event``: an ``anyio.Event`` set when the
      token triggers; ``shutdown_grace_period``: seconds the producer gets to finish (say
      goodbye, close its channel) before it is cancelled. The body always ends cleanly.
    * ``farewell``: an item (``ServerSentEvent``, dict, str or bytes) sent just before the
      body ends because of shutdown; ``farewell_retry``: a ``retry:`` hint sent then, in
      milliseconds, or a ``(low, high)`` range to pick from at random so that clients do not
      all reconnect at the same instant.
    * ``max_buffer_size``: capacity of the producer's channel (and of the buffer behind an
      iterable); ``cleanup_timeout``: the limit on closing an async iterable.
    * ``max_prefetch``: an iterable is never pulled more than this many items (default 16,
      ``DEFAULT_MAX_PREFETCH``) ahead of what the server accepted, so a disconnect loses at
      most that many; it also caps the events sent in one body message. Not for producer
      functions or channels, whose bound is their channel.
    * ``stream_limit``: a :class:`~trio_sse.StreamLimit` to count this stream against (default:
      the one :class:`~trio_sse.StreamLimitMiddleware` put in the scope, if any). When it is
      full the client is turned away (503 with ``Retry-After``, or a ``retry:`` hint, see
      ``StreamLimit``) before any header is sent, and the content is discarded as for ``HEAD``.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        content: Any,
        *args: Any,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = "text/event-stream",
        background: BackgroundTask | None = None,
        ping: float | None = None,
        sep: str | None = None,
        ping_message_factory: Callable[[], ServerSentEvent] | None = None,
        send_timeout: float | None = None,
        data_sender_callable: Callable[[], Awaitable[None]] | None = None,
        client_close_handler_callable: Callable[[Message], Awaitable[None]] | None = None,
        shutdown: ShutdownToken | None = None,
        shutdown_grace_period: float = 0,
        shutdown_event: anyio.Event | None = None,
        max_buffer_size: int = DEFAULT_MAX_BUFFER_SIZE,
        cleanup_timeout: float | None = DEFAULT_CLEANUP_TIMEOUT,
        farewell: object = None,
        farewell_retry: int | tuple[int, int] | None = None,
        stream_limit: StreamLimit | None = None,
        max_prefetch: int = DEFAULT_MAX_PREFETCH,
    ) -> None:
        source = classify(content, args)  # the content's kind, decided once
        self.max_prefetch = positive_int("max_prefetch", max_prefetch)
        self.stream_limit = optional_instance(
            "stream_limit", stream_limit, StreamLimit, "a trio_sse.StreamLimit"
        )
        self.sep = DEFAULT_SEPARATOR if sep is None else check_sep(sep)
        interval = seconds("ping", DEFAULT_PING_INTERVAL if ping is None else ping)
        self.ping_interval = interval
        timeout = seconds("send_timeout", send_timeout, allow_none=True, positive=True)
        self.send_timeout = timeout
        grace = seconds("shutdown_grace_period", shutdown_grace_period)
        shutdown = optional_instance("shutdown", shutdown, ShutdownToken, "a ShutdownToken")
        non_negative_int("max_buffer_size", max_buffer_size)
        optional_callable("ping_message_factory", ping_message_factory)
        optional_callable("data_sender_callable", data_sender_callable)
        optional_callable("client_close_handler_callable", client_close_handler_callable)
        shutdown_event = _check_event("shutdown_event", shutdown_event)
        self.status_code = status_code
        self.media_type = self.media_type if media_type is None else media_type
        self.background = background
        self.data_sender_callable = data_sender_callable
        self.client_close_handler_callable = client_close_handler_callable
        self.ping_message_factory = ping_message_factory
        self.shutdown = shutdown
        self.shutdown_event = shutdown_event
        self.shutdown_grace_period = grace
        self.max_buffer_size = max_buffer_size
        self.farewell = _check_farewell(farewell)
        self.farewell_retry = _check_retry_range(farewell_retry)

        merged = MutableHeaders()
        if headers is not None:
            merged.update(headers)
        # Proxies and browsers must not cache an event stream; a caller may still choose
        # another policy (a CDN fanning out one stream, say), so only a default.
        merged.setdefault("Cache-Control", "no-store")
        # nginx buffers proxied responses unless told not to; SSE must not be buffered.
        merged["X-Accel-Buffering"] = "no"
        self.init_headers(merged)

        self._spec = StreamSpec(
            content=source,
            sep=self.sep,
            ping_interval=interval,
            ping_factory=ping_message_factory,
            send_timeout=timeout,
            data_sender=data_sender_callable,
            client_close_handler=client_close_handler_callable,
            shutdown=shutdown,
            shutdown_event=shutdown_event,
            shutdown_grace_period=grace,
            max_buffer_size=max_buffer_size,
            cleanup_timeout=seconds("cleanup_timeout", cleanup_timeout, allow_none=True),
            farewell=farewell,
            farewell_retry=self.farewell_retry,
            max_prefetch=max_prefetch,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call. Returns when the stream is over and all its tasks finished."""
        chain_uvicorn_signals_automatically()  # see trio_sse.chain_uvicorn_signals
        limit = None
        if scope["type"] == "http":
            limit = self.stream_limit if self.stream_limit is not None else limit_from_scope(scope)
        if limit is not None and not limit.try_acquire():
            await self._turn_away(limit, scope, send)
        else:
            try:
                connection = await self._start(scope, receive, send)
                if connection is not None:
                    # Awaited here rather than inside ``_start``: one coroutine frame fewer
                    # kept by every open stream.
                    await connection.run()
            finally:
                # Whatever ended the stream (even a cancellation): the slot is free again.
                if limit is not None:
                    limit.release()
        if self.background is not None:
            await self.background()

    async def _start(self, scope: Scope, receive: Receive, send: Send) -> Connection | None:
        """Send the response's start; return the stream's connection to run, if it streams."""
        if scope["type"] == "websocket":
            # A websocket request is denied with this response's status and headers (the ASGI
            # websocket denial extension, as Starlette's responses do); the stream never starts.
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            await send({"type": "websocket.http.response.body", "body": b"", "more_body": False})
            await self._discard_content()
            return None
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
        except OSError:
            await self._discard_content()
            return None
        if scope.get("method") == "HEAD":
            # Headers only: the same headers as GET, and the stream never starts.
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            await self._discard_content()
            return None
        return Connection(self._spec, receive, send)  # type: ignore[arg-type]

    async def _turn_away(self, limit: StreamLimit, scope: Scope, send: Send) -> None:
        """The stream limit is full: answer at once (see ``StreamLimit.on_full``), never stream."""
        retry_after = limit.retry_after
        if limit.on_full == "retry":
            # An EventSource reconnects by itself after a stream that ends; a 503 would make it
            # give up for good. Jitter: rejected clients must not all return in the same instant.
            status = self.status_code
            headers = list(self.raw_headers)
            retry = None
            if retry_after is not None:
                retry = random.randint(retry_after * 1000, retry_after * 1500)
            body = ServerSentEvent(comment="too many event streams", retry=retry).encode(self.sep)
        else:
            status = 503
            body = b"Too many event streams; retry later.\n"
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("latin-1")),
                (b"cache-control", b"no-store"),
            ]
        if retry_after is not None:
            headers.append((b"retry-after", str(retry_after).encode("latin-1")))
        if scope.get("method") == "HEAD":
            body = b""
        try:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})
        except OSError:
            pass  # the client is gone already
        await self._discard_content()

    async def _discard_content(self) -> None:
        await self._spec.content.discard()
