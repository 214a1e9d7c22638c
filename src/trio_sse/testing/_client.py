"""The in-process streaming client behind ``trio_sse.testing``."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from starlette.datastructures import Headers

from .._decoder import EventDecoder
from .._events import ServerSentEvent

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[Message]],
        Callable[[Message], Awaitable[None]],
    ],
    Awaitable[None],
]

__all__ = ["EventStream", "open_event_stream"]


class EventStream:
    """One in-flight request to an ASGI app, as seen by the client.

    Created by :func:`open_event_stream`; do not instantiate it yourself.

    * ``status_code`` and ``headers`` (case-insensitive) of the response;
    * ``async for event in stream`` yields decoded :class:`ServerSentEvent` items as the app
      sends them (comments too when opened with ``comments=True``) and stops at the end of the
      body; :meth:`iter_bytes` yields the raw body chunks instead (use one or the other);
    * :meth:`disconnect` makes the app's next ``receive()`` return ``http.disconnect``;
    * ``complete`` tells whether the app finished the body with ``more_body: False``;
      ``body_messages`` counts the ``http.response.body`` messages received so far;
      ``last_event_id`` and ``retry`` come from the decoder.
    """

    def __init__(
        self,
        messages: MemoryObjectReceiveStream[Message],
        disconnected: anyio.Event,
        decoder: EventDecoder,
    ) -> None:
        self._messages = messages
        self._disconnected = disconnected
        self._decoder = decoder
        self._pending: collections.deque[ServerSentEvent] = collections.deque()
        self.status_code = 0
        self.headers = Headers()
        self.complete = False
        self.body_messages = 0
        self.ended = False

    @property
    def last_event_id(self) -> str:
        """The WHATWG "last event ID string" seen so far."""
        return self._decoder.last_event_id

    @property
    def retry(self) -> int | None:
        """The latest ``retry:`` value (milliseconds) seen so far."""
        return self._decoder.retry

    def disconnect(self) -> None:
        """Disconnect: the app's pending and future ``receive()`` calls get ``http.disconnect``.

        Not a checkpoint. The app is expected to stop soon; leaving the ``async with`` block
        waits for it.
        """
        self._disconnected.set()

    async def receive_body(self) -> bytes | None:
        """The next body chunk, or ``None`` once the body ended (or the app returned).

        A checkpoint: waits for the app to send.
        """
        while not self.ended:
            try:
                message = await self._messages.receive()
            except anyio.EndOfStream:
                self.ended = True
                break
            if message["type"] != "http.response.body":
                continue
            self.body_messages += 1
            if not message.get("more_body", False):
                self.complete = True
                self.ended = True
            body = bytes(message.get("body", b""))
            if body:
                return body
        return None

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        """Yield raw body chunks until the body ends."""
        while (chunk := await self.receive_body()) is not None:
            yield chunk

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> ServerSentEvent:
        while not self._pending:
            chunk = await self.receive_body()
            if chunk is None:
                raise StopAsyncIteration
            self._pending.extend(self._decoder.feed(chunk))
        return self._pending.popleft()

    async def read_events(self, count: int) -> list[ServerSentEvent]:
        """Read exactly *count* events (``EOFError`` if the body ends first). A checkpoint."""
        events: list[ServerSentEvent] = []
        while len(events) < count:
            try:
                events.append(await self.__anext__())
            except StopAsyncIteration:
                raise EOFError(f"the stream ended after {len(events)} of {count} events") from None
        return events


def _build_scope(
    path: str,
    method: str,
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None,
    scheme: str,
    client: tuple[str, int],
    scope_type: str,
) -> dict[str, Any]:
    raw_path, _, query = path.partition("?")
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    raw_headers = [(b"host", b"testserver")]
    raw_headers += [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in items
    ]
    return {
        "type": scope_type,
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method.upper(),
        "scheme": scheme,
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "headers": raw_headers,
        "client": client,
        "server": ("testserver", 80),
        "state": {},
        "extensions": {"websocket.http.response": {}} if scope_type == "websocket" else {},
    }


class _Exchange:
    """The server's side of one request: the app's ``receive``/``send`` and its outcome."""

    def __init__(self, app: ASGIApp, scope: dict[str, Any], body: bytes, buffered: int) -> None:
        self._app = app
        self._scope = scope
        self._body = body
        self._request_sent = False
        self._send_stream, self.messages = anyio.create_memory_object_stream[Message](buffered)
        self.disconnected = anyio.Event()
        self.failure: Exception | None = None

    async def _receive(self) -> Message:
        if not self._request_sent:
            self._request_sent = True
            return {"type": "http.request", "body": self._body, "more_body": False}
        await self.disconnected.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if self.disconnected.is_set():
            return  # like a server whose client has gone: the message is dropped
        try:
            await self._send_stream.send(dict(message))
        except anyio.BrokenResourceError:
            pass

    async def run_app(self) -> None:
        """Call the app; keep its exception for the host (a task never raises an ``Exception``,
        so the task group has nothing to wrap). Closes the send side when the app returns."""
        async with self._send_stream:
            try:
                await self._app(self._scope, self._receive, self._send)
            except Exception as exc:
                self.failure = exc

    async def first_message(self) -> Message | None:
        """The app's first message, ``None`` if it returned without one. A checkpoint."""
        try:
            return await self.messages.receive()
        except anyio.EndOfStream:
            return None

    async def finish(self) -> None:
        """Disconnect, then read and drop what the app still sends until it returns."""
        self.disconnected.set()
        async for _ in self.messages:
            pass

    def raise_outcome(self, start: Message | None, body_error: Exception | None) -> None:
        """Raise what the caller should see, never in an exception group.

        The app's exception first (with the ``async with`` body's exception, if any, as its
        ``__context__``, as if it had been raised while handling it), then the body's, then
        "the app did not start a response".
        """
        failure, self.failure = self.failure, None
        if failure is not None:
            if body_error is not None and body_error is not failure:
                failure.__context__ = body_error
            raise failure
        if body_error is not None:
            raise body_error
        if not _is_response_start(start):
            raise RuntimeError(f"the app did not start a response (first message: {start!r})")


