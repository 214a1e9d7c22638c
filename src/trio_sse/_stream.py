"""The per-connection loop: one writer, pings as a deadline, disconnect, shutdown.

One ``_Connection`` serves one ASGI call.  Its tasks live in one task group that the call
owns, so nothing outlives the response. The group and the cancel scopes come from the loop's
kit (``_asynclib``): under trio a trio nursery and trio's own scopes, without anyio's
wrappers (no ``TaskHandle`` with its scope and event per task: about 14 objects and 1.4 KiB
fewer per open stream, issue 18); under asyncio anyio's scopes, and a native
``asyncio.TaskGroup`` in one anyio scope (``_asyncio_group``: 14 objects and 2.2 KB fewer)
unless a task runs code that may rely on anyio's shields (a producer, a data sender, a
close handler), which keeps anyio's group:

* the **writer** is the ASGI call's own task.  It is the only task that calls ``send``, so
  pings and events are never sent concurrently.  It drains every item that is already
  waiting (up to ~64 KiB) into one ``http.response.body`` message — coalescing only what is
  ready, never waiting on a timer to fill a batch (the policy is ``_batch.Batch``, pure and
  tested without a loop) — and parks in the
  channel's ``receive()`` inside one long-lived cancel scope, which is cancelled only while
  it is parked, to wake it for a ping or for shutdown. On a broadcast subscriber's stream
  (``_channels.ParkingReceiveStream``) it parks on the stream itself and is woken by
  unparking it, for an event as for a ping: no cancel scope at all;
* the **listener** waits for ``http.disconnect`` and then cancels the whole group. Under
  trio it also keeps the ping deadline (the time of the writer's last send plus the
  interval) and the stream's lifetime (``max_duration``) as its wait's cancel scope: it
  waits anyway, so the ping costs one timer per interval rather than one per event. Under
  asyncio the same deadlines are one loop timer (``_on_timer``, a callback, not a task),
  armed again at most once per interval, and the listener waits with no scope at all: a
  cancel scope with its deadline kept about seven more objects per open stream for the
  garbage collector to walk (issue 18). Once the body is finished, ``_stop_listener``
  cancels the listener's wait (its scope, or under asyncio its task) and the timer. (Under
  trio a nursery's task has no handle to cancel: the listener always waits in a scope, whose
  deadline is ``inf`` when there are no pings and no ``max_duration``);
* the **producer** (a producer function, or a pump for an iterable) feeds a bounded memory
  channel, whose send end yields only when full or once per time slice
  (``_channels.ProducerSendStream``); a receive channel given as content needs no task. A
  pump also takes a credit from a ``_prefetch.PrefetchGate`` before each item, which the
  writer gives back once the server accepted it: at most ``max_prefetch`` items ahead;
* the **data sender** (``data_sender_callable``), if any, in a cancel scope of its own,
  cancelled when the writer stops.

Shutdown needs no task either: the token calls back into this loop (see ``_shutdown``).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._asynclib import (
    AsyncLib,
    Cancellable,
    CancelScopeLike,
    TaskGroupLike,
    Timer,
    current_asynclib,
)
from ._batch import BATCH_BYTES, PARK, PASS, Batch
from ._channels import ParkingReceiveStream, plain_buffer, producer_send_end
from ._encoder import SEPARATORS
from ._errors import SendTimeoutError
from ._events import ServerSentEvent, encode_item
from ._hooks import CloseReason, Observer, Tally
from ._prefetch import DEFAULT_MAX_PREFETCH
from ._ratelog import LogLimiter
from ._shutdown import ShutdownToken, default_shutdown_token
from ._sources import Content, Opened, Source
from ._streaminfo import CURRENT_STREAM, Scope, describe, where

logger = logging.getLogger("trio_sse")

UNOPENED_LOG = LogLimiter(10.0)
"""Streams whose channel could not be opened: one record per kind of failure per 10 s."""


def report_unopened(exc: Exception, scope: Scope | None = None) -> None:
    """Log that a stream could not open its channel, without flooding (see ``_ratelog``).

    A connection error (Redis down) is one line; anything else keeps its traceback, as a
    bug should, but also at most once per kind per interval. Never blocks.
    """
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    left_out = UNOPENED_LOG.admit(kind)
    if left_out is None:
        return
    more = f"; {left_out} more since the last report" if left_out else ""
    logger.error(
        "trio_sse: the stream's channel could not be opened (%s: %s); ending the stream%s "
        "(reported at most once per %g s%s)",
        type(exc).__name__,
        exc,
        describe(scope),
        UNOPENED_LOG.interval,
        more,
        exc_info=None if isinstance(exc, ConnectionError) else exc,
    )


Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# How long a server-cancelled stream may take to send its last message, shielded.
_CLOSING_SEND_TIMEOUT = 1.0

_END = "end"
_SHUTDOWN = "shutdown"
_FAILED = "failed"

_NOTHING: Any = object()  # no item waiting to be encoded

_PING = {sep: ServerSentEvent(comment="ping").encode(sep) for sep in SEPARATORS}


class _NoScope:
    """The writer's wait "scope" on a subscriber's stream: none. Its methods are static, so
    the writer's ``with`` keeps no bound ``__exit__`` for the stream's whole life, as it would
    with ``contextlib.nullcontext()`` (one object fewer per open stream: issue 18)."""

    __slots__ = ()

    @staticmethod
    def __enter__() -> None:
        return None

    @staticmethod
    def __exit__(*exc_info: object) -> None:
        return None


_NO_SCOPE = _NoScope()


class _ClientGone(Exception):
    """``send`` raised ``OSError``: the client disconnected (ASGI 2.4 servers)."""


class StreamSpec:
    """Everything a response decided at construction; shared by all its ASGI calls."""

    __slots__ = (
        "cleanup_timeout",
        "client_close_handler",
        "content",
        "data_sender",
        "disconnect_grace_period",
        "farewell",
        "farewell_retry",
        "max_buffer_size",
        "max_duration",
        "max_prefetch",
        "observer",
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
        content: Content,
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
        max_prefetch: int = DEFAULT_MAX_PREFETCH,
        max_duration: float | tuple[float, float] | None = None,
        disconnect_grace_period: float = 0.0,
        observer: Observer | None = None,
    ) -> None:
        self.observer = observer  # the hooks (``_hooks``); None: nothing is counted
        self.max_prefetch = max_prefetch
        self.disconnect_grace_period = disconnect_grace_period
        self.max_duration = max_duration
        self.farewell = farewell
        self.farewell_retry = farewell_retry
        self.content = content
        self.sep = sep
        self.ping_interval = ping_interval
        self.ping_factory = ping_factory
        self.ping_bytes = _PING.get(sep) or ServerSentEvent(comment="ping").encode(sep)
        self.send_timeout = send_timeout
        self.data_sender = data_sender
        self.client_close_handler = client_close_handler
        self.shutdown = shutdown
        self.shutdown_event = shutdown_event
        self.shutdown_grace_period = shutdown_grace_period
        self.max_buffer_size = max_buffer_size
        self.cleanup_timeout = cleanup_timeout


class Connection:
    """The state of one streaming ASGI call. Created and run by ``EventSourceResponse``."""

    __slots__ = (
        "_clock",
        "_closing",
        "_disconnected",
        "_expires_at",
        "_finished",
        "_grace_deadline",
        "_group",
        "_lib",
        "_listener",
        "_listener_wait",
        "_next_ping",
        "_parking",
        "_pass",
        "_producer_scope",
        "_quiet_passes",
        "_receive",
        "_scope",
        "_send",
        "_sender_scope",
        "_shutdown_requested",
        "_source",
        "_spec",
        "_stop_listening",
        "_tally",
        "_timer",
        "_wait_scope",
        "_waiting",
        "_woken",
        "shutdown_token",
    )

    def __init__(
        self, spec: StreamSpec, receive: Receive, send: Send, scope: Scope | None = None
    ) -> None:
        self._spec = spec
        self._scope = scope  # named by the stream's log lines (``_streaminfo.where``)
        # The token it is bound to, once it runs: ``current_shutdown_token()`` in its tasks.
        self.shutdown_token: ShutdownToken | None = None
        # Only an observed stream counts what it sends (``_hooks``).
        observer = spec.observer
        self._tally = None if observer is None else Tally(observer, scope or {})
        self._receive = receive
        self._send = send
        self._disconnected = False
        # The writer's wait scope, cancelled (only while ``_waiting``) to wake it for a ping
        # or for shutdown; it also encloses the writer's sends, which is safe because it is
        # never cancelled while the writer is anywhere but parked in ``receive()``. A writer
        # parked on a broadcast subscriber's stream (``_parking``) needs no scope: it is
        # woken by unparking that stream.
        self._wait_scope: CancelScopeLike | None = None
        self._parking: ParkingReceiveStream[Any] | None = None
        self._waiting = False
        self._woken = False  # ``_wake_writer`` woke the writer (a ping is due, or shutdown)
        self._next_ping = math.inf  # when the next ping is due, unless data is sent before
        self._clock: Callable[[], float] = anyio.current_time
        self._pass: Callable[[], Awaitable[None]] = anyio.lowlevel.checkpoint
        self._quiet_passes = 1
        self._shutdown_requested = False
        self._grace_deadline = math.inf
        self._expires_at = math.inf  # when ``max_duration`` ends the stream
        self._source: Source | None = None  # what the writer reads (closed on disconnect)
        self._group: TaskGroupLike | None = None
        # Created only when there is a producer (or a data sender) to cancel: every scope is
        # memory that an idle connection keeps for its whole life.
        self._producer_scope: CancelScopeLike | None = None
        self._sender_scope: CancelScopeLike | None = None  # the data sender's
        self._finished = False
        self._closing = False
        # The listener's task (asyncio: its ``asyncio.Task``, or anyio's handle when the
        # stream runs code that may need shields; trio: ``None``, the nursery's own task),
        # and what ``_stop_listener`` cancels once the body is finished while the listener
        # waits: under trio a scope bounded by the ping deadline, else its task.
        self._listener: Cancellable | None = None
        self._listener_wait: CancelScopeLike | Cancellable | None = None
        self._stop_listening = False
        # asyncio: the ping deadline and ``max_duration`` as one loop timer (``_on_timer``),
        # not a cancel scope around the listener's wait; ``None`` under trio, or when off.
        self._lib: AsyncLib | None = None
        self._timer: Timer | None = None

    @property
    def asgi_scope(self) -> Scope | None:
        """The ASGI scope its log lines name (``_streaminfo.where``)."""
        return self._scope

    # -- public entry -------------------------------------------------------------------------

    def run(self, channel: MemoryObjectReceiveStream[Any] | None = None) -> Awaitable[None]:
        """Stream until the content ends, the client leaves, shutdown ends it, or a send fails.

        Returns normally after a clean end of body (``more_body: False``) or a client
        disconnect; raises ``SendTimeoutError`` when a send timed out. Every task it started
        has finished when it returns. Cancelled from outside (a server's own shutdown timer,
        as in ``hypercorn -k trio``), it still finishes the body cleanly, briefly shielded,
        before the cancellation goes on. A ``DirectSource``'s *channel* is opened (and later
        closed) by the response, before its headers; ``None``: it could not be opened (the
        response logged why), and the body ends at once.
        (Returns the coroutine to await: one frame fewer kept by every open stream.)
        With hooks, they are called around it (``_run_observed``).
        """
        if self._tally is not None:
            return self._run_observed(self._tally, channel)
        return self._stream(channel)

    def _stream(self, channel: MemoryObjectReceiveStream[Any] | None) -> Awaitable[None]:
        content = self._spec.content
        if not content.opens_channel:
            return self._run(content.open(self._spec))
        if channel is None:
            return self._end_at_once()
        return self._run((Source.from_anyio(channel), None, None))

    async def _run_observed(
        self, tally: Tally, channel: MemoryObjectReceiveStream[Any] | None
    ) -> None:
        """``run`` between the ``on_open`` and ``on_close`` hooks, told why the stream ended."""
        await tally.open(current_asynclib().clock)
        if channel is None and self._spec.content.opens_channel:
            tally.failed = True  # logged by ``report_unopened``
        reason = CloseReason.ERROR  # unless it returns, times out or is cancelled
        try:
            await self._stream(channel)
            reason = self._close_reason(tally, ended=True)
        except SendTimeoutError:
            reason = CloseReason.SEND_TIMEOUT
            raise
        except anyio.get_cancelled_exc_class():  # by its server (or the client left)
            reason = self._close_reason(tally, ended=False)
            raise
        finally:
            await tally.close(tally.cause if tally.cause is not None else reason)

    def _close_reason(self, tally: Tally, *, ended: bool) -> CloseReason:
        """Why the stream ended (*ended*: its loop returned, rather than raised)."""
        if self._disconnected:
            return CloseReason.CLIENT_DISCONNECT
        if tally.failed:
            return CloseReason.ERROR
        if tally.expired:
            return CloseReason.MAX_DURATION
        if self._shutdown_requested or not ended:
            return CloseReason.SHUTDOWN
        return CloseReason.COMPLETED

    async def _end_at_once(self) -> None:
        try:
            await self._finish_body()
        except (SendTimeoutError, _ClientGone):
            pass

    async def _run(self, opened: Opened) -> None:
        spec = self._spec
        lib = current_asynclib()
        self._clock, self._pass, self._quiet_passes = lib.clock, lib.schedule_pass, lib.quiet_passes
        if spec.ping_interval:
            self._next_ping = self._clock() + spec.ping_interval
        if spec.max_duration is not None:
            self._expires_at = self._clock() + _duration(spec.max_duration)
        self._lib = lib
        first = min(self._next_ping, self._expires_at)
        if first != math.inf:
            self._timer = lib.call_at(first, self._on_timer)
        token = spec.shutdown if spec.shutdown is not None else default_shutdown_token()
        source, feed, send_stream = opened
        del opened  # not kept for the stream's whole life: one object fewer (issue 18)
        self._source = source
        timed_out: SendTimeoutError | None = None
        self.shutdown_token = token
        # Its scope and its token, for its tasks. The ``Token`` that ``set`` returns is not
        # kept (one object fewer per open stream: issue 18): the value found is put back.
        outer = CURRENT_STREAM.get()
        CURRENT_STREAM.set(self)
        token._stream_started()
        # A native asyncio group (no anyio ``TaskHandle`` per task) unless a task runs code
        # that may rely on anyio's shields (a producer, a data sender, a close handler):
        # the listener alone needs none (``_asyncio_group``).
        shields = feed is not None or spec.data_sender is not None
        shields = shields or spec.client_close_handler is not None
        try:
            async with lib.task_group(shields=shields) as group:
                self._group = group
                self._start_tasks(group, token, feed, send_stream)
                try:
                    watch = token._add_watcher(self)  # calls ``_on_shutdown``
                    try:
                        outcome = await self._write(source)
                    finally:
                        token._remove_watcher(watch)
                    await self._stop(outcome, token)
                except SendTimeoutError as exc:
                    timed_out = exc
                    group.cancel_scope.cancel()
                except _ClientGone:
                    self._disconnected = True
                    group.cancel_scope.cancel()
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
            CURRENT_STREAM.set(outer)
            self._cancel_timer()
            source.close()
        if timed_out is not None:
            raise timed_out

    def _start_tasks(
        self,
        group: TaskGroupLike,
        token: ShutdownToken,
        feed: Callable[[], Awaitable[None]] | None,
        send_stream: MemoryObjectSendStream[Any] | None,
    ) -> None:
        """Start the listener, and the producer and the data sender if there are any."""
        self._listener = group.start_soon(self._listen, token)
        if feed is not None:
            scope = self._producer_scope = self._new_scope()
            if send_stream is not None:
                # The stream's own cancellations, noticed by every send without a pass.
                producer_send_end(send_stream, (scope, group.cancel_scope))
            group.start_soon(_run_in_scope, scope, feed, "the stream's producer", self)
        data_sender = self._spec.data_sender
        if data_sender is not None:
            # A scope of its own: one cancel scope cannot be entered by two tasks.
            scope = self._sender_scope = self._new_scope()
            group.start_soon(_run_in_scope, scope, data_sender, "data_sender_callable")

    async def _stop(self, outcome: str, token: ShutdownToken) -> None:
        """The writer stopped for *outcome*: cancel what must stop, then finish the body.

        Raises ``SendTimeoutError`` if that last send timed out; a client gone by then is
        only noted. The listener is stopped in any case.
        """
        if token.triggered:
            # The producer may have seen ``token.triggered`` and closed its channel before
            # the token's wake-up reached this loop (under trio it runs in a later batch than
            # the trigger): the stream still ends for shutdown.
            self._on_shutdown()
        tally = self._tally
        if tally is not None:
            # Decided now, before the last send: a server that closes the connection as it
            # shuts down fails that send, which is not the client leaving (first cause wins).
            tally.failed = tally.failed or outcome == _FAILED
            tally.cause = self._close_reason(tally, ended=True)
        if outcome != _END and self._producer_scope is not None:
            # Shutdown grace over, or a bad item: the producer is cancelled. At a normal end
            # it closed its channel itself and may still be cleaning up.
            self._producer_scope.cancel()
        if self._sender_scope is not None:
            # The data sender has nothing to feed once the content ended (as in sse-starlette,
            # whose task group ends with the stream).
            self._sender_scope.cancel()
        try:
            await self._finish_body()
        except _ClientGone:
            self._disconnected = True
        finally:
            self._stop_listener()

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
                logger.exception("trio_sse: the shutdown farewell could not be encoded%s", where())
        retry = spec.farewell_retry
        if retry is not None:
            # Spread reconnections: thousands of clients told the same delay would come back
            # in the same instant (to another instance behind the load balancer).
            delay = retry if isinstance(retry, int) else random.randint(retry[0], retry[1])
            parts.append(ServerSentEvent(retry=delay).encode(spec.sep))
        return b"".join(parts)

    # -- tasks --------------------------------------------------------------------------------

    async def _listen(self, token: ShutdownToken) -> None:
        """Wait for ``http.disconnect``; meanwhile keep the ping timer, unless the loop does.

        The ping deadline lives here (trio) or in the loop's timer (asyncio: ``_on_timer``)
        rather than around the writer's every wait: the writer only records when it last sent
        (``_next_ping``), and the deadline moves at most twice per ping interval instead of
        once per event (``_due``). When a ping is due and the writer is parked, it is woken;
        a writer that is busy is sending data, which resets the timer anyway.

        An ``http.disconnect`` that comes once *token* is triggered is the server shutting
        down (uvicorn 0.43-0.44 send one to every running response), not the client leaving:
        it starts the shutdown phase as the token does, and the listener stops receiving
        (such a server answers every later ``receive`` at once) but keeps the ping timer.
        """
        receive: Receive | None = self._receive
        while True:
            if self._stop_listening:
                return
            deadline = math.inf if self._timer is not None else self._due()
            message: Message | None = None
            if deadline == math.inf and self._listener is not None:
                # asyncio, no deadline here: ``_stop_listener`` cancels the task.
                self._listener_wait = self._listener
                try:
                    message = await (anyio.sleep_forever() if receive is None else receive())
                finally:
                    self._listener_wait = None
            else:
                scope = self._listener_wait = self._new_scope(deadline)
                with scope:  # (``receive is None``: the server said it is going, pings only)
                    message = await (anyio.sleep_forever() if receive is None else receive())
                self._listener_wait = None
            if message is None or message["type"] != "http.disconnect":
                continue
            if not token.triggered:
                break
            receive = None
            self._on_shutdown()
        await self._client_left_or_done(message)

    async def _client_left_or_done(self, message: Message) -> None:
        """The listener got ``http.disconnect``: the client left, unless the body is done."""
        self._cancel_timer()
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
                logger.exception("trio_sse: client_close_handler_callable raised%s", where())
        assert self._group is not None
        close = self._let_producer_finish()
        self._group.cancel_scope.cancel()
        if close is not None:
            close()  # after the cancellation: the writer is cancelled, not woken by it

    def _let_producer_finish(self) -> Callable[[], None] | None:
        """The client left: close the producer's channel rather than cancel the producer.

        Its next ``send`` raises ``BrokenResourceError``, so its ``async with`` blocks exit
        through their normal error path and their cleanup (a database session's rollback,
        a pooled connection's return) runs un-cancelled; it is cancelled only if it is still
        running ``disconnect_grace_period`` seconds later (its scope's own deadline, which
        a shield does not stop). Sync; called before the stream's group is cancelled, so that
        the shield is up when the cancellation comes. Returns what closes the channel, to
        call once the group is cancelled (``None``: the producer is cancelled with it)."""
        scope, source = self._producer_scope, self._source
        grace = self._spec.disconnect_grace_period
        if scope is None or source is None or not grace:
            return None
        scope.shield = True
        scope.deadline = min(scope.deadline, self._clock() + grace)
        return source.close

    def _stop_listener(self) -> None:
        self._stop_listening = True
        if self._listener_wait is not None:
            self._listener_wait.cancel()
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _due(self) -> float:
        """Act on what is due (``max_duration`` over; a ping due: wake a parked writer) and
        return when to look next (``inf``: never). A writer that is busy is sending data, which
        moves ``_next_ping`` anyway: the next look is then at the ping time it set."""
        interval = self._spec.ping_interval
        deadline = self._expires_at
        if not interval and deadline == math.inf:
            return deadline
        now = self._clock()
        if deadline <= now:
            self._expire()
            deadline = math.inf
        if interval:
            ping_at = self._next_ping
            if ping_at <= now:
                self._wake_writer()
                ping_at = now + interval
            deadline = min(deadline, ping_at)
        return deadline

    def _on_timer(self) -> None:
        """The loop's timer (asyncio): act on what is due, then arm it for what is next."""
        self._timer = None  # (``_stop_listener`` cancels it: it never comes after)
        deadline = self._due()
        if deadline != math.inf:
            assert self._lib is not None
            self._timer = self._lib.call_at(deadline, self._on_timer)

    def _wake_writer(self) -> None:
        # Only a parked writer is woken: its wait scope also encloses its sends.
        if not self._waiting:
            return
        if self._parking is not None:
            self._woken = True
            self._parking.unpark()
        elif self._wait_scope is not None:
            self._woken = True
            self._wait_scope.cancel()

    def _expire(self) -> None:
        """``max_duration`` is over: end the stream as shutdown would, without a grace period
        (the producer is not told: it is cancelled), with the farewell and ``retry:`` hint."""
        self._expires_at = math.inf
        if self._shutdown_requested:
            return
        if self._tally is not None:
            self._tally.expired = True
        self._shutdown_requested = True
        self._grace_deadline = self._clock()
        self._wake_writer()

    def _on_shutdown(self) -> None:
        # Called in this connection's loop (scheduled by the token), never concurrently with
        # the writer. Start the cooperative phase and wake the writer so it arms the grace timer.
        if self._shutdown_requested:
            return
        self._shutdown_requested = True
        event = self._spec.shutdown_event
        if event is not None:
            event.set()
        self._wake_writer()

    # The token's watcher is the connection itself, not a bound method that the token would
    # keep for the stream's whole life (one object fewer per open stream: issue 18).
    __call__ = _on_shutdown

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

    def _grace_over(self) -> bool:
        """Shutdown has begun: arm the grace deadline (once); has it passed?"""
        clock = self._clock
        if self._grace_deadline == math.inf:
            self._grace_deadline = clock() + self._spec.shutdown_grace_period
        return clock() >= self._grace_deadline

    async def _write(self, source: Source) -> str:
        """Stream the source; return why it stopped (``_END``, ``_SHUTDOWN`` or ``_FAILED``).

        Sends what is ready as one body message, parks when nothing is (what goes into a
        message, and whether to look again first, is ``_batch.Batch``'s policy); sends a ping
        when woken for one. A broadcast subscriber's stream is parked on (``wait_ready``) with
        no wait scope: the look at the top of the loop takes what woke it.
        """
        spec, stream, gate, tally = self._spec, source.stream, source.gate, self._tally
        parking = self._parking = stream if isinstance(stream, ParkingReceiveStream) else None
        end, clock, sep, ping = source.end, self._clock, spec.sep, spec.ping_interval
        send = self._send if spec.send_timeout is None else self._send_message
        batch = Batch(gate.limit if gate is not None else BATCH_BYTES, self._quiet_passes)
        item: object = _NOTHING
        status: str | None = None
        while True:
            self._woken = False
            with _NO_SCOPE if parking is not None else self._new_wait_scope():
                while True:
                    if item is not _NOTHING:
                        status, item = _add_item(batch, item, sep), _NOTHING
                    # Always look for more, even after a lone event; a full batch takes none.
                    if status is None and batch.has_room():
                        status = _drain(source, sep, batch)
                    if status is None and batch.wants_gathering():
                        status = await self._gather(source, batch)
                    step = PARK
                    if batch.chunks:
                        count = len(batch.chunks)
                        try:
                            if tally is None:
                                await send(_body_message(batch.take()))
                            else:  # observed: counted per message, never per event
                                await tally.send(send, count, _body_message(batch.take()))
                        except SendTimeoutError:  # (an OSError too: from ``_send_message``)
                            raise
                        except OSError as exc:
                            raise _ClientGone from exc
                        if gate is not None:
                            gate.release(count)  # the server accepted them
                        step = batch.sent(now := clock())
                        if ping:
                            self._next_ping = now + ping
                    if status is not None:
                        return status
                    if step is PASS:  # one pass for the ready tasks, then look again
                        await self._pass()
                        status = _drain(source, sep, batch)
                    if self._shutdown_requested and self._grace_over():
                        return _SHUTDOWN
                    if batch.look_again(step, status is not None):
                        continue
                    grace = self._grace_deadline
                    self._waiting = True
                    try:
                        got = await (
                            _wait_on(source, parking)
                            if grace == math.inf
                            else _wait_until(_waiter(source, parking), grace)
                        )
                    except end:
                        return _END
                    finally:
                        self._waiting = False
                    item = got if parking is None else _NOTHING
                    if self._woken:  # (not ``scope.cancel_called``: trio reads the clock)
                        break  # woken as the item arrived: leave the cancelled scope first
            # Woken: a ping is due, or shutdown began (or its grace ran out: the next round sees).
            ping_due = item is _NOTHING and ping and clock() >= self._next_ping
            if ping_due and not await self._send_ping():
                return _FAILED

    def _new_wait_scope(self) -> CancelScopeLike:
        """The writer's wait scope until its next wake-up (a cancelled scope is spent)."""
        scope = self._wait_scope = self._new_scope()
        return scope

    def _new_scope(self, deadline: float = math.inf) -> CancelScopeLike:
        """A cancel scope of the stream's loop (trio's own under trio: ``_asynclib``)."""
        assert self._lib is not None  # (set by ``_run`` before any scope is made)
        return self._lib.cancel_scope(deadline)

    async def _gather(self, source: Source, batch: Batch) -> str | None:
        """The producer is busy: take scheduling passes, each followed by a look, while
        ``batch.gathered`` says so; return why the source stopped, if it did."""
        batch.start_gathering()
        sep = self._spec.sep
        while True:
            await self._pass()
            before = len(batch.chunks)
            status = _drain(source, sep, batch)
            if status is not None or not batch.gathered(before):
                return status

    async def _send_ping(self) -> bool:
        """Send a ping (the factory's, if any); ``False`` if the factory failed."""
        spec = self._spec
        ping_bytes = spec.ping_bytes
        if spec.ping_factory is not None:
            try:
                ping_bytes = encode_item(spec.ping_factory(), spec.sep)
            except Exception:
                logger.exception(
                    "trio_sse: ping_message_factory failed; ending the stream%s", where()
                )
                return False
        await self._send_message(_body_message(ping_bytes))
        self._next_ping = self._clock() + spec.ping_interval
        return True


def _duration(value: float | tuple[float, float]) -> float:
    """A stream's lifetime: *value*, or picked at random in a ``(low, high)`` range so that
    streams opened together do not all end (and reconnect) together."""
    return random.uniform(*value) if isinstance(value, tuple) else value


def _body_message(body: bytes) -> Message:
    return {"type": "http.response.body", "body": body, "more_body": True}


def _wait_on(source: Source, parking: ParkingReceiveStream[Any] | None) -> Awaitable[Any]:
    """The writer's wait: parked on a subscriber's stream, else the next item's ``receive``.
    (Made at each wait, not kept as a bound method by the writer's frame: issue 18.)"""
    return parking.wait_ready() if parking is not None else source.stream.receive()


def _waiter(
    source: Source, parking: ParkingReceiveStream[Any] | None
) -> Callable[[], Awaitable[Any]]:
    return parking.wait_ready if parking is not None else source.stream.receive


async def _wait_until(wait: Callable[[], Awaitable[Any]], deadline: float) -> Any:
    """``await wait()``, given up (returning ``_NOTHING``) at *deadline*: the grace period."""
    with anyio.CancelScope(deadline=deadline):
        return await wait()
    return _NOTHING


def _add_item(batch: Batch, item: object, sep: str) -> str | None:
    """Encode *item* into *batch*; ``_FAILED`` (logged) if it cannot be encoded."""
    try:
        batch.add(encode_item(item, sep))
    except Exception:
        logger.exception(
            "trio_sse: a stream item could not be encoded; ending the stream%s", where()
        )
        return _FAILED
    return None


def _drain(source: Source, sep: str, batch: Batch) -> str | None:
    """Take and encode every item that is ready into *batch*, up to its byte limit.

    Returns why the source stopped (``_END``, ``_FAILED``) or ``None`` if it is just empty for
    now, or the batch is full. Never blocks. (A module function, not a closure in ``_write``:
    an idle connection would keep one for its whole life.) It stops at the batch's item limit
    too: an iterable's gate lets no more than that many items be ready, so a full batch means
    an empty channel, and stopping there spares the ``WouldBlock`` that an empty channel
    raises (once per body message of an iterable, issue 18); its end is seen at the next look.
    """
    receive_nowait = source.stream.receive_nowait
    buffer, senders = plain_buffer(source.stream)  # a producer's channel: popped here
    chunks = batch.chunks
    append = chunks.append
    size = batch.size
    limit = batch.max_bytes
    room = batch.max_items - len(chunks)
    status = None
    try:
        while size < limit and room > 0:
            room -= 1
            item = buffer.popleft() if buffer and not senders else receive_nowait()
            if type(item) is ServerSentEvent:
                chunk = item._encode_default(sep)
            else:
                chunk = encode_item(item, sep)
            append(chunk)
            size += len(chunk)
    except source.would_block:
        pass
    except source.end:
        status = _END
    except Exception:
        logger.exception(
            "trio_sse: a stream item could not be encoded; ending the stream%s", where()
        )
        status = _FAILED
    batch.size = size
    return status


def _client_left(exc: Exception, connection: Connection | None) -> bool:
    """Whether *exc* is only the closed channel of a client that left: the *connection* saw
    the disconnect, and *exc* is ``BrokenResourceError`` (from ``send``), alone or from tasks
    of the producer's own task groups. Any other closed channel is the producer's own bug."""
    if connection is None or not connection._disconnected:
        return False
    if isinstance(exc, anyio.BrokenResourceError):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(anyio.BrokenResourceError)[1] is None
    return False


async def _run_in_scope(
    scope: CancelScopeLike,
    function: Callable[[], Awaitable[None]],
    what: str,
    connection: Connection | None = None,
) -> None:
    """Run *function* (the producer, or the data sender) in *scope*; log what it raises,
    but for the producer's closed channel once its *connection*'s client left.

    The error is caught outside *scope*: when the scope's own cancellation (the end of a
    disconnect grace period) meets an error in the producer's task group, the group raises
    both, and only the scope, leaving, takes its ``Cancelled`` out of them. An error beside a cancellation from outside (the stream's hard stop) is logged, and the
    cancellation goes on."""
    try:
        with scope:
            await function()
    except Exception as exc:
        _failed(exc, what, connection)
    except BaseExceptionGroup as group:
        errors, cancellations = group.split(Exception)
        if errors is not None:
            _failed(errors, what, connection)
        if cancellations is not None:
            raise cancellations from None
        raise  # pragma: no cover (split leaves one or the other)


def _failed(exc: Exception, what: str, connection: Connection | None) -> None:
    if _client_left(exc, connection):
        return  # its channel was closed: the client left (``_let_producer_finish``)
    # The stream still ends cleanly: the writer sends what was produced before the error,
    # then finishes the body; the browser will reconnect.
    logger.error("trio_sse: %s raised; ending the stream%s", what, where(), exc_info=exc)
    if connection is not None and connection._tally is not None:
        connection._tally.failed = True
