"""A subscriber of a :class:`~trio_sse.Broadcaster`: bounded buffer, overflow policy, replay.

A :class:`Subscriber` knows nothing of the hub. It is given what it touches: its topic and
options, the hub's :class:`Counters` (which it increments), a callable that unregisters it, and,
for a replay too large for its buffer, a callable that starts a task in the hub's task group.

The hub calls :meth:`Subscriber.offer` for each live event, in position order and one at a time
(:meth:`Subscriber.wait_and_offer` when ``offer`` says the ``block`` policy must wait). A
resuming subscriber is registered *before* the history is read: live events arriving meanwhile
queue in its backlog (bounded, same overflow policy); :meth:`Subscriber.begin_replay` then sends
the replay, then the backlog minus what the replay already covered (compared by position), and
only then does the subscriber go live. No gap, no duplicate, no reordering (issue #5).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable, Coroutine
from enum import StrEnum
from typing import Any, NamedTuple

import anyio

from ._channels import parking_pair
from ._events import ServerSentEvent
from ._validate import is_int, is_number, shown
from .backends._base import Entry, Position

__all__ = [
    "DEFAULT_BLOCK_TIMEOUT",
    "Counters",
    "FilteredSubscriber",
    "Options",
    "Overflow",
    "StartTask",
    "Subscriber",
    "check_options",
]

logger = logging.getLogger("trio_sse")

DEFAULT_BLOCK_TIMEOUT = 5.0

StartTask = Callable[[Callable[[], Coroutine[Any, Any, None]]], None]
"""``start_task(function)``: run ``await function()`` in a task group that outlives the call."""


class Overflow(StrEnum):
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


class Counters:
    """A hub's counters: owned (and read) by the hub, incremented by its subscribers.

    ``published``: events published through the hub; ``delivered``: events put into
    subscribers' buffers (one per subscriber and event); ``dropped``: events discarded by
    ``drop_oldest``; ``disconnected``: subscribers ended by ``disconnect`` or a ``block``
    timeout; ``revoked``: subscribers ended by ``Broadcaster.revoke``; ``withheld``: events
    an ``allow_event`` filter kept from a subscriber. Plain ints, no locking: a hub is used
    from one event loop.
    """

    __slots__ = ("delivered", "disconnected", "dropped", "published", "revoked", "withheld")

    def __init__(self) -> None:
        self.published = 0
        self.delivered = 0
        self.dropped = 0
        self.disconnected = 0
        self.revoked = 0
        self.withheld = 0


class Options(NamedTuple):
    """A subscriber's options, checked by :func:`check_options`."""

    max_buffer_size: int
    overflow: Overflow
    block_timeout: float


def check_options(max_buffer_size: object, on_overflow: object, block_timeout: object) -> Options:
    """Check ``subscribe()``'s options: a wrong type is ``TypeError``, a bad value ``ValueError``.

    Each message names the argument and shows the value. Every type is checked before any
    value, so a wrong type is a ``TypeError`` whatever the other arguments are.
    """
    if not is_int(max_buffer_size):
        raise TypeError(f"max_buffer_size must be an int, got {shown(max_buffer_size)}")
    if not isinstance(on_overflow, str):  # an Overflow is a str
        raise TypeError(
            f"on_overflow must be a trio_sse.Overflow or its value (a str), got {shown(on_overflow)}"
        )
    if block_timeout is not None and not is_number(block_timeout):
        raise TypeError(f"block_timeout must be a number of seconds, got {shown(block_timeout)}")
    assert isinstance(max_buffer_size, int)
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
        return _shared(Options(max_buffer_size, overflow, DEFAULT_BLOCK_TIMEOUT))
    if overflow is not Overflow.BLOCK:
        raise ValueError(
            f"block_timeout only applies to on_overflow='block', not {overflow.value!r} "
            f"(got block_timeout={block_timeout!r})"
        )
    assert isinstance(block_timeout, (int, float))
    if math.isnan(block_timeout) or block_timeout <= 0:
        raise ValueError(f"block_timeout must be > 0 seconds, got {block_timeout!r}")
    return _shared(Options(max_buffer_size, overflow, float(block_timeout)))


# Options met so far, each kept once: a subscription keeps its options until it ends, and most
# subscriptions of an app have the same ones (one object for them all, issue 18). Bounded:
# an app that makes options of every size gets its own objects past the first few dozen.
_SHARED_OPTIONS: dict[Options, Options] = {}
_MAX_SHARED_OPTIONS = 64


def _shared(options: Options) -> Options:
    if len(_SHARED_OPTIONS) >= _MAX_SHARED_OPTIONS:
        return options
    return _SHARED_OPTIONS.setdefault(options, options)


_NO_PENDING: deque[tuple[Position | None, ServerSentEvent]] = deque(maxlen=0)
_NO_BACKLOG: deque[Entry] = deque(maxlen=0)


