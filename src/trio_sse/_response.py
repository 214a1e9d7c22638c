"""``EventSourceResponse``: the Starlette face of the stream loop in ``_stream``."""

from __future__ import annotations

import enum
import inspect
import logging
import random
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from starlette.background import BackgroundTask
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ._errors import AccessError
from ._events import DEFAULT_SEPARATOR, ServerSentEvent
from ._hooks import OnClose, OnOpen, StreamHooks, make_observer
from ._json import JSONDumps, json_dumps_is_current, using_json_dumps
from ._limit import StreamLimit, limit_from_scope
from ._options import (
    Option,
    check_duration,
    check_event,
    check_farewell,
    check_retry_range,
    check_sep_or_default,
)
from ._prefetch import DEFAULT_MAX_PREFETCH as DEFAULT_MAX_PREFETCH
from ._server_signals import chain_server_signals_automatically
from ._shutdown import ShutdownToken
from ._sources import Content, classify
from ._stream import Connection, Message, StreamSpec, report_unopened
from ._validate import (
    non_negative_int,
    optional_callable,
    optional_instance,
    positive_int,
    seconds,
)

__all__ = ["EventSourceResponse"]

DEFAULT_PING_INTERVAL = 15
DEFAULT_MAX_BUFFER_SIZE = 256
DEFAULT_CLEANUP_TIMEOUT = 30.0
DEFAULT_DISCONNECT_GRACE_PERIOD = 1.0

logger = logging.getLogger("trio_sse")


class _Default(enum.Enum):
    """``cleanup_timeout``'s "not given" (``None`` means no limit): the class's default."""

    DEFAULT = "default"


_DEFAULT = _Default.DEFAULT


def _adapt_for_route(content: Content, scope: Scope, response_class: type) -> Content:
    if "fastapi.routing" not in sys.modules:  # only FastAPI's routes need it: never import it
        return content
    from ._fastapi_items import adapt_for_route

    return adapt_for_route(content, scope, response_class)


def _optional_seconds(name: str, value: object) -> float | None:
    return seconds(name, value, allow_none=True)


def _optional_positive_seconds(name: str, value: object) -> float | None:
    return seconds(name, value, allow_none=True, positive=True)


def _check_token(name: str, value: object) -> ShutdownToken | None:
    return optional_instance(name, value, ShutdownToken, "a ShutdownToken")


def _check_limit(name: str, value: object) -> StreamLimit | None:
    return optional_instance(name, value, StreamLimit, "a trio_sse.StreamLimit")


