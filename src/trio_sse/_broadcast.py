"""``Broadcaster``: topics, bounded subscribers, history, and ``Last-Event-ID`` replay.

How the pieces fit (issue #5):

* a **backend** (``backends/``) stores each topic's history and hands live events to
  :meth:`Broadcaster._deliver`, per topic in position order and one at a time;
* each **subscriber** owns a bounded anyio memory channel; delivery never waits for it except
  under the ``block`` policy, so one slow subscriber does not hold back the others;
* a **resuming** subscriber is registered for live events *before* the history is read: live
  events arriving meanwhile are queued (bounded, same overflow policy), then the replay is
  sent, then the queue minus what the replay already covered (compared by position), and only
  then does the subscriber go live. No gap, no duplicate, no reordering.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Any, NamedTuple

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._channels import DirectSource, parking_pair
from ._events import ServerSentEvent, event_from_mapping
from .backends._base import Backend, Entry, Position
from .backends.memory import MemoryBackend

__all__ = [
    "DEFAULT_BLOCK_TIMEOUT",
    "MAX_LAST_EVENT_ID_LENGTH",
    "BroadcastStats",
    "Broadcaster",
    "Overflow",
    "Subscription",
]

logger = logging.getLogger("trio_sse")

MAX_LAST_EVENT_ID_LENGTH = 256
"""A longer ``Last-Event-ID`` is not looked up: it is treated as unknown (a reset event)."""

DEFAULT_BLOCK_TIMEOUT = 5.0

_BAD_ID_CHARACTERS = ("\r", "\n", "\0")  # no event id can contain them (WHATWG "id" field)

Producer = Callable[[MemoryObjectSendStream[Any]], Awaitable[None]]


class Overflow(str, Enum):
    """What happens when a subscriber's buffer is full and another event arrives.

    * ``DISCONNECT`` (``"disconnect"``, the default): the subscriber is dropped. Its channel
      ends once it has read what is already buffered; an SSE client then reconnects with its
      ``Last-Event-ID`` and the history fills the gap, as a Mercure hub does. Lossless as long
      as the client comes back before the history moves past it (else it gets a ``reset``).
    * ``DROP_OLDEST`` (``"drop_oldest"``): the oldest buffered event is dropped to make room;
      the subscriber stays connected and keeps the newest events (lossy, for "latest value"
      feeds such as prices or positions).
    * ``BLOCK`` (``"block"``): delivery waits for room, up to the subscription's
      ``block_timeout``, then disconnects the subscriber as ``DISCONNECT`` does. While it
      waits, the events after it wait too: on the memory backend ``publish`` on that topic
      does not return, on Redis the hub's reader pauses (every topic of that process). Use it
      for a few trusted, usually fast consumers, never for the public.
    """

    DISCONNECT = "disconnect"
    DROP_OLDEST = "drop_oldest"
    BLOCK = "block"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class BroadcastStats:
    """A snapshot of a hub's counters, from :meth:`Broadcaster.stats`.

    * ``subscribers``: topic -> number of current subscribers in this process;
    * ``published``: events published through this hub;
    * ``delivered``: events put into subscribers' buffers (one per subscriber and event);
    * ``dropped``: events discarded by ``drop_oldest``;
    * ``disconnected``: subscribers ended by ``disconnect`` or a ``block`` timeout.
    """

    subscribers: Mapping[str, int]
    published: int
    delivered: int
    dropped: int
    disconnected: int

    @property
    def total_subscribers(self) -> int:
        return sum(self.subscribers.values())


class _Options(NamedTuple):
    max_buffer_size: int
    overflow: Overflow
    block_timeout: float


def _check_options(max_buffer_size: object, on_overflow: object, block_timeout: object) -> _Options:
    if isinstance(max_buffer_size, bool) or not isinstance(max_buffer_size, int):
        raise TypeError(f"max_buffer_size must be an int, got {max_buffer_size!r}")
    if max_buffer_size < 1:
        raise ValueError(
            f"max_buffer_size must be >= 1 (subscriber buffers are bounded), got {max_buffer_size}"
        )
    try:
        overflow = Overflow(on_overflow)
    except ValueError:
        choices = ", ".join(repr(policy.value) for policy in Overflow)
        raise ValueError(
            f"on_overflow must be one of {choices} (or a trio_sse.Overflow), got {on_overflow!r}"
        ) from None
    if block_timeout is None:
        timeout = DEFAULT_BLOCK_TIMEOUT
    else:
        if overflow is not Overflow.BLOCK:
            raise ValueError(
                f"block_timeout only applies to on_overflow='block', not {overflow.value!r}"
            )
        if isinstance(block_timeout, bool) or not isinstance(block_timeout, (int, float)):
            raise TypeError(f"block_timeout must be a number of seconds, got {block_timeout!r}")
        if math.isnan(block_timeout) or block_timeout <= 0:
            raise ValueError(f"block_timeout must be > 0 seconds, got {block_timeout!r}")
        timeout = float(block_timeout)
    return _Options(max_buffer_size, overflow, timeout)


def _check_topic(topic: object) -> str:
    if not isinstance(topic, str):
        raise TypeError(f"topic must be a str, got {type(topic).__name__}")
    if not topic:
        raise ValueError("topic must not be empty")
    return topic


def _as_event(item: object) -> ServerSentEvent:
    if isinstance(item, ServerSentEvent):
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        raise TypeError(
            "publish() takes a ServerSentEvent, a dict or data; pre-encoded bytes cannot be "
            "kept in the history or given an id"
        )
    if isinstance(item, Mapping):
        return event_from_mapping(item)
    return ServerSentEvent(item)


class _Resume(NamedTuple):
    lookup: str | None  # the id to look up; None: not a possible id, replay everything
    echo: str | None  # shown in the reset event; None when too long to echo


def _parse_last_event_id(value: object) -> _Resume | None:
    """Untrusted ``Last-Event-ID`` -> what to look up. Never raises for str or bytes input."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) > 4 * MAX_LAST_EVENT_ID_LENGTH:
            return _Resume(None, None)
        text = raw.decode("utf-8", "replace")
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    else:
        raise TypeError(f"last_event_id must be a str, bytes or None, got {type(value).__name__}")
    if not text:
        return None  # what a browser sends when it has no id: not a resume (WHATWG 9.2.4)
    if len(text) > MAX_LAST_EVENT_ID_LENGTH:
        return _Resume(None, None)
    # The echo must be encodable: a lone surrogate would break the stream's UTF-8 encoding.
    echo = text.encode("utf-8", "replace").decode("utf-8")
    if any(character in text for character in _BAD_ID_CHARACTERS):
        return _Resume(None, echo)
    return _Resume(text, echo)