def _is_response_start(message: Message | None) -> bool:
    return message is not None and str(message["type"]).endswith("http.response.start")


@asynccontextmanager
async def open_event_stream(
    app: ASGIApp,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    body: bytes = b"",
    comments: bool = False,
    max_buffered_messages: int = 16,
    scheme: str = "http",
    client: tuple[str, int] = ("127.0.0.1", 50000),
    scope_type: str = "http",
) -> AsyncIterator[EventStream]:
    """Call *app* with a request for *path* and yield an :class:`EventStream` once it responds.

    The app's lifespan is not run: to run it (and share its state with the request), pass
    the :class:`~trio_sse.testing.RunningApp` of :func:`~trio_sse.testing.open_app` as *app*.

    Entering waits for ``http.response.start`` (a checkpoint); an exception the app raises
    before that is raised here, as itself. Leaving disconnects, reads and drops whatever the
    app still sends, and waits for the app to return; an exception the app raised is re-raised
    then, as itself (never wrapped in an exception group; an exception of the ``async with``
    body is its ``__context__``). An exception of the body alone propagates unwrapped too.
    The app's ``send`` blocks once ``max_buffered_messages`` messages are unread, as a socket
    would for a client that stops reading. The app runs in a task of this context manager,
    which owns and closes both ends of the message channel.

    Guard every use with a timeout (``anyio.fail_after``): an app that never responds or never
    stops would otherwise hang the test.
    """
    scope = _build_scope(path, method, headers, scheme, client, scope_type)
    exchange = _Exchange(app, scope, body, max_buffered_messages)
    stream = EventStream(exchange.messages, exchange.disconnected, EventDecoder(comments=comments))
    body_error: Exception | None = None
    # Nothing but cancellation is raised inside the task group: errors are raised after it.
    async with anyio.create_task_group() as group, exchange.messages:
        group.start_soon(exchange.run_app)
        start = await exchange.first_message()
        if _is_response_start(start):
            assert start is not None
            stream.status_code = start["status"]
            stream.headers = Headers(raw=list(start.get("headers", [])))
            try:
                yield stream
            except Exception as exc:
                body_error = exc
            finally:
                await exchange.finish()
        else:
            exchange.disconnected.set()
            group.cancel_scope.cancel()  # an app that sent something else first is stopped
    exchange.raise_outcome(start, body_error)
