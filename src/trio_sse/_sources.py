"""What a response streams: its content, classified once, and what the writer reads.

``EventSourceResponse`` hands its content to :func:`classify`, which returns one small object
per response, a :class:`Content` of the right kind; each stream of the response then asks it
(:meth:`Content.open`) for the writer's :class:`Source` and the task that feeds it, and a
response that never streams (``HEAD``, turned away, a websocket) asks it to let go of the
content (:meth:`Content.discard`). Adding a kind of content is one class here and one line
in :func:`classify`. The kinds:

* :class:`ProducerFunction`: ``async def producer(send, *args)``, fed the send end of a bounded
  channel (``max_buffer_size``) in the stream's task group;
* :class:`AnyioChannel` / :class:`TrioChannel`: a receive channel, read directly (no task);
* :class:`AsyncIterableContent` / :class:`SyncIterableContent`: the sse-starlette path, pumped
  into a channel, never more than ``max_prefetch`` items ahead of the server
  (``_prefetch.PrefetchGate``); a sync iterable is iterated in a worker thread;
* :class:`DirectContent`: a ``DirectSource`` (``Broadcaster.stream``), whose channel the stream
  opens itself (:attr:`Content.opens_channel`) and reads directly.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._asynclib import is_trio_channel, running_under_trio, trio_channel_exceptions
from ._channels import DirectSource, ProducerSendStream, producer_pair
from ._events import ServerSentEvent
from ._prefetch import PrefetchGate
from ._streaminfo import where

if TYPE_CHECKING:
    from ._stream import StreamSpec

__all__ = ["Content", "Opened", "Source", "classify"]

logger = logging.getLogger("trio_sse")

Feed = Callable[[], Awaitable[None]]


# How an anyio receive stream ends: one tuple for every stream, not one each (issue 18).
_ANYIO_END = (anyio.EndOfStream, anyio.ClosedResourceError)


class Source:
    """What the writer reads: a memory channel, and the exceptions its receive raises.

    Normalises anyio's (``WouldBlock``/``EndOfStream``) and trio's (``WouldBlock``/
    ``EndOfChannel``) exceptions so that the writer loop is written once. ``gate`` is the
    iterable's :class:`PrefetchGate` (the writer returns a credit per item the server
    accepted), ``None`` for other content.
    """

    __slots__ = ("end", "gate", "stream", "would_block")

    def __init__(
        self,
        stream: Any,
        would_block: type[BaseException],
        end: tuple[type[BaseException], ...],
        gate: PrefetchGate | None = None,
    ) -> None:
        self.stream = stream
        self.would_block = would_block
        self.end = end
        self.gate = gate

    @classmethod
    def from_anyio(
        cls, stream: MemoryObjectReceiveStream[Any], gate: PrefetchGate | None = None
    ) -> Source:
        return cls(stream, anyio.WouldBlock, _ANYIO_END, gate)

    @classmethod
    def from_trio(cls, channel: Any) -> Source:
        return cls(channel, *trio_channel_exceptions())

    def close(self) -> None:
        self.stream.close()


# One stream's view of its content: the writer's source, the task that feeds it (if any) and
# the send end that task feeds (a ``ProducerSendStream``, given its scopes by the stream).
Opened = tuple[Source, Feed | None, MemoryObjectSendStream[Any] | None]


class Content:
    """The content of one response, of one kind; shared by all the response's streams."""

    __slots__ = ("value",)

    #: The stream opens a channel of the content's own to read (see :class:`DirectContent`).
    opens_channel = False

    def __init__(self, value: Any) -> None:
        self.value = value

    def check_runnable(self) -> None:
        """Raise ``RuntimeError`` if the content cannot be streamed on the running event loop.

        Called by the response before anything is sent (so the server answers 500, not a 200
        whose body breaks off). Sync, not a checkpoint."""

    def open(self, spec: StreamSpec) -> Opened:  # pragma: no cover (every kind has its own)
        """For one stream: what the writer reads, and the task that feeds it (if any). Sync."""
        raise NotImplementedError

    def open_channel(self) -> Any:  # pragma: no cover (only kinds that open a channel)
        """When :attr:`opens_channel`: the async context manager of the channel each stream
        reads (leaving it closes the channel), instead of :meth:`open`."""
        raise NotImplementedError

    async def discard(self) -> None:
        """The response will not stream: release the content (close a channel or an iterator).

        A checkpoint only for an async iterator's ``aclose()``."""