def reset_event(reason: str, last_event_id: str | None) -> ServerSentEvent:
    """The event sent first to a subscriber whose ``Last-Event-ID`` cannot be resumed."""
    data = json.dumps(
        {"reason": reason, "last_event_id": last_event_id},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return ServerSentEvent(data, event="reset")


def _header_text(value: str) -> str:
    # ASGI servers hand header bytes to Starlette, which decodes them as latin-1; browsers send
    # a non-ASCII Last-Event-ID as UTF-8. Undo the mix-up so such ids can be found again.
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def last_event_id_from(source: object) -> str | bytes | None:
    """The ``Last-Event-ID`` a request carries, or *source* itself when it is an id or ``None``.

    For a request (anything with ``headers``, such as a Starlette ``Request``): the
    ``Last-Event-ID`` header, else the ``lastEventId`` query parameter (for clients that cannot
    set headers; the header wins because a browser's ``EventSource`` sends the newest id in the
    header on reconnection while its URL still holds the first one).
    """
    if source is None or isinstance(source, (str, bytes)):
        return source
    headers = getattr(source, "headers", None)
    if headers is None:
        raise TypeError(
            "expected a request (with .headers), a Last-Event-ID str or bytes, or None; "
            f"got {type(source).__name__}"
        )
    header = headers.get("last-event-id")
    if header:
        return _header_text(str(header))
    query = getattr(source, "query_params", None)
    if query is not None:
        value = query.get("lastEventId")
        if value:
            return str(value)
    return None


_NO_PENDING: deque[tuple[Position | None, ServerSentEvent]] = deque(maxlen=0)
_NO_BACKLOG: deque[Entry] = deque(maxlen=0)


class _Subscriber:
    """One subscriber's buffer and its state machine: replaying -> live -> closed."""

    __slots__ = (
        "backlog",
        "block_timeout",
        "closed",
        "hub",
        "last",
        "max_buffer_size",
        "overflow",
        "pending",
        "receive",
        "replay_scope",
        "replaying",
        "send",
        "space",
        "topic",
    )

    def __init__(self, hub: Broadcaster, topic: str, options: _Options, *, replaying: bool) -> None:
        self.hub = hub
        self.topic = topic
        self.max_buffer_size = options.max_buffer_size
        self.overflow = options.overflow
        self.block_timeout = options.block_timeout
        # Its reader parks, and each send wakes it: a thousand subscribers are woken once
        # each per event (see ``_channels``).
        self.send, self.receive = parking_pair(options.max_buffer_size)
        self.replaying = replaying
        # The replay still to send, and the live events that arrived during it. A live-only
        # subscriber (most of them) never uses either: it shares one empty deque, never
        # appended to (only a replaying subscriber appends), rather than keeping two of its
        # own (~0.6 KiB each) for its whole life.
        self.pending: deque[tuple[Position | None, ServerSentEvent]] = (
            deque() if replaying else _NO_PENDING
        )
        self.backlog: deque[Entry] = deque() if replaying else _NO_BACKLOG
        # The position of the last event sent by the replay; live events up to it are skipped.
        self.last: Position | None = None
        self.space: anyio.Event | None = None  # set when the backlog gets room
        self.replay_scope: anyio.CancelScope | None = None
        self.closed = False

    # -- delivery of live events (called by the hub, in position order, one at a time) --------

    def offer(self, entry: Entry) -> bool:
        """Deliver without waiting. ``False``: full under ``block``, call :meth:`wait_and_offer`."""
        if self.closed:
            return True
        if self.replaying:
            if len(self.backlog) < self.max_buffer_size:
                self.backlog.append(entry)
                return True
            if self.overflow is Overflow.DROP_OLDEST:
                self.backlog.popleft()
                self.backlog.append(entry)
                self.hub._dropped += 1
                return True
            if self.overflow is Overflow.DISCONNECT:
                self.disconnect()
                return True
            return False
        if self._replayed(entry):
            return True
        try:
            self.send.send_nowait(entry.event)
        except anyio.WouldBlock:
            if self.overflow is Overflow.DISCONNECT:
                self.disconnect()
                return True
            if self.overflow is Overflow.BLOCK:
                return False
            return self._replace_oldest(entry)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.end()  # the consumer closed its receive end: nobody is listening
            return True
        self.hub._delivered += 1
        return True

    def _replayed(self, entry: Entry) -> bool:
        """Live, after a replay: was *entry* already sent by the replay?

        A reader that lags behind the replay (Redis: the replay read the stream further than
        the reader had delivered) still brings events the replay sent; they are skipped until
        the live events pass the replay's end.
        """
        last = self.last
        if last is None:
            return False
        if entry.position <= last:
            return True
        self.last = None
        return False

    def _replace_oldest(self, entry: Entry) -> bool:
        try:
            self.receive.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            pass
        else:
            self.hub._dropped += 1
        try:
            self.send.send_nowait(entry.event)
        except anyio.WouldBlock:
            self.hub._dropped += 1
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.end()
        else:
            self.hub._delivered += 1
        return True

    async def wait_and_offer(self, entry: Entry, deadline: float) -> None:
        """Wait for room until *deadline* (``block`` policy), else disconnect. A checkpoint."""
        with anyio.CancelScope(deadline=deadline) as scope:
            while not self.closed:
                if self.replaying:
                    if len(self.backlog) < self.max_buffer_size:
                        self.backlog.append(entry)
                        return
                    space = self.space = anyio.Event()
                    await space.wait()
                    continue
                if self._replayed(entry):
                    return
                try:
                    await self.send.send(entry.event)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self.end()
                    return
                self.hub._delivered += 1
                return
        if scope.cancelled_caught:
            logger.info(
                "trio_sse: a subscriber of %r did not read for %s s: disconnected",
                self.topic,
                self.block_timeout,
            )
            self.disconnect()

    # -- replay ------------------------------------------------------------------------------

    def begin_replay(
        self, items: deque[tuple[Position | None, ServerSentEvent]], after: Position | None
    ) -> None:
        """Send *items*, then the queued live events after them, then go live. Never blocks.

        What fits in the buffer is sent now; if something is left, a task in the hub's task
        group sends the rest as the consumer reads (cancelled when the subscription ends).
        """
        if self.closed:
            return
        self.pending = items
        self.last = after
        if self._catch_up_nowait():
            return
        self.replay_scope = anyio.CancelScope()
        self.hub._start_task(self._catch_up)

    def _next_item(self) -> tuple[Position | None, ServerSentEvent] | None:
        """The next item to send while replaying, dropping queued live events already sent."""
        if self.pending:
            return self.pending[0]
        backlog = self.backlog
        last = self.last
        while backlog:
            entry = backlog[0]
            if last is None or entry.position > last:
                return entry
            backlog.popleft()
            self._room()
        return None

    def _pop_item(self) -> None:
        if self.pending:
            self.pending.popleft()
        else:
            self.backlog.popleft()
            self._room()

    def _sent(self, position: Position | None) -> None:
        if position is not None:
            self.last = position
        self.hub._delivered += 1

    def _catch_up_nowait(self) -> bool:
        """Move replay and queued items into the channel while it has room. ``True``: live now.

        No checkpoint inside: going live happens in the same step as finding both queues empty,
        so no live event can slip between the queue and the channel.
        """
        send_nowait = self.send.send_nowait
        while True:
            item = self._next_item()
            if item is None:
                self.replaying = False
                self._room()
                return True
            try:
                send_nowait(item[1])
            except anyio.WouldBlock:
                return False
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.end()
                return True
            self._pop_item()
            self._sent(item[0])

    async def _catch_up(self) -> None:
        scope = self.replay_scope
        assert scope is not None
        with scope:
            try:
                while not self._catch_up_nowait():
                    item = self._next_item()
                    assert item is not None
                    # Taken off the queue before waiting: a drop_oldest on the queue during
                    # the wait then drops the next one, never the one being sent.
                    self._pop_item()
                    await self.send.send(item[1])
                    self._sent(item[0])
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self.end()
            except Exception:
                logger.exception("trio_sse: replay to a subscriber of %r failed", self.topic)
                self.end()

    def _room(self) -> None:
        space = self.space
        if space is not None:
            self.space = None
            space.set()

    # -- ending ------------------------------------------------------------------------------

    def disconnect(self) -> None:
        """End this subscriber because of its overflow policy (counted in the stats)."""
        if not self.closed:
            self.hub._disconnected += 1
            self.end()

    def end(self) -> None:
        """Stop delivering and close the send end: the consumer reads what is buffered, then
        its channel ends (``EndOfStream``; ``async for`` stops). Idempotent; never blocks."""
        if self.closed:
            return
        self.closed = True
        if self.replay_scope is not None:
            self.replay_scope.cancel()
        self.send.close()  # wakes the reader: it reads what is buffered, then EndOfStream
        self.pending.clear()
        self.backlog.clear()
        self._room()
        self.hub._unregister(self)


class Subscription:
    """``async with hub.subscribe(topic, ...) as events:``, see :meth:`Broadcaster.subscribe`.

    Single use. Entering registers the subscriber, then (when resuming) reads the history:
    a checkpoint; cancelled or failing there (Redis unreachable), it unregisters and the
    exception propagates. The subscription owns both ends of the channel: leaving unregisters
    and closes them (a replay still in progress is cancelled). Leaving never blocks.
    """

    __slots__ = ("_hub", "_options", "_resume", "_subscriber", "_topic", "_watching")

    def __init__(
        self, hub: Broadcaster, topic: str, resume: _Resume | None, options: _Options
    ) -> None:
        self._hub = hub
        self._topic = topic
        self._resume = resume
        self._options = options
        self._subscriber: _Subscriber | None = None
        self._watching = False

    async def __aenter__(self) -> MemoryObjectReceiveStream[ServerSentEvent]:
        if self._subscriber is not None:
            raise RuntimeError("a Subscription can be entered only once")
        hub = self._hub
        hub._check_open()
        topic = self._topic
        resume = self._resume
        subscriber = _Subscriber(hub, topic, self._options, replaying=resume is not None)
        self._subscriber = subscriber
        # Registered for live events before anything else: whatever is published from now on
        # reaches this subscriber, live or queued behind the replay.
        hub._register(subscriber)
        try:
            await hub._backend.watch(topic)
            self._watching = True
            if resume is not None:
                replay = await hub._backend.replay(topic, resume.lookup)
                items: deque[tuple[Position | None, ServerSentEvent]] = deque()
                if replay.status != "found":
                    items.append((None, reset_event(replay.status, resume.echo)))
                items.extend(replay.entries)
                subscriber.begin_replay(items, replay.after)
        except BaseException:
            self._close()
            raise
        return subscriber.receive

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._close()

    def _close(self) -> None:
        subscriber = self._subscriber
        if subscriber is not None:
            subscriber.end()
            subscriber.receive.close()
        if self._watching:
            self._watching = False
            self._hub._backend.unwatch(self._topic)


class Broadcaster:
    """Publish events to topics; subscribers get them live, or resume from a ``Last-Event-ID``.

    ``Broadcaster(backend=None, *, history=1000)``: ``backend`` is a
    :class:`~trio_sse.backends.MemoryBackend` (one process; the default) or a
    :class:`~trio_sse.backends.RedisBackend` (several processes share topics and history).
    ``history`` is how many events each topic retains for replay (Redis trims approximately,
    ``MAXLEN ~``, so it may keep a few more).

    Use it as an async context manager, typically in the app's lifespan::

        async with Broadcaster() as hub:
            ...

    Entering starts the backend (Redis: checks that it answers) and opens the task group that
    owns the hub's tasks (the Redis reader, replays too large for a subscriber's buffer).
    Leaving ends every subscriber's channel (they read what is buffered, then it ends), cancels
    those tasks and closes the backend's connections. A hub is used once, from one event loop.

    **Resuming.** A subscriber that gives a ``last_event_id`` first gets the retained events
    after it, then live events, with no gap, duplicate or reordering between the two. When the
    id cannot be resumed it first gets a **reset event**::

        event: reset
        data: {"reason":"unknown-id","last_event_id":"..."}

    ``reason`` is ``"expired"`` when the id is older than the retained history, and
    ``"unknown-id"`` when it was never published here (another process's memory hub, a hub
    before a restart, a malformed id, or one longer than 256 characters, whose
    ``last_event_id`` is then ``null``). The whole retained history follows, then live events:
    the client learns that it may have missed events and gets everything still known. The
    reset event has no ``id``. ``Last-Event-ID`` is untrusted input; no value makes it raise.
    """

    def __init__(self, backend: Backend | None = None, *, history: int = 1000) -> None:
        if isinstance(history, bool) or not isinstance(history, int):
            raise TypeError(f"history must be an int, got {history!r}")
        if history < 1:
            raise ValueError(f"history must be >= 1 (events kept per topic), got {history}")
        if backend is not None:
            missing = [
                name
                for name in ("start", "aclose", "publish", "replay", "watch", "unwatch")
                if not callable(getattr(backend, name, None))
            ]
            if missing:
                raise TypeError(
                    f"backend must implement trio_sse.backends.Backend; "
                    f"{type(backend).__name__} lacks {', '.join(missing)}"
                )
        self._backend: Backend = backend if backend is not None else MemoryBackend()
        self.history = history
        self._topics: dict[str, dict[_Subscriber, None]] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._state = "new"
        self._published = 0
        self._delivered = 0
        self._dropped = 0
        self._disconnected = 0

    @property
    def backend(self) -> Backend:
        return self._backend

    def __repr__(self) -> str:
        return f"<Broadcaster {self._state} backend={self._backend!r} history={self.history}>"

    # -- lifetime -----------------------------------------------------------------------------

    async def __aenter__(self) -> Broadcaster:
        if self._state != "new":
            raise RuntimeError("a Broadcaster can be entered once (`async with` it in one place)")
        self._state = "starting"
        group = anyio.create_task_group()
        await group.__aenter__()
        try:
            await self._backend.start(group, self._deliver, history=self.history)
        except BaseException:
            self._state = "closed"
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)
            raise
        self._group = group
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._state = "closed"
        for subscribers in list(self._topics.values()):
            for subscriber in list(subscribers):
                subscriber.end()
        group = self._group
        self._group = None
        try:
            if group is not None:
                group.cancel_scope.cancel()
                # The hub's own tasks never raise; the body's exception (if any) is not passed
                # in, so it propagates unchanged instead of inside an exception group.
                await group.__aexit__(None, None, None)
        finally:
            with anyio.CancelScope(shield=True):
                await self._backend.aclose()

    def _check_open(self) -> None:
        if self._state != "open":
            if self._state == "closed":
                raise RuntimeError("this Broadcaster is closed")
            raise RuntimeError("the Broadcaster is not open: use `async with Broadcaster() as hub`")

    def _start_task(self, function: Callable[[], Coroutine[Any, Any, None]]) -> None:
        assert self._group is not None
        self._group.start_soon(function)

    def _register(self, subscriber: _Subscriber) -> None:
        subscribers = self._topics.get(subscriber.topic)
        if subscribers is None:
            subscribers = self._topics[subscriber.topic] = {}
        subscribers[subscriber] = None

    def _unregister(self, subscriber: _Subscriber) -> None:
        subscribers = self._topics.get(subscriber.topic)
        if subscribers is not None:
            subscribers.pop(subscriber, None)
            if not subscribers:
                del self._topics[subscriber.topic]

    # -- publishing ---------------------------------------------------------------------------

    async def publish(self, topic: str, event: object) -> str:
        """Publish *event* to *topic* and return its id.

        *event* is a :class:`ServerSentEvent`, a ``dict`` of its fields, or data (``str()``-ed).
        An event without an id gets one (memory: ``"<epoch>-<n>"``; Redis: the stream id);
        an event with an id keeps it (memory: unique within the retained history; Redis: must
        be a stream id above the last one), else ``ValueError``. An event that cannot be
        encoded as UTF-8 (a lone surrogate) is refused with ``ValueError``.

        A checkpoint. Memory: returns once each local subscriber has the event buffered or was
        handled by its overflow policy (``block`` may make it wait, see :class:`Overflow`).
        Redis: returns once Redis stored it; every hub's reader then delivers it.
        Cancelled before the event is stored, nothing is published; a cancelled memory publish
        that was waiting for ``block`` subscribers disconnects them (they resume by replay).
        """
        self._check_open()
        _check_topic(topic)
        built = _as_event(event)
        try:
            # Refused here, not in every subscriber's stream: an event that cannot be encoded
            # (a lone surrogate from untrusted JSON, say) would end every stream it reaches and
            # come back with every resume. The encoding is cached on the event.
            built.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(f"the event cannot be encoded as UTF-8: {exc.reason}") from exc
        event_id = await self._backend.publish(topic, built)
        self._published += 1
        return event_id

    async def _deliver(self, topic: str, entry: Entry) -> None:
        """Fan one live event out to this process's subscribers of *topic*.

        Every subscriber is offered the event without waiting first, so a full ``block``
        subscriber never delays the others' copy of this event; then the ``block`` ones are
        waited for, each until its own deadline counted from now.
        """
        subscribers = self._topics.get(topic)
        if not subscribers:
            return
        blocked: deque[_Subscriber] | None = None
        for subscriber in tuple(subscribers):
            if not subscriber.offer(entry):
                if blocked is None:
                    blocked = deque()
                blocked.append(subscriber)
        if blocked is None:
            return
        start = anyio.current_time()
        try:
            while blocked:
                subscriber = blocked[0]
                await subscriber.wait_and_offer(entry, start + subscriber.block_timeout)
                blocked.popleft()
        finally:
            # Cancelled while waiting: those not served yet would silently miss this event.
            # Ending them instead keeps the guarantee: they resume from their last event.
            for subscriber in blocked:
                subscriber.disconnect()

    # -- subscribing --------------------------------------------------------------------------

    def subscribe(
        self,
        topic: str,
        *,
        last_event_id: str | bytes | None = None,
        max_buffer_size: int = 256,
        on_overflow: Overflow | str = Overflow.DISCONNECT,
        block_timeout: float | None = None,
    ) -> Subscription:
        """Subscribe to *topic*: ``async with hub.subscribe(topic) as events: ...``.

        ``events`` is an anyio ``MemoryObjectReceiveStream`` of :class:`ServerSentEvent`:
        iterate it (``async for``), or stream it as is with ``EventSourceResponse(events)``.
        It ends (``async for`` stops) when the subscriber is disconnected by its overflow
        policy or the hub closes; the ``async with`` closes it on exit.

        * ``last_event_id``: resume after this id (untrusted input: any str or bytes; ``None``
          or ``""``: live events only). See the class docstring for the ``reset`` event.
        * ``max_buffer_size``: events buffered for this subscriber (>= 1). While a replay is
          being sent, live events queue in a second buffer of the same size.
        * ``on_overflow``: an :class:`Overflow` or its value (``"disconnect"``,
          ``"drop_oldest"``, ``"block"``); ``block_timeout`` (``block`` only; default 5 s):
          how long delivery waits for room before disconnecting this subscriber.

        Arguments are checked here (``TypeError``/``ValueError``), not when entering.
        """
        options = _check_options(max_buffer_size, on_overflow, block_timeout)
        return Subscription(self, _check_topic(topic), _parse_last_event_id(last_event_id), options)

    def stream(
        self,
        topic: str,
        request_or_last_event_id: object = None,
        /,
        *,
        max_buffer_size: int = 256,
        on_overflow: Overflow | str = Overflow.DISCONNECT,
        block_timeout: float | None = None,
    ) -> Producer:
        """A producer for ``EventSourceResponse(hub.stream(topic, request))``.

        The second argument is a request (its ``Last-Event-ID`` header, else its
        ``lastEventId`` query parameter, see :func:`last_event_id_from`), an id, or ``None``.
        The other options are those of :meth:`subscribe`, checked now.

        The response subscribes when the stream starts and streams the subscription itself
        (no forwarding task: an event costs one wake-up per subscriber) until it ends
        (overflow policy, hub closed) or the response ends (client gone, shutdown); then it
        unsubscribes, the body ends cleanly and an ``EventSource`` reconnects with its last
        id. A subscription that cannot start (Redis unreachable) is logged and ends the
        body at once, as a producer that raises does. Called as a producer function
        (``await producer(send)``), it forwards the events into *send* and closes it.
        """
        _check_topic(topic)
        resume = _parse_last_event_id(last_event_id_from(request_or_last_event_id))
        options = _check_options(max_buffer_size, on_overflow, block_timeout)
        return DirectSource(functools.partial(Subscription, self, topic, resume, options))

    # -- statistics ---------------------------------------------------------------------------

    def stats(self) -> BroadcastStats:
        """A snapshot of the counters (see :class:`BroadcastStats`). Never blocks."""
        return BroadcastStats(
            subscribers={topic: len(subscribers) for topic, subscribers in self._topics.items()},
            published=self._published,
            delivered=self._delivered,
            dropped=self._dropped,
            disconnected=self._disconnected,
        )