def _check_hooks(name: str, value: object) -> StreamHooks | None:
    hooks = optional_instance(name, value, StreamHooks, "a trio_sse.StreamHooks")
    if hooks is not None and inspect.iscoroutinefunction(hooks.on_send):
        # The writer calls it after every body message and never awaits it.
        raise TypeError(f"{name}.on_send must be a plain (sync) method, not async")
    return hooks


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
    ``bytes``/``memoryview`` (sent as-is), a Pydantic model or dataclass instance (sent as JSON
    data, with ``json_dumps``) or anything else (``str()``-ed and sent as data).
    An item that cannot be encoded, or a producer that raises, is logged on the ``trio_sse``
    logger and ends the stream with a clean end of body.

    As ``response_class`` of a FastAPI path operation that ``yield``s, items mean what they
    mean to ``fastapi.sse``: events are sent as they are, anything else is JSON data, checked
    against the declared item type (``-> AsyncIterator[Tick]``); see ``trio_sse.fastapi``.

    Options, with sse-starlette's names and meanings. Each is also an attribute (``ping`` is
    ``ping_interval``), readable and settable after construction and checked on set as in the
    constructor (a wrong type is a ``TypeError``, a bad value a ``ValueError``, naming the
    option); the stream reads them when its ASGI call starts. ``DEFAULT_PING_INTERVAL``,
    ``DEFAULT_SEPARATOR`` and ``DEFAULT_CLEANUP_TIMEOUT`` are class attributes, as in
    sse-starlette (a subclass may change them):

    * ``ping``: seconds of silence after which a keep-alive comment is sent (``None``: 15;
      ``0``: never). Pings are a deadline in the writer, not a task; any data resets the timer.
    * ``ping_message_factory``: returns the ``ServerSentEvent`` sent as a ping.
    * ``sep``: line end for events that have none of their own (``"\\r\\n"`` by default).
    * ``send_timeout``: seconds a send may take; when exceeded the producer is cancelled and
      the ASGI call raises :class:`SendTimeoutError`. ``None``: no limit (and no cancel scope).
    * ``data_sender_callable``: an ``async def`` run beside the producer, in a cancel scope of
      its own, cancelled when the stream ends (the content ended, shutdown, a disconnect).
    * ``client_close_handler_callable``: ``async def handler(message)`` awaited on disconnect.
    * ``disconnect_grace_period``: when the client leaves, the producer (a producer function,
      or the pump of an iterable) is not cancelled at once: its channel is closed, so that its
      next ``send`` raises ``anyio.BrokenResourceError`` (taken by the response as a normal
      end: nothing is logged) and its ``async with`` blocks clean up un-cancelled (a database
      session returns its connection to the pool). It is cancelled if it still runs this many
      seconds later (``None``: ``DEFAULT_DISCONNECT_GRACE_PERIOD``, 1 s; ``0``: at once,
      as in sse-starlette). The ASGI call returns when the producer has finished.
    * ``shutdown``: the :class:`ShutdownToken` to obey (default: the process-wide token that
      the server integrations trigger); ``shutdown_event``: an ``anyio.Event`` set when the
      token triggers; ``shutdown_grace_period``: seconds the producer gets to finish (say
      goodbye, close its channel) before it is cancelled. The body always ends cleanly.
    * ``max_duration``: seconds after which the stream ends (``None``: never), or a
      ``(low, high)`` range to pick each stream's lifetime from at random, so that streams
      opened together do not all end and reconnect together. It ends as shutdown does, with
      the ``farewell`` and ``farewell_retry``, but at once: the producer is cancelled without
      a grace period. A client reconnects by itself (with ``Last-Event-ID``): this bounds how
      long a credential checked at connection time goes on being trusted
      (:func:`~trio_sse.seconds_until` turns an expiry time into a lifetime).
    * ``farewell``: an item (``ServerSentEvent``, dict, str or bytes) sent just before the
      body ends because of shutdown or ``max_duration``; ``farewell_retry``: a ``retry:``
      hint sent then, in milliseconds, or a ``(low, high)`` range to pick from at random so
      that clients do not all reconnect at the same instant.
    * ``max_buffer_size``: capacity of the producer's channel (and of the buffer behind an
      iterable; ``None``: ``DEFAULT_MAX_BUFFER_SIZE``); ``cleanup_timeout``: the limit on
      closing an async iterable (``None``: no limit; not given: ``DEFAULT_CLEANUP_TIMEOUT``).
    * ``max_prefetch``: an iterable is never pulled more than this many items (default 16,
      ``DEFAULT_MAX_PREFETCH``) ahead of what the server accepted, so a disconnect loses at
      most that many; it also caps the events sent in one body message. Not for producer
      functions or channels, whose bound is their channel.
    * ``stream_limit``: a :class:`~trio_sse.StreamLimit` to count this stream against (default:
      the one :class:`~trio_sse.StreamLimitMiddleware` put in the scope, if any). When it is
      full the client is turned away (503 with ``Retry-After``, or a ``retry:`` hint, see
      ``StreamLimit``) before any header is sent, and the content is discarded as for ``HEAD``.
    * ``json_dumps``: a callable ``(obj) -> str | bytes`` (``orjson.dumps``...) for the JSON the
      stream writes: models given as items or as a dict item's ``data``, and every
      ``JSONServerSentEvent`` built without its own ``json_dumps`` inside the stream's tasks.
    * ``on_open``: ``hook(info)`` called when the stream starts, with a
      :class:`~trio_sse.StreamInfo` (route, path, client, start time); ``on_close``:
      ``hook(info, closed)`` called when it ends, with a :class:`~trio_sse.StreamClosed`
      (a :class:`~trio_sse.CloseReason`, the events and bytes sent, the duration); ``hooks``:
      a :class:`~trio_sse.StreamHooks` object with both and ``on_send`` (default:
      ``DEFAULT_HOOKS``). Sync or async; a hook that raises is logged and the stream goes on.
      Without any, nothing is counted.
    """

    media_type = "text/event-stream"
    _routed = False  # the content was adapted to its route (see ``__call__``)

    DEFAULT_PING_INTERVAL: float = DEFAULT_PING_INTERVAL  # a subclass may give 0.5
    """Seconds between pings when ``ping`` is ``None`` (15, as in sse-starlette)."""
    DEFAULT_SEPARATOR = DEFAULT_SEPARATOR
    """The line end when ``sep`` is ``None``: ``"\\r\\n"``."""
    DEFAULT_CLEANUP_TIMEOUT = DEFAULT_CLEANUP_TIMEOUT
    """The default ``cleanup_timeout``, in seconds."""
    DEFAULT_MAX_BUFFER_SIZE = DEFAULT_MAX_BUFFER_SIZE
    """The default ``max_buffer_size``."""
    DEFAULT_DISCONNECT_GRACE_PERIOD = DEFAULT_DISCONNECT_GRACE_PERIOD
    """The default ``disconnect_grace_period``, in seconds (1)."""
    DEFAULT_HOOKS: StreamHooks | None = None
    """The ``hooks`` when none are given: a subclass may observe all its streams."""

    # The options, readable and settable after construction (as in sse-starlette), checked on
    # set like in the constructor; the stream reads them when its ASGI call starts.
    sep: Option[str] = Option(check_sep_or_default)
    ping_interval: Option[float] = Option(seconds)
    ping_message_factory: Option[Callable[[], ServerSentEvent] | None] = Option(optional_callable)
    send_timeout: Option[float | None] = Option(_optional_positive_seconds)
    data_sender_callable: Option[Callable[[], Awaitable[None]] | None] = Option(optional_callable)
    client_close_handler_callable: Option[Callable[[Message], Awaitable[None]] | None] = Option(
        optional_callable
    )
    shutdown: Option[ShutdownToken | None] = Option(_check_token)
    shutdown_event: Option[anyio.Event | None] = Option(check_event)
    shutdown_grace_period: Option[float] = Option(seconds)
    max_buffer_size: Option[int] = Option(non_negative_int)
    cleanup_timeout: Option[float | None] = Option(_optional_seconds)
    farewell: Option[object] = Option(check_farewell)
    farewell_retry: Option[int | tuple[int, int] | None] = Option(check_retry_range)
    stream_limit: Option[StreamLimit | None] = Option(_check_limit)
    max_prefetch: Option[int] = Option(positive_int)
    json_dumps: Option[JSONDumps | None] = Option(optional_callable)
    max_duration: Option[float | tuple[float, float] | None] = Option(check_duration)
    disconnect_grace_period: Option[float] = Option(seconds)
    on_open: Option[OnOpen | None] = Option(optional_callable)
    on_close: Option[OnClose | None] = Option(optional_callable)
    hooks: Option[StreamHooks | None] = Option(_check_hooks)

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
        max_buffer_size: int | None = None,
        cleanup_timeout: float | _Default | None = _DEFAULT,
        farewell: object = None,
        farewell_retry: int | tuple[int, int] | None = None,
        stream_limit: StreamLimit | None = None,
        max_prefetch: int = DEFAULT_MAX_PREFETCH,
        json_dumps: JSONDumps | None = None,
        max_duration: float | tuple[float, float] | None = None,
        disconnect_grace_period: float | None = None,
        on_open: OnOpen | None = None,
        on_close: OnClose | None = None,
        hooks: StreamHooks | None = None,
    ) -> None:
        self._source = classify(content, args)  # the content's kind, decided once
        # Each option is checked by its descriptor (see ``_options``). ``ping`` is stored as
        # ``ping_interval`` (sse-starlette's attribute) but an error names the argument given.
        self._ping_interval = seconds("ping", self.DEFAULT_PING_INTERVAL if ping is None else ping)
        self.sep = self.DEFAULT_SEPARATOR if sep is None else sep
        self.ping_message_factory = ping_message_factory
        self.send_timeout = send_timeout
        self.data_sender_callable = data_sender_callable
        self.client_close_handler_callable = client_close_handler_callable
        self.shutdown = shutdown
        self.shutdown_event = shutdown_event
        self.shutdown_grace_period = shutdown_grace_period
        self.max_buffer_size = (
            self.DEFAULT_MAX_BUFFER_SIZE if max_buffer_size is None else max_buffer_size
        )
        self.cleanup_timeout = (
            self.DEFAULT_CLEANUP_TIMEOUT if cleanup_timeout is _DEFAULT else cleanup_timeout
        )
        self.farewell = farewell
        self.farewell_retry = farewell_retry
        self.stream_limit = stream_limit
        self.max_prefetch = max_prefetch
        self.json_dumps = json_dumps
        self.max_duration = max_duration
        self.disconnect_grace_period = (
            self.DEFAULT_DISCONNECT_GRACE_PERIOD
            if disconnect_grace_period is None
            else disconnect_grace_period
        )
        self.on_open = on_open
        self.on_close = on_close
        self.hooks = self.DEFAULT_HOOKS if hooks is None else hooks
        self.status_code = status_code
        self.media_type = self.media_type if media_type is None else media_type
        self.background = background

        merged = MutableHeaders()
        if headers is not None:
            merged.update(headers)
        # Proxies and browsers must not cache an event stream; a caller may still choose
        # another policy (a CDN fanning out one stream, say), so only a default.
        merged.setdefault("Cache-Control", "no-store")
        # nginx buffers proxied responses unless told not to; SSE must not be buffered.
        merged["X-Accel-Buffering"] = "no"
        self.init_headers(merged)

    def _stream_spec(self) -> StreamSpec:
        """The stream's spec, from the options as they are now (when an ASGI call starts)."""
        return StreamSpec(
            content=self._source,
            sep=self.sep,
            ping_interval=self.ping_interval,
            ping_factory=self.ping_message_factory,
            send_timeout=self.send_timeout,
            data_sender=self.data_sender_callable,
            client_close_handler=self.client_close_handler_callable,
            shutdown=self.shutdown,
            shutdown_event=self.shutdown_event,
            shutdown_grace_period=self.shutdown_grace_period,
            max_buffer_size=self.max_buffer_size,
            cleanup_timeout=self.cleanup_timeout,
            farewell=self.farewell,
            farewell_retry=self.farewell_retry,
            max_prefetch=self.max_prefetch,
            max_duration=self.max_duration,
            disconnect_grace_period=self.disconnect_grace_period,
            observer=make_observer(self.on_open, self.on_close, self.hooks),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI call. Returns when the stream is over and all its tasks finished.

        A trio channel given as content under asyncio raises ``RuntimeError`` before anything
        is sent: the server answers 500, not a 200 whose body breaks off.
        """
        if "route" in scope and not self._routed:
            # A FastAPI ``yield`` path operation handed us its generator: its items are values
            # to send as JSON, with fastapi.sse's meanings (``_fastapi_items``).
            self._routed = True
            self._source = _adapt_for_route(self._source, scope, type(self))
        self._source.check_runnable()
        chain_server_signals_automatically()  # uvicorn, granian, daphne: _server_signals
        limit = None
        if scope["type"] == "http":
            limit = self.stream_limit if self.stream_limit is not None else limit_from_scope(scope)
        if limit is not None and not limit.try_acquire():
            await self._turn_away(limit, scope, send)
        else:
            try:
                if self._source.opens_channel and scope["type"] == "http":
                    await self._serve_opened(scope, receive, send)
                else:
                    connection = await self._start(scope, receive, send)
                    if connection is not None:
                        # Awaited here rather than inside ``_start``: one coroutine frame fewer
                        # kept by every open stream. The stream's tasks inherit its json_dumps.
                        if json_dumps_is_current(self.json_dumps):
                            await connection.run()
                        else:
                            with using_json_dumps(self.json_dumps):
                                await connection.run()
            finally:
                # Whatever ended the stream (even a cancellation): the slot is free again.
                if limit is not None:
                    limit.release()
        if self.background is not None:
            await self.background()

    async def _serve_opened(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A ``DirectSource`` (``hub.stream``): open its channel, then start the response.

        Opened before anything is sent, so that a subscription its hub refuses
        (:class:`AccessError`: forbidden, a failing or hanging ``authorize`` hook) is answered
        with that status, never with a 200 stream. Any other failure to open (Redis
        unreachable) is logged and ends a 200 body at once, which an ``EventSource``
        retries. Leaving closes the channel (unsubscribes), after the stream ended.
        """
        # Entered and left by hand rather than in an ``AsyncExitStack``: the stack, its deque
        # of callbacks and its bound ``__aexit__`` were kept by every open stream (~0.7 KiB,
        # issue 18). It is left as ``async with`` leaves: told what ended the stream.
        manager = self._source.open_channel()
        try:
            channel = await manager.__aenter__()
        except AccessError as exc:
            await self._refuse(exc, scope, send)
            return
        except Exception as exc:
            report_unopened(exc, scope)  # one line per kind of failure per interval
            connection = await self._start(scope, receive, send)
            if connection is not None:
                await self._running(connection, None)
            return
        try:
            connection = await self._start(scope, receive, send)
            if connection is not None:
                await self._running(connection, channel)
        except BaseException as exc:
            if not await manager.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await manager.__aexit__(None, None, None)

    def _running(
        self, connection: Connection, channel: MemoryObjectReceiveStream[Any] | None
    ) -> Awaitable[None]:
        """``connection.run(channel)``, in this response's ``json_dumps``: a coroutine of its
        own only when it must set it (one frame fewer kept by every other open stream)."""
        if json_dumps_is_current(self.json_dumps):
            return connection.run(channel)
        return self._run_with_json_dumps(connection, channel)

    async def _run_with_json_dumps(
        self, connection: Connection, channel: MemoryObjectReceiveStream[Any] | None
    ) -> None:
        with using_json_dumps(self.json_dumps):  # the stream's tasks inherit it
            await connection.run(channel)

    async def _refuse(self, error: AccessError, scope: Scope, send: Send) -> None:
        """Answer *error*'s status, plain text, before any stream header (see ``_access``).

        The body is the status's reason only: the hook's message (the topic) is not shown.
        """
        body = b"" if scope.get("method") == "HEAD" else f"{error.reason}\n".encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("latin-1")),
            (b"cache-control", b"no-store"),
        ]
        try:
            await send(
                {"type": "http.response.start", "status": error.status_code, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body, "more_body": False})
        except OSError:
            pass  # the client is gone already

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
        return Connection(self._stream_spec(), receive, send, scope)  # type: ignore[arg-type]

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
        await self._source.discard()