class ProducerFunction(Content):
    """``async def producer(send, *args)``: run beside the writer, fed a bounded channel."""

    __slots__ = ("args",)

    def __init__(self, value: Any, args: tuple[Any, ...]) -> None:
        super().__init__(value)
        self.args = args

    def open(self, spec: StreamSpec) -> Opened:
        send_stream, receive_stream = producer_pair(spec.max_buffer_size)
        feed = functools.partial(_produce, self.value, send_stream, self.args)
        return Source.from_anyio(receive_stream), feed, send_stream


class AnyioChannel(Content):
    """An anyio ``MemoryObjectReceiveStream``: read directly; closed by the stream at its end."""

    __slots__ = ()

    def open(self, spec: StreamSpec) -> Opened:
        return Source.from_anyio(self.value), None, None

    async def discard(self) -> None:
        self.value.close()


class TrioChannel(AnyioChannel):
    """A trio ``MemoryReceiveChannel``: as an anyio channel, but only under trio."""

    __slots__ = ()

    def check_runnable(self) -> None:
        if not running_under_trio():
            raise RuntimeError(
                "a trio MemoryReceiveChannel can only be streamed under trio; "
                "use anyio.create_memory_object_stream() for code that runs on asyncio"
            )

    def open(self, spec: StreamSpec) -> Opened:
        return Source.from_trio(self.value), None, None


class AsyncIterableContent(Content):
    """An async iterable (sse-starlette's content): pumped, closed with ``aclose()``."""

    __slots__ = ()

    def open(self, spec: StreamSpec) -> Opened:
        send_stream, receive_stream = producer_pair(spec.max_buffer_size)
        gate = PrefetchGate(spec.max_prefetch)  # pulled only as far ahead as the gate lets it
        feed = functools.partial(
            _pump_async, self.value, send_stream, gate, _timeout(spec.cleanup_timeout)
        )
        return Source.from_anyio(receive_stream, gate), feed, send_stream

    async def discard(self) -> None:
        aclose = getattr(self.value, "aclose", None)
        if aclose is not None:
            await aclose()


class SyncIterableContent(Content):
    """A sync iterable: pumped from a worker thread, one ``next()`` per call; ``close()``-d."""

    __slots__ = ()

    def open(self, spec: StreamSpec) -> Opened:
        send_stream, receive_stream = producer_pair(spec.max_buffer_size)
        gate = PrefetchGate(spec.max_prefetch)
        feed = functools.partial(_pump_sync, self.value, send_stream, gate)
        return Source.from_anyio(receive_stream, gate), feed, send_stream

    async def discard(self) -> None:
        close = getattr(self.value, "close", None)
        if close is not None:
            close()


class DirectContent(Content):
    """A ``DirectSource``: each stream opens its channel (``open_channel``) and reads it."""

    __slots__ = ()

    opens_channel = True

    def open(self, spec: StreamSpec) -> Opened:  # pragma: no cover (the stream opens it)
        raise AssertionError("a DirectSource's channel is opened by the stream")

    def open_channel(self) -> Any:
        return self.value.open_channel()


