"""anyio memory channels with cheaper hot paths: still anyio's classes, same semantics.

Both classes are anyio's own ``MemoryObjectSendStream``/``MemoryObjectReceiveStream``
(``isinstance`` holds, ``clone()``, ``statistics()``, ``close()`` and ``async with`` are
anyio's). A producer's send end (:func:`producer_pair`) and a subscriber's pair
(:func:`parking_pair`) are made by our classes' own constructors on the channel of a pair
that ``anyio.create_memory_object_stream`` created (:func:`producer_send_end` still
re-classes any other such send end it is given), as
anyio's ``clone()`` makes its ends (the one private name read is the dataclass field
``_state``), because a re-classed instance keeps a ``__dict__`` of its own: one object more
per end for the garbage collector to walk, per open stream (issue 18). What that relies on (no
``__slots__`` in anyio's classes, none of our attribute names taken, ``send`` going through
``send_nowait``, every way of closing through ``close``, clones of anyio's own class, the
``_state`` field) is pinned by ``tests/test_channels.py`` and ``tests/test_gc_footprint.py``,
and anyio is bounded below its next major version for it. (Re-classing has a cost of its own:
CPython 3.11+ no longer specialises attribute reads on an instance whose class was swapped, so
anyio's ``send_nowait``/``receive_nowait`` run slower on re-classed streams than on plain ones;
composition over ``anyio.abc`` measured faster in a micro-benchmark.) Only the awaiting methods
change, and only in what they cost:

* :class:`ProducerSendStream` is the send end a producer function gets (issue #4). anyio's
  ``send`` is a scheduling point at every item: one loop iteration per event, which capped
  a busy producer at ~100k events/s whatever the writer did. Here ``send`` is a cancellation
  point at every item (the stream's own cancellations: disconnect, send timeout, shutdown
  grace), and a scheduling point when it must wait for room or when ``SLICE`` seconds have
  passed since its last one. A producer that awaits anything else between events (a timer,
  a queue, the network) yields there as usual; one that makes events back to back yields to
  the writer (and every other task) at least every ``SLICE``, so an event waits at most that
  long plus the producer's own work before the writer can send it.
* :class:`ParkingReceiveStream` is a broadcast subscriber's receive end. anyio's ``receive``
  takes a scheduling pass *before* finding the buffer empty and then waits: two trips through
  the loop, an anyio ``Event`` and a task-info record per wait, for each of a thousand
  subscribers at each published event. Here a receive that must wait just parks the task
  (trio's ``wait_task_rescheduled``, or an asyncio future) until :meth:`~ParkingReceiveStream.
  unpark`, which its paired :class:`WakingSendStream` calls at every send; an ``unpark``
  while nobody is parked is remembered, so a wake-up is never lost between a look and a wait. A receive
  that finds an item waiting is still a full checkpoint, as in trio.
* :class:`DirectSource` is content that a response opens and streams itself
  (``Broadcaster.stream``): no forwarding task, no second channel.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._asynclib import CancelScopeLike, Parker, current_asynclib

__all__ = [
    "SLICE",
    "DirectSource",
    "ParkingReceiveStream",
    "ProducerSendStream",
    "WakingSendStream",
    "parking_pair",
    "plain_buffer",
    "producer_pair",
    "producer_send_end",
]

T = TypeVar("T")

# The longest a producer that never waits runs before ``send`` lets other tasks run: the
# writer sends what it made meanwhile as one body message. Short enough to be invisible
# next to network latency, long enough to make a few hundred events per body message.
SLICE = 0.0005

_clock = time.perf_counter


class _NotParked:
    """The parker of a stream that has not waited yet: nobody to wake."""

    __slots__ = ()

    def wait(self) -> Awaitable[Any]:  # pragma: no cover (replaced before the first wait)
        raise AssertionError("a stream's first wait makes its parker")

    def wake(self) -> bool:
        return False


_NOT_PARKED: Parker = _NotParked()


async def _no_wait() -> None:
    """An awaitable that completes without suspending."""


class _NeverCancelled:
    """Stands in for a scope that a send end was not given (fewer than two): never cancelled."""

    __slots__ = ()
    cancel_called = False


_NEVER_CANCELLED: Any = _NeverCancelled()


class ProducerSendStream(MemoryObjectSendStream[Any]):
    """A producer's send end; ``send`` yields only when it must (see the module docstring).

    Made by :func:`producer_pair` and :func:`producer_send_end`. ``_scope`` and ``_outer``
    are the (at most two) cancel scopes whose cancellation ``send`` notices without a
    scheduling pass, read as two attributes rather than looped over (issue 18); a cancellation
    from further out (the server's) is noticed at the next scheduling point, at most ``SLICE``
    later.
    """

    _scope: CancelScopeLike
    _outer: CancelScopeLike
    _yield_by: float

    async def send(self, item: Any) -> None:
        """Send *item*, waiting for room when the buffer is full. Always a cancellation point;
        a scheduling point when it waits, and at least once every ``SLICE`` seconds."""
        if _clock() < self._yield_by and not (
            self._scope.cancel_called or self._outer.cancel_called
        ):
            # anyio's ``send_nowait`` when it just appends (the reader is not waiting, the
            # buffer has room, both ends are open), inline: one call fewer per event.
            state = self._state
            if (
                not state.waiting_receivers
                and len(state.buffer) < state.max_buffer_size
                and state.open_receive_channels
                and not self._closed
            ):
                state.buffer.append(item)
                return
            try:
                self.send_nowait(item)
            except anyio.WouldBlock:
                pass
            else:
                return
        await super().send(item)
        self._yield_by = _clock() + SLICE

    def offer(self, item: Any) -> bool:
        """Send *item* now if :meth:`send` would, without a pass; ``False``: not sent, the
        caller must ``await send(item)`` (its slice is over, a stream scope is cancelled, or
        the buffer is full). Sync, never a checkpoint. ``send``'s first steps, for a caller
        that sends many items in a row (an iterable's pump): no coroutine per item (issue 18).
        ``send`` keeps its own copy: one call fewer per event on a producer function's path.
        """
        if _clock() >= self._yield_by or self._scope.cancel_called or self._outer.cancel_called:
            return False
        state = self._state
        if (
            not state.waiting_receivers
            and len(state.buffer) < state.max_buffer_size
            and state.open_receive_channels
            and not self._closed
        ):
            state.buffer.append(item)
            return True
        try:
            self.send_nowait(item)
        except anyio.WouldBlock:
            return False
        return True


def producer_pair(
    max_buffer_size: float,
) -> tuple[ProducerSendStream, MemoryObjectReceiveStream[Any]]:
    """A bounded anyio memory channel whose send end is a :class:`ProducerSendStream`.

    Made by the class's own constructor (see :func:`_same_channel`), not by re-classing: CPython
    specialises attribute reads only on an instance whose class was never swapped, and
    ``send`` reads a few per event (issue 18). Its first ``send`` is a scheduling point; it
    notices no scope's cancellation without a pass until :func:`producer_send_end` names them.
    """
    plain_send, receive = anyio.create_memory_object_stream[Any](max_buffer_size)
    send = _same_channel(ProducerSendStream, plain_send)
    send._scope = send._outer = _NEVER_CANCELLED
    send._yield_by = 0.0  # the first send is a scheduling point
    return send, receive


def producer_send_end(
    stream: MemoryObjectSendStream[Any], scopes: tuple[CancelScopeLike, ...]
) -> ProducerSendStream:
    """*stream* as a ProducerSendStream that notices the cancellation of *scopes* (at most
    two) at every send: one from :func:`producer_pair`, or one fresh from
    ``create_memory_object_stream`` (re-classed: slower attribute reads, same behaviour)."""
    if len(scopes) > 2:
        raise ValueError(f"a producer's send end watches at most two scopes, got {len(scopes)}")
    if type(stream) is not ProducerSendStream:
        stream.__class__ = ProducerSendStream
        assert isinstance(stream, ProducerSendStream)
        stream._yield_by = 0.0  # the first send is a scheduling point
    stream._scope, stream._outer = (*scopes, _NEVER_CANCELLED, _NEVER_CANCELLED)[:2]
    return stream


# Always empty: nothing is ever added to it.
_NO_BUFFER: tuple[deque[Any], Mapping[Any, Any]] = (deque(), {})


def plain_buffer(stream: object) -> tuple[deque[Any], Mapping[Any, Any]]:
    """anyio's buffer of *stream* and its waiting senders, for a reader that takes items off
    the buffer itself while no sender waits (``_stream._drain``: what ``receive_nowait`` does
    then, without a call per item); an empty buffer (take nothing yourself) unless *stream* is
    an open receive end of anyio's own class, whose ``receive_nowait`` nobody overrides.
    Once per look: only the reader closes its end, and it is busy taking."""
    if type(stream) is not MemoryObjectReceiveStream or stream._closed:
        return _NO_BUFFER
    state = stream._state
    return state.buffer, state.waiting_senders


class ParkingReceiveStream(MemoryObjectReceiveStream[T]):
    """A receive end whose ``receive`` parks until :meth:`unpark` (see the module docstring).

    Made by :func:`parking_pair`, whose send end unparks it after every send and when it
    closes; :meth:`unpark` also wakes the reader for reasons of its own (a ping is due). It
    is cheap when nobody is parked. One task receives at a time (the subscriber's); clones
    are anyio's plain receive streams.
    """

    # Who is parked, and how to wake them: made from the running loop at the first wait
    # (a stream lives in one loop), ``_NOT_PARKED`` until then.
    _parker: Parker
    # ``unpark`` came while nobody was parked (the reader was busy, sending what it took):
    # the next wait returns at once, so a wake-up is never lost between a look and a wait.
    _wake_pending: bool

    async def receive(self) -> T:
        """The next item; waits for one. A checkpoint. ``EndOfStream`` once the send end is
        closed and the buffer is empty; ``ClosedResourceError`` if this end was closed."""
        # As trio's receive: a pending cancellation is raised before an item is taken, and the
        # scheduling pass after taking one cannot lose it.
        await anyio.lowlevel.checkpoint_if_cancelled()
        try:
            item = self.receive_nowait()
        except anyio.WouldBlock:
            pass
        else:
            await anyio.lowlevel.cancel_shielded_checkpoint()
            return item
        while True:
            # Parking is the scheduling point (and where a cancellation is delivered); an item
            # found after it is returned without another pass.
            await self.wait_ready()
            try:
                return self.receive_nowait()
            except anyio.WouldBlock:
                pass

    def unpark(self) -> None:
        """Wake the task parked in :meth:`receive`, if any. Never blocks; idempotent."""
        if not self._parker.wake():
            self._wake_pending = True

    def close(self) -> None:
        super().close()
        self.unpark()

    def wait_ready(self) -> Awaitable[Any]:
        """Park until :meth:`unpark`: an item may be waiting, or the send end was closed.

        For a reader that takes items with ``receive_nowait`` (the stream's writer): no second
        look, no extra pass. If :meth:`unpark` was called since the last wait while nobody was
        parked, returns at once without a scheduling point (the reader looks again); else
        parks, a scheduling point where a cancellation is delivered. Await the result at once
        (it registers the calling task as the one to wake). Returns the bare awaitable, an
        asyncio future or trio's ``wait_task_rescheduled``: no coroutine of its own to keep
        while parked.
        """
        if self._wake_pending:
            self._wake_pending = False
            return _no_wait()
        parker = self._parker
        if parker is _NOT_PARKED:
            parker = self._parker = current_asynclib().parker()
        return parker.wait()


class WakingSendStream(MemoryObjectSendStream[T]):
    """The send end made with a :class:`ParkingReceiveStream` by :func:`parking_pair`.

    Every item it puts in the buffer, and its closing, wake the parked reader: the wake-up
    is part of sending, so no sender can forget it. (anyio's ``send`` goes through
    ``send_nowait``; an item that waited for room is taken by the reader itself.)
    """

    _receiver: ParkingReceiveStream[Any]

    def send_nowait(self, item: T) -> None:
        super().send_nowait(item)
        self._receiver.unpark()

    def close(self) -> None:
        super().close()
        self._receiver.unpark()


class DirectSource:
    """Content that ``EventSourceResponse`` streams from a channel it opens itself.

    ``DirectSource(open_channel)``: *open_channel* returns an async context manager whose
    value is the channel to stream; leaving it closes the channel. A response given one
    opens it when the stream starts and streams that channel directly, with no forwarding
    task and no second channel. It is still a producer function (``await source(send)``
    forwards the channel's items into *send*), so code that calls it as one keeps working.
    ``Broadcaster.stream`` returns one.
    """

    __slots__ = ("open_channel",)

    def __init__(
        self,
        open_channel: Callable[[], AbstractAsyncContextManager[MemoryObjectReceiveStream[Any]]],
    ) -> None:
        self.open_channel = open_channel

    async def __call__(self, send: MemoryObjectSendStream[Any]) -> None:
        """Forward the channel's items into *send*, then close *send* (a producer function)."""
        async with send, self.open_channel() as channel:
            async for item in channel:
                await send.send(item)


def parking_pair(max_buffer_size: int) -> tuple[WakingSendStream[Any], ParkingReceiveStream[Any]]:
    """A bounded anyio memory channel whose reader parks and whose sends wake it."""
    plain_send, plain_receive = anyio.create_memory_object_stream[Any](max_buffer_size)
    receive = _same_channel(ParkingReceiveStream, plain_receive)
    receive._parker = _NOT_PARKED
    receive._wake_pending = False
    send = _same_channel(WakingSendStream, plain_send)
    send._receiver = receive
    return send, receive


_End = TypeVar("_End")


def _same_channel(
    cls: Callable[[Any], _End], plain: MemoryObjectSendStream[Any] | MemoryObjectReceiveStream[Any]
) -> _End:
    """An instance of *cls* on the channel of *plain* (fresh from anyio), which is closed.

    Made by *cls*'s own constructor (anyio's dataclass, given the channel's shared ``_state``,
    as anyio's ``clone()`` does) rather than by re-classing *plain*: CPython materialises a
    ``__dict__`` for an instance whose class is swapped, one more object for the collector to
    walk per end, per open stream (issue 18). The new end counts as one more open end before
    *plain* is closed, so the channel is never seen with no end open."""
    ours = cls(plain._state)
    plain.close()
    return ours
