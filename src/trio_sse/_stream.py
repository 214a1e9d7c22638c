"""The per-connection loop: one writer, pings as a deadline, disconnect, shutdown.

One ``_Connection`` serves one ASGI call.  Its tasks live in one task group that the call
owns, so nothing outlives the response:

* the **writer** is the ASGI call's own task.  It is the only task that calls ``send``, so
  pings and events are never sent concurrently.  It drains every item that is already
  waiting (up to ~64 KiB) into one ``http.response.body`` message — coalescing only what is
  ready, never waiting to fill a batch — and waits for the next item with a single cancel
  scope whose deadline is the next ping (or the end of the shutdown grace period);
* the **listener** waits for ``http.disconnect`` and then cancels the whole group;
* the **producer** (a producer function, or a pump for an iterable) feeds a bounded memory
  channel; a receive channel given as content needs no task at all.

Shutdown needs no task either: the token calls back into this loop (see ``_shutdown``).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._errors import SendTimeoutError
from ._events import ServerSentEvent, encode_item
from ._hooks import install_server_hooks
from ._loop import running_under_trio
from ._shutdown import ShutdownToken, _current, default_shutdown_token

logger = logging.getLogger("trio_sse")

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Ready events are gathered into one ASGI message up to about this many bytes: the per-message
# cost of the server (tens of microseconds on hypercorn's trio worker) is what limits
# throughput, not the size of the body.
_BATCH_BYTES = 64 * 1024

# How long a server-cancelled stream may take to send its last message, shielded.
_CLOSING_SEND_TIMEOUT = 1.0

_END = "end"
_SHUTDOWN = "shutdown"
_FAILED = "failed"


class _ClientGone(Exception):
    """``send`` raised ``OSError``: the client disconnected (ASGI 2.4 servers)."""


class Source:
    """What the writer reads: a memory channel's non-blocking and blocking receive.

    Normalises anyio's (``WouldBlock``/``EndOfStream``) and trio's (``WouldBlock``/
    ``EndOfChannel``) exceptions so that the writer loop is written once.
    """

    __slots__ = ("close", "end", "receive", "receive_nowait", "would_block")

    def __init__(
        self,
        receive_nowait: Callable[[], object],
        receive: Callable[[], Awaitable[object]],
        would_block: type[BaseException],
        end: tuple[type[BaseException], ...],
        close: Callable[[], None],
    ) -> None:
        self.receive_nowait = receive_nowait
        self.receive = receive
        self.would_block = would_block
        self.end = end
        self.close = close

    @classmethod
    def from_anyio(cls, stream: MemoryObjectReceiveStream[Any]) -> Source:
        return cls(
            stream.receive_nowait,
            stream.receive,
            anyio.WouldBlock,
            (anyio.EndOfStream, anyio.ClosedResourceError),
            stream.close,
        )

    @classmethod
    def from_trio(cls, channel: Any) -> Source:
        import trio

        return cls(
            channel.receive_nowait,
            channel.receive,
            trio.WouldBlock,
            (trio.EndOfChannel, trio.ClosedResourceError),
            channel.close,
        )


class StreamSpec:
    """Everything a response decided at construction; shared by all its ASGI calls."""

    __slots__ = (
        "args",
        "cleanup_timeout",
        "client_close_handler",
        "content",
        "data_sender",
        "farewell",
        "farewell_retry",
        "kind",
        "max_buffer_size",
        "ping_bytes",
        "ping_factory",
        "ping_interval",
        "send_timeout",
        "sep",
        "shutdown",
        "shutdown_event",
        "shutdown_grace_period",
    )

    def __init__(
        self,
        *,
        kind: str,
        content: Any,
        args: tuple[Any, ...],
        sep: str,
        ping_interval: float,
        ping_factory: Callable[[], ServerSentEvent] | None,
        send_timeout: float | None,
        data_sender: Callable[[], Awaitable[None]] | None,
        client_close_handler: Callable[[Message], Awaitable[None]] | None,
        shutdown: ShutdownToken | None,
        shutdown_event: anyio.Event | None,
        shutdown_grace_period: float,
        max_buffer_size: int,
        cleanup_timeout: float | None,
        farewell: object = None,
        farewell_retry: int | tuple[int, int] | None = None,
    ) -> None:
        self.kind = kind
        self.farewell = farewell
        self.farewell_retry = farewell_retry
        self.content = content
        self.args = args
        self.sep = sep
        self.ping_interval = ping_interval
        self.ping_factory = ping_factory
        self.ping_bytes = ServerSentEvent(comment="ping").encode(sep)
        self.send_timeout = send_timeout
        self.data_sender = data_sender
        self.client_close_handler = client_close_handler
        self.shutdown = shutdown
        self.shutdown_event = shutdown_event
        self.shutdown_grace_period = shutdown_grace_period
        self.max_buffer_size = max_buffer_size
        self.cleanup_timeout = cleanup_timeout


PRODUCER = "producer"
ANYIO_CHANNEL = "anyio-channel"
TRIO_CHANNEL = "trio-channel"
ASYNC_ITERABLE = "async-iterable"
SYNC_ITERABLE = "sync-iterable"


class Connection:
    """The state of one streaming ASGI call. Created and run by ``EventSourceResponse``."""

    def __init__(self, spec: StreamSpec, receive: Receive, send: Send) -> None:
        self._spec = spec
        self._receive = receive
        self._send = send
        self._disconnected = False
        self._wait_scope: anyio.CancelScope | None = None
        self._shutdown_requested = False
        self._grace_deadline = math.inf
        self._group: anyio.abc.TaskGroup | None = None
        self._producer_scope = anyio.CancelScope()
        self._finished = False
        self._closing = False
        self._listener_scope = anyio.CancelScope()

    # -- public entry -------------------------------------------------------------------------

    async def run(self) -> None:
        """Stream until the content ends, the client leaves, shutdown ends it, or a send fails.

        Returns normally after a clean end of body (``more_body: False``) or a client
        disconnect; raises ``SendTimeoutError`` when a send timed out. Every task it started
        has finished when it returns. Cancelled from outside (a server's own shutdown timer,
        as in ``hypercorn -k trio``), it still finishes the body cleanly, briefly shielded,
        before the cancellation goes on.
        """
        spec = self._spec
        install_server_hooks()  # first: it may replace a spent default token
        token = spec.shutdown if spec.shutdown is not None else default_shutdown_token()
        source, feed = self._open_source()
        timed_out: SendTimeoutError | None = None
        context_token = _current.set(token)
        token._stream_started()
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                group.start_soon(self._listen)
                if feed is not None:
                    group.start_soon(self._run_in_producer_scope, feed)
                if spec.data_sender is not None:
                    group.start_soon(self._run_in_producer_scope, spec.data_sender)
                with token._watch(self._on_shutdown):
                    try:
                        outcome = await self._write(source)
                    except SendTimeoutError as exc:
                        timed_out = exc
                        group.cancel_scope.cancel()
                        outcome = None
                    except _ClientGone:
                        self._disconnected = True
                        group.cancel_scope.cancel()
                        outcome = None
                if outcome is not None:
                    if token.triggered:
                        # The producer may have seen ``token.triggered`` and closed its channel
                        # before the token's wake-up reached this loop (under trio it runs in
                        # a later batch than the trigger): the stream still ends for shutdown.
                        self._on_shutdown()
                    if outcome != _END:
                        # Shutdown grace over, or a bad item: the producer is cancelled. At a
                        # normal end it closed its channel itself and may still be cleaning up.
                        self._producer_scope.cancel()
                    try:
                        await self._finish_body()
                    except SendTimeoutError as exc:
                        timed_out = exc
                        group.cancel_scope.cancel()
                    except _ClientGone:
                        self._disconnected = True
                    self._listener_scope.cancel()
        except anyio.get_cancelled_exc_class():
            if not self._finished and not self._disconnected:
                # Cancelled by the server (its graceful timeout): a clean end of body still
                # beats a cut chunked stream, which clients report as a protocol error.
                with anyio.move_on_after(_CLOSING_SEND_TIMEOUT, shield=True):
                    self._shutdown_requested = True
                    try:
                        await self._finish_body()
                    except (SendTimeoutError, _ClientGone):
                        pass
            raise
        finally:
            token._stream_finished()
            _current.reset(context_token)
            source.close()
        if timed_out is not None:
            raise timed_out

    async def _finish_body(self) -> None:
        """Send the last body message: the farewell (when ending for shutdown), then EOF."""
        body = self._farewell() if self._shutdown_requested else b""
        # From here on, an ``http.disconnect`` is the server saying that this response is
        # complete (hypercorn delivers it from inside this very send), not the client leaving.
        self._closing = True
        await self._send_message({"type": "http.response.body", "body": body, "more_body": False})
        self._finished = True

    def _farewell(self) -> bytes:
        spec = self._spec
        parts: list[bytes] = []
        if spec.farewell is not None:
            try:
                parts.append(encode_item(spec.farewell, spec.sep))
            except Exception:
                logger.exception("trio_sse: the shutdown farewell could not be encoded")
        retry = spec.farewell_retry
        if retry is not None:
            # Spread reconnections: thousands of clients told the same delay would come back
            # in the same instant (to another instance behind the load balancer).
            delay = retry if isinstance(retry, int) else random.randint(retry[0], retry[1])
            parts.append(ServerSentEvent(retry=delay).encode(spec.sep))
        return b"".join(parts)

    # -- tasks --------------------------------------------------------------------------------

    def _open_source(self) -> tuple[Source, Callable[[], Awaitable[None]] | None]:
        spec = self._spec
        kind = spec.kind
        if kind == ANYIO_CHANNEL:
            return Source.from_anyio(spec.content), None
        if kind == TRIO_CHANNEL:
            if not running_under_trio():
                raise RuntimeError(
                    "a trio MemoryReceiveChannel can only be streamed under trio; "
                    "use anyio.create_memory_object_stream() for code that runs on asyncio"
                )
            return Source.from_trio(spec.content), None
        send_stream, receive_stream = anyio.create_memory_object_stream[Any](spec.max_buffer_size)
        if kind == PRODUCER:

            async def feed() -> None:
                async with send_stream:
                    await spec.content(send_stream, *spec.args)

        elif kind == ASYNC_ITERABLE:

            async def feed() -> None:
                await self._pump_async(spec.content, send_stream)

        else:

            async def feed() -> None:
                await self._pump_sync(spec.content, send_stream)

        return Source.from_anyio(receive_stream), feed

    async def _run_in_producer_scope(self, function: Callable[[], Awaitable[None]]) -> None:
        with self._producer_scope:
            try:
                await function()
            except Exception:
                # The stream still ends cleanly: the writer sends what was produced before the
                # error, then finishes the body; the browser will reconnect.
                logger.exception("trio_sse: the stream's producer raised; ending the stream")

    async def _pump_async(
        self, iterable: AsyncIterable[Any], send_stream: MemoryObjectSendStream[Any]
    ) -> None:
        iterator = aiter(iterable)
        try:
            async with send_stream:
                async for item in iterator:
                    await send_stream.send(item)
        finally:
            # Cancelled while the generator sat at a ``yield``: it is suspended, not finished,
            # and only aclose() runs its ``finally`` now instead of at garbage collection.
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with anyio.move_on_after(
                    _timeout(self._spec.cleanup_timeout), shield=True
                ) as scope:
                    await aclose()
                if scope.cancelled_caught:
                    logger.warning("trio_sse: closing the stream's async iterator timed out")

    async def _pump_sync(
        self, iterable: Iterable[Any], send_stream: MemoryObjectSendStream[Any]
    ) -> None:
        iterator = iter(iterable)
        done = object()
        try:
            async with send_stream:
                while True:
                    # One worker-thread call per item: a blocking iterator never blocks the loop.
                    # The call is not abandoned on cancellation (the thread would keep running
                    # the iterator), so a disconnect waits for the current next() to return.
                    item = await anyio.to_thread.run_sync(next, iterator, done)
                    if item is done:
                        break
                    await send_stream.send(item)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(close)

    async def _listen(self) -> None:
        with self._listener_scope:
            receive = self._receive
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    break
            if self._closing:
                # Not a disconnect: cancelling now would cut the server's own bookkeeping of
                # the final send short (hypercorn-trio then never restarts the keep-alive
                # timer of the connection, which stays open until the server stops).
                return
            self._disconnected = True
            handler = self._spec.client_close_handler
            if handler is not None:
                try:
                    await handler(message)
                except Exception:
                    logger.exception("trio_sse: client_close_handler_callable raised")
            assert self._group is not None
            self._group.cancel_scope.cancel()

    def _on_shutdown(self) -> None:
        # Called in this connection's loop (scheduled by the token), never concurrently with
        # the writer. Start the cooperative phase and wake the writer so it arms the grace timer.
        if self._shutdown_requested:
            return
        self._shutdown_requested = True
        event = self._spec.shutdown_event
        if event is not None:
            event.set()
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    # -- the writer ---------------------------------------------------------------------------

    async def _send_message(self, message: Message) -> None:
        timeout = self._spec.send_timeout
        try:
            if timeout is None:
                await self._send(message)
                return
            with anyio.move_on_after(timeout) as scope:
                await self._send(message)
        except OSError as exc:
            raise _ClientGone from exc
        if scope.cancelled_caught:
            raise SendTimeoutError(f"sending to the client took longer than {timeout} s")

    async def _write(self, source: Source) -> str:
        spec = self._spec
        sep = spec.sep
        receive_nowait = source.receive_nowait
        receive = source.receive
        would_block = source.would_block
        end = source.end
        send_message = self._send_message
        clock = anyio.current_time
        ping = spec.ping_interval
        next_ping = clock() + ping if ping else math.inf
        batch: list[bytes] = []
        size = 0
        while True:
            ended = False
            failed = False
            try:
                while size < _BATCH_BYTES:
                    chunk = encode_item(receive_nowait(), sep)
                    batch.append(chunk)
                    size += len(chunk)
            except would_block:
                pass
            except end:
                ended = True
            except Exception:
                logger.exception("trio_sse: a stream item could not be encoded; ending the stream")
                failed = True
            if batch:
                body = batch[0] if len(batch) == 1 else b"".join(batch)
                batch = []
                await send_message({"type": "http.response.body", "body": body, "more_body": True})
                if ping:
                    next_ping = clock() + ping
            if failed:
                return _FAILED
            if ended:
                return _END
            if self._shutdown_requested:
                if self._grace_deadline == math.inf:
                    self._grace_deadline = clock() + spec.shutdown_grace_period
                if clock() >= self._grace_deadline:
                    return _SHUTDOWN
            if size >= _BATCH_BYTES:
                size = 0
                continue
            size = 0
            # Nothing is ready: wait for the next item, the next ping, or the grace deadline.
            with anyio.CancelScope(deadline=min(next_ping, self._grace_deadline)) as scope:
                self._wait_scope = scope
                try:
                    item = await receive()
                except end:
                    return _END
                finally:
                    self._wait_scope = None
            if scope.cancelled_caught:
                if clock() >= next_ping:
                    factory = spec.ping_factory
                    if factory is None:
                        ping_bytes = spec.ping_bytes
                    else:
                        try:
                            ping_bytes = encode_item(factory(), sep)
                        except Exception:
                            logger.exception(
                                "trio_sse: ping_message_factory failed; ending the stream"
                            )
                            return _FAILED
                    await send_message(
                        {"type": "http.response.body", "body": ping_bytes, "more_body": True}
                    )
                    next_ping = clock() + ping
                continue
            try:
                chunk = encode_item(item, sep)
            except Exception:
                logger.exception("trio_sse: a stream item could not be encoded; ending the stream")
                return _FAILED
            batch.append(chunk)
            size = len(chunk)


def _timeout(value: float | None) -> float:
    return math.inf if value is None else value