def classify(content: object, args: tuple[Any, ...]) -> Content:
    """The :class:`Content` for what was given to ``EventSourceResponse``; ``TypeError`` if
    it is none of the kinds (naming what to do instead) or *args* go to anything but a
    producer function."""
    kind: type[Content]
    if isinstance(content, MemoryObjectReceiveStream):
        kind = AnyioChannel
    elif isinstance(content, DirectSource):
        kind = DirectContent
    elif is_trio_channel(content):
        kind = TrioChannel
    elif inspect.isasyncgenfunction(content) or inspect.isgeneratorfunction(content):
        name = getattr(content, "__name__", "gen")
        raise TypeError(
            f"EventSourceResponse got the generator function {name!r} itself: call it "
            f"({name}()) to pass a generator, or write a producer `async def producer(send)`"
        )
    elif isinstance(content, (str, bytes, bytearray, memoryview, Mapping, ServerSentEvent)):
        raise TypeError(
            f"EventSourceResponse content must be a producer function, a receive channel or "
            f"an iterable of events, not a single {type(content).__name__}; wrap it in a list"
        )
    elif isinstance(content, AsyncIterable):
        kind = AsyncIterableContent
    elif isinstance(content, Iterable):
        kind = SyncIterableContent
    elif callable(content):
        return ProducerFunction(content, args)
    else:
        raise TypeError(
            "EventSourceResponse content must be a producer function `async def producer(send)`, "
            "a memory receive channel (anyio or trio), an async iterable or an iterable; "
            f"got {type(content).__name__}"
        )
    if args:
        raise TypeError("positional arguments after content are passed to a producer function only")
    return kind(content)


# -- the tasks that feed a stream's channel --------------------------------------------------


async def _produce(
    producer: Callable[..., Awaitable[None]],
    send_stream: MemoryObjectSendStream[Any],
    args: tuple[Any, ...],
) -> None:
    async with send_stream:
        await producer(send_stream, *args)


async def _pump_async(
    iterable: AsyncIterable[Any],
    send_stream: MemoryObjectSendStream[Any],
    gate: PrefetchGate,
    cleanup_timeout: float,
) -> None:
    iterator = aiter(iterable)
    send = send_stream.send
    # The stream made it a ``ProducerSendStream`` (``_stream``): ``offer`` sends without a
    # coroutine per item.
    assert isinstance(send_stream, ProducerSendStream)
    offer = send_stream.offer
    pull = iterator.__anext__
    try:
        async with send_stream:
            while True:
                # Credits first: at most ``max_prefetch`` items taken and not yet accepted by
                # the server. All the credits there are are taken at once (the writer returns
                # a batch's worth after each send), then spent one pull each; the iterator's
                # own awaits are its schedule points, the send end's ``send`` adds one only
                # when the buffer is full or a time slice is over (see ``_channels``), and an
                # iterator that never waits gives way at the gate once they are spent. So the
                # items it makes without waiting reach the writer together, as one message.
                credits = gate.take()
                if not credits:
                    await gate.park()
                    continue
                for _ in range(credits):
                    try:
                        item = await pull()
                    except StopAsyncIteration:
                        return
                    if not offer(item):  # sent at once, unless ``send`` would take a pass
                        await send(item)  # a scheduling point once per slice (``_channels``)
    finally:
        # Cancelled while the generator sat at a ``yield``: it is suspended, not finished,
        # and only aclose() runs its ``finally`` now instead of at garbage collection.
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            with anyio.move_on_after(cleanup_timeout, shield=True) as scope:
                await aclose()
            if scope.cancelled_caught:
                logger.warning("trio_sse: closing the stream's async iterator timed out%s", where())


async def _pump_sync(
    iterable: Iterable[Any], send_stream: MemoryObjectSendStream[Any], gate: PrefetchGate
) -> None:
    iterator = iter(iterable)
    done = object()
    try:
        async with send_stream:
            while True:
                await gate.acquire()  # as in ``_pump_async``
                # One worker-thread call per item: a blocking iterator never blocks the loop.
                # The call is not abandoned on cancellation (the thread would keep running the
                # iterator), so a disconnect waits for the current next() to return.
                item = await anyio.to_thread.run_sync(next, iterator, done)
                if item is done:
                    break
                await send_stream.send(item)
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(close)


def _timeout(value: float | None) -> float:
    return float("inf") if value is None else value