class Subscriber:
    """One subscriber's buffer and its state machine: replaying -> live -> closed.

    Owns both ends of its channel (:attr:`receive` is what the consumer reads); the
    subscription closes :attr:`receive`, :meth:`end` closes the send end. *counters* are
    incremented as events are delivered, dropped or the subscriber is disconnected;
    *unregister* is called once, with the subscriber, when it ends. Nothing here blocks except
    :meth:`wait_and_offer` and the replay task.
    """

    __slots__ = (
        "backlog",
        "block_timeout",
        "closed",
        "counters",
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
        "unregister",
    )

    def __init__(
        self,
        topic: str,
        options: Options,
        counters: Counters,
        unregister: Callable[[Subscriber], None],
        *,
        replaying: bool,
    ) -> None:
        self.topic = topic
        # Shared with the hub and every other subscriber of it: one reference each, and no
        # attribute chain on the delivery path (``self.counters.delivered += 1``).
        self.counters = counters
        self.unregister = unregister
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
                self.counters.dropped += 1
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
        self.counters.delivered += 1
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
            self.counters.dropped += 1
        try:
            self.send.send_nowait(entry.event)
        except anyio.WouldBlock:
            self.counters.dropped += 1
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.end()
        else:
            self.counters.delivered += 1
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
                self.counters.delivered += 1
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
        self,
        items: deque[tuple[Position | None, ServerSentEvent]],
        after: Position | None,
        start_task: StartTask,
    ) -> None:
        """Send *items*, then the queued live events after them, then go live. Never blocks.

        *after* is the position the replay ends at (live events up to it are skipped). What
        fits in the buffer is sent now; if something is left, ``start_task`` runs a task (in
        the hub's task group) that sends the rest as the consumer reads; :meth:`end` cancels it.
        """
        if self.closed:
            return
        self.pending = items
        self.last = after
        if self._catch_up_nowait():
            return
        self.replay_scope = anyio.CancelScope()
        start_task(self._catch_up)

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
        self.counters.delivered += 1

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

    def revoke(self, farewell: ServerSentEvent | None) -> int:
        """End this subscriber for a revocation: 1 if it was still open, else 0. Never blocks.

        What is buffered and not yet read is discarded (a revoked subscriber stops receiving
        now, not after its backlog), then *farewell* (if any) is the last thing it reads.
        """
        if self.closed:
            return 0
        receive = self.receive
        try:
            while True:
                receive.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            pass
        if farewell is not None:
            try:
                self.send.send_nowait(farewell)  # the buffer is empty: it fits
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # nobody is listening
        self.counters.revoked += 1
        self.end()
        return 1

    def disconnect(self) -> None:
        """End this subscriber because of its overflow policy (counted in the stats)."""
        if not self.closed:
            self.counters.disconnected += 1
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
        self.unregister(self)


class FilteredSubscriber(Subscriber):
    """A subscriber whose :class:`~trio_sse.Access` has an ``allow_event`` filter.

    The filter is applied where an event enters this subscriber: :meth:`offer` for live
    events (those queued behind a replay too) and :meth:`begin_replay` for the history, so no
    path reaches the channel without it. Plain subscribers never run this code: the hub's
    delivery loop is the same for both, and costs nothing more without a filter.
    """

    __slots__ = ("allow_event", "filter_failed")

    def __init__(
        self,
        topic: str,
        options: Options,
        counters: Counters,
        unregister: Callable[[Subscriber], None],
        *,
        replaying: bool,
        allow_event: Callable[[ServerSentEvent], bool],
    ) -> None:
        super().__init__(topic, options, counters, unregister, replaying=replaying)
        self.allow_event = allow_event
        self.filter_failed = False

    def allows(self, event: ServerSentEvent) -> bool:
        """Run the filter; one that raises withholds the event (logged once). Never blocks."""
        try:
            allowed = bool(self.allow_event(event))
        except Exception:
            allowed = False
            if not self.filter_failed:
                self.filter_failed = True
                logger.exception(
                    "trio_sse: allow_event raised for a subscriber of %r; its events are "
                    "withheld (logged once per subscriber)",
                    self.topic,
                )
        if not allowed:
            self.counters.withheld += 1
        return allowed

    def offer(self, entry: Entry) -> bool:
        if self.closed or not self.allows(entry.event):
            return True
        return super().offer(entry)

    def begin_replay(
        self,
        items: deque[tuple[Position | None, ServerSentEvent]],
        after: Position | None,
        start_task: StartTask,
    ) -> None:
        # The reset event (no position) is the hub's own and carries only the client's id.
        kept = deque(item for item in items if item[0] is None or self.allows(item[1]))
        super().begin_replay(kept, after, start_task)

    def _sent(self, position: Position | None) -> None:
        # Never below the replay's end: when the filter withheld the replay's last events,
        # live events up to that end must still be recognised as already replayed.
        last = self.last
        if position is not None and last is not None and position < last:
            position = last
        super()._sent(position)
