"""The in-memory backend: one process, history in a bounded deque per topic.

Ids are ``"<epoch>-<n>"``: a random epoch drawn when the backend is created and a counter
shared by all topics of the hub.  The epoch is what makes a ``Last-Event-ID`` from before a
restart (or from another process behind the same load balancer) *unknown* rather than
silently misread as a position in the new history.
"""

from __future__ import annotations

import bisect
import secrets
from collections import deque
from collections.abc import Hashable

import anyio
import anyio.abc
import anyio.lowlevel

from .._events import ServerSentEvent
from .._patterns import Patterns, index_id
from .._resume import parse_memory_id
from ._base import Deliver, Entry, Replay

__all__ = ["MemoryBackend"]


class _Topic:
    __slots__ = ("entries", "index", "lock")

    def __init__(self) -> None:
        self.entries: deque[Entry] = deque()
        self.index: dict[str, int] = {}  # event id -> sequence number, for retained events
        # Publishing (id, history, delivery) is serialised per topic so that every subscriber
        # sees the history order even while one publish waits for a ``block`` subscriber.
        self.lock = anyio.Lock()


async def _acquire(lock: anyio.Lock) -> None:
    """Take *lock*: at once when free (no checkpoint), else wait for it (a checkpoint)."""
    try:
        lock.acquire_nowait()
    except anyio.WouldBlock:
        await lock.acquire()


class MemoryBackend:
    """Topics and their history in this process's memory (the default backend).

    Nothing is shared between processes and nothing survives a restart: use
    :class:`~trio_sse.backends.RedisBackend` for that.  Topics are kept (with up to
    ``history`` events each) for the life of the hub.
    """

    def __init__(self) -> None:
        self.epoch = secrets.token_hex(4)
        self._sequence = 0
        self._topics: dict[str, _Topic] = {}
        self._deliver: Deliver | None = None
        self._history = 0
        self._patterns: Patterns | None = None

    def declare_patterns(self, patterns: Patterns) -> None:
        """Keep an index of each of *patterns* (the hub's, before :meth:`start`): every
        publish to a matching topic appends to it too (see ``_patterns``)."""
        self._patterns = patterns

    async def start(
        self, task_group: anyio.abc.TaskGroup, deliver: Deliver, *, history: int
    ) -> None:
        if self._deliver is not None:
            raise RuntimeError("this MemoryBackend already serves a Broadcaster")
        self._deliver = deliver
        self._history = history

    async def aclose(self) -> None:
        pass

    async def publish(self, topic: str, event: ServerSentEvent) -> str:
        """Append to the topic's history and deliver to the local subscribers.

        A checkpoint, taken first (issue 18): a cancellation pending, or delivered while the
        other ready tasks run, raises ``Cancelled`` there with nothing stored; once past it, the
        publish stores and delivers and returns with no scheduling pass after, so the publisher
        waits for the queueing only, never for its subscribers' work: the subscribers it woke
        run at its next checkpoint. Not the order of trio's channel ``send`` (cancellation check,
        act, shielded pass), on purpose: that pass made the publisher wait until every
        subscriber it had just woken ran (3-5 ms at 1,000 subscribers where queueing is 1-1.5;
        ``benchmarks/results/2026-12-07-publish-latency.md``). The trade-off: on a busy loop the
        tasks already ready run before this event is stored, not after. A publish that finds the topic busy (another
        publish is waiting on a ``block`` subscriber) waits for the topic's lock, a second
        checkpoint where a cancellation still publishes nothing. Returns once every
        subscriber has the event in its buffer or was handled by its overflow policy, so under
        ``block`` it may wait up to that subscriber's ``block_timeout`` (cancelled there, the
        event is stored and the subscribers still waited for are disconnected: see
        ``Broadcaster._deliver``). An event that brings its own id keeps it; an id already in
        the retained history of the topic is refused (``ValueError``): resuming from a
        duplicated id would be ambiguous.
        """
        deliver = self._deliver
        if deliver is None:
            raise RuntimeError("the backend is not started")
        await anyio.lowlevel.checkpoint()
        if self._patterns is not None:
            pattern = self._patterns.match(topic)
            if pattern is not None:
                return await self._publish_matched(topic, event, deliver, pattern)
        state = self._topics.get(topic)
        if state is None:
            state = self._topics[topic] = _Topic()
        lock = state.lock
        try:
            lock.acquire_nowait()
        except anyio.WouldBlock:
            await lock.acquire()
        try:
            if event.id is not None and event.id in state.index:
                raise ValueError(
                    f"an event with id {event.id!r} is already in the history of topic {topic!r}"
                )
            self._sequence += 1
            sequence = self._sequence
            if event.id is None:
                event = event.replace(id=f"{self.epoch}-{sequence}")
            entry = Entry((sequence, 0), event)
            entries = state.entries
            if len(entries) >= self._history:
                evicted = entries.popleft()
                evicted_id = evicted.event.id
                if evicted_id is not None and state.index.get(evicted_id) == evicted.position[0]:
                    del state.index[evicted_id]
            entries.append(entry)
            assert event.id is not None
            state.index[event.id] = sequence
            await deliver(topic, entry)
        finally:
            lock.release()
        return event.id

    async def _publish_matched(
        self, topic: str, event: ServerSentEvent, deliver: Deliver, pattern: str
    ) -> str:
        """:meth:`publish` to a topic that *pattern* covers, which also appends the event to
        the pattern's index at the same sequence (kept apart: a hub without patterns runs
        the plain path, unchanged). The same checkpoints (:meth:`publish`'s, taken before this
        is called, and the locks' when they must wait) and refusals; no pass after delivering.

        The index's lock is taken after the topic's (always in that order) and before the
        sequence is drawn, so the index's order is its sequences' order and its deliveries
        come one at a time, in that order. ``~`` separates the topic: see ``_patterns``.
        """
        state, index = self._state(topic), self._state(pattern)
        await _acquire(state.lock)
        try:
            if event.id is not None and event.id in state.index:
                raise ValueError(
                    f"an event with id {event.id!r} is already in the history of topic {topic!r}"
                )
            await _acquire(index.lock)
            try:
                event_id = await self._store(topic, state, event, deliver)
                position_id = f"{self.epoch}-{self._sequence}"
                stored = state.entries[-1]
                entry = Entry(
                    stored.position, stored.event.replace(id=index_id(position_id, topic))
                )
                self._append(index, position_id, entry, index=True)
                await deliver(pattern, entry)
            finally:
                index.lock.release()
        finally:
            state.lock.release()
        return event_id

    def _state(self, topic: str) -> _Topic:
        state = self._topics.get(topic)
        if state is None:
            state = self._topics[topic] = _Topic()
        return state

    def _append(self, state: _Topic, key: str, entry: Entry, *, index: bool = False) -> None:
        """Append *entry* to a history, looked up by *key* (its id, or for a pattern's
        *index* its position id); evict the oldest beyond the limit."""
        entries = state.entries
        if len(entries) >= self._history:
            evicted = entries.popleft()
            key_of = f"{self.epoch}-{evicted.position[0]}" if index else evicted.event.id
            # Never a newer entry's key: an id is refused while its entry is retained.
            state.index.pop(key_of or "", None)
        entries.append(entry)
        state.index[key] = entry.position[0]

    async def _store(
        self, topic: str, state: _Topic, event: ServerSentEvent, deliver: Deliver
    ) -> str:
        """Store and deliver *event* in *topic*; the caller holds the topic's lock."""
        self._sequence += 1
        sequence = self._sequence
        if event.id is None:
            event = event.replace(id=f"{self.epoch}-{sequence}")
        assert event.id is not None
        entry = Entry((sequence, 0), event)
        self._append(state, event.id, entry)
        await deliver(topic, entry)
        return event.id

    async def replay(self, topic: str, last_event_id: str | None) -> Replay:
        state = self._topics.get(topic)
        entries = list(state.entries) if state is not None else []
        if last_event_id is None or state is None:
            return Replay("unknown-id", None, entries)
        sequence = state.index.get(last_event_id)
        if sequence is not None:
            start = bisect.bisect_right(entries, sequence, key=lambda entry: entry.position[0])
            return Replay("found", (sequence, 0), entries[start:])
        parsed = parse_memory_id(last_event_id)
        if (
            parsed is not None
            and parsed[0] == self.epoch
            and entries
            and parsed[1] < entries[0].position[0]
        ):
            return Replay("expired", None, entries)
        return Replay("unknown-id", None, entries)

    async def head(self, topic: str) -> str | None:
        await anyio.lowlevel.checkpoint()
        state = self._topics.get(topic)
        return state.entries[-1].event.id if state is not None and state.entries else None

    async def watch(self, topic: str) -> None:
        # Every publish delivers directly: nothing to start.
        pass

    def unwatch(self, topic: str) -> None:
        pass

    async def revoke(self, principal: Hashable, farewell: ServerSentEvent | None) -> None:
        """Nobody else to tell: a memory backend serves one hub, which revokes its own
        subscriptions itself. A checkpoint, as for every backend."""
        await anyio.lowlevel.checkpoint()
