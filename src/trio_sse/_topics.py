"""A subscription to several topics with one resume cursor (issue #16).

A :class:`TopicsSubscription` is one ordinary :class:`~trio_sse._broadcast.Subscription` per
topic (each with its own authorization, bounded buffer, overflow policy, replay and splice of
live events: everything a single topic guarantees, per topic) and one task that merges their
channels into one. Each event leaves with its id replaced by the stream's cursor (``_cursor``):
the id of the last event sent of every topic. The merge updates the cursor and puts the event
in the merged channel under one lock, so the cursor an event carries covers exactly the events
before it in the channel, whichever topic they came from: resuming from it loses and repeats
nothing. Single-topic streams never run this code.

A declared **pattern** (``_patterns``) is one more entry of the stream: its subscription reads
the pattern's index as if it were a topic, its cursor entry is keyed by the pattern's
:func:`~trio_sse._cursor.topic_key` and records the index position alone, so that resuming
is exact. Each event of the index says its topic (``<position>~<topic>``); before it is
sent, the pattern's :class:`~trio_sse._gate.TopicGate` asks the hook about that topic (once
per stream), and the event leaves with the cursor, whose first entry (the pattern's) also
names the topic when it fits (see :meth:`~trio_sse.Broadcaster.topic_of`).
"""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from contextlib import AsyncExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._access import Guard
from ._cursor import MAX_STREAM_TOPICS, fits, format_cursor, topic_key
from ._errors import AccessError
from ._events import ServerSentEvent
from ._gate import TopicGate
from ._patterns import split_index_id
from ._resume import Resume, parse_last_event_id
from ._subscriber import Options

if TYPE_CHECKING:
    from ._broadcast import Broadcaster, Subscription

__all__ = ["TopicsSubscription", "check_topics"]

_UNKNOWN = Resume(None, None)


def check_topics(topics: Sequence[object], check_topic: Any) -> tuple[str, ...]:
    """A sequence of topics -> a tuple: 1 to :data:`MAX_STREAM_TOPICS` distinct topics whose
    keys differ. ``TypeError`` for a type, ``ValueError`` for a value; never blocks."""
    checked = tuple(check_topic(topic) for topic in topics)
    if not 1 <= len(checked) <= MAX_STREAM_TOPICS:
        raise ValueError(
            f"a stream has 1 to {MAX_STREAM_TOPICS} topics, got {len(checked)}: "
            f"{reprlib.repr(checked)}"
        )
    keys: dict[str, str] = {}
    for topic in checked:
        key = topic_key(topic)
        other = keys.get(key)
        if other is not None:
            reason = "twice" if other == topic else f"with the same key as {other!r}"
            raise ValueError(f"topic {topic!r} is given {reason}: each topic once")
        keys[key] = topic
    return checked


class TopicsSubscription:
    """``async with hub.subscribe([a, b], ...) as events:``: see :meth:`Broadcaster.subscribe`.

    Single use. Entering enters each topic's subscription in order (each asks the
    ``authorize`` hook for its topic first; a refusal raises and the topics already entered
    are left, before anything was read from them); for a topic without a position in the
    cursor (a fresh stream), it first records where the topic stands. Then one task in the
    hub's task group merges them. A checkpoint. The merged channel ends when any topic's
    channel ends (overflow policy, revocation, hub closed: the client resumes every topic with
    its cursor). Leaving cancels the merge, leaves every topic and closes the channel; it never
    blocks.
    """

    __slots__ = (
        "_cursor",
        "_entered",
        "_gates",
        "_guard",
        "_hub",
        "_lock",
        "_options",
        "_positions",
        "_receive",
        "_scope",
        "_send",
        "_stack",
        "_topics",
    )

    def __init__(
        self,
        hub: Broadcaster,
        topics: tuple[str, ...],
        cursor: dict[str, str] | None,
        options: Options,
        guard: Guard | None,
        patterns: frozenset[str] = frozenset(),
    ) -> None:
        self._hub = hub
        self._topics = topics
        self._cursor = cursor
        self._options = options
        self._guard = guard
        self._positions: dict[str, str | None] = {}
        # Pattern key -> its gate (None: no hook, every topic is read). Only patterns.
        self._gates: dict[str, TopicGate | None] = {
            topic_key(pattern): None if guard is None else TopicGate(guard) for pattern in patterns
        }
        self._stack = AsyncExitStack()
        self._entered = False
        # Made when entering, in the event loop (subscribe() may be called outside one).
        self._scope: anyio.CancelScope
        self._lock: anyio.Lock
        self._send: MemoryObjectSendStream[ServerSentEvent]
        self._receive: MemoryObjectReceiveStream[ServerSentEvent]

    async def __aenter__(self) -> MemoryObjectReceiveStream[ServerSentEvent]:
        if self._entered:
            raise RuntimeError("a Subscription can be entered only once")
        self._entered = True
        self._scope = anyio.CancelScope()
        self._lock = anyio.Lock()
        self._send, self._receive = anyio.create_memory_object_stream[ServerSentEvent](
            self._options.max_buffer_size
        )
        hub = self._hub
        hub._check_open()
        channels: list[tuple[str, MemoryObjectReceiveStream[ServerSentEvent]]] = []
        try:
            for topic in self._topics:
                subscription = await self._prepare(topic)
                channels.append((topic, await self._stack.enter_async_context(subscription)))
            hub._check_open()
            hub._start_task(lambda: self._merge(channels))
        except BaseException:
            await self._close()
            raise
        return self._receive

    async def _prepare(self, topic: str) -> Subscription:
        """*topic*'s own subscription, resuming from its cursor entry. A checkpoint."""
        from ._broadcast import Subscription  # here: _broadcast imports this module

        key = topic_key(topic)
        cursor = self._cursor
        if cursor is None:
            # A fresh stream: where the topic stands once it is granted and *before* it is
            # watched, so that resuming from a cursor that never saw this topic's events
            # misses none published since. A refused topic is never looked at.
            async def read_head() -> None:
                head = await self._hub._backend.head(topic) or ""
                self._positions[key] = self._position_of(key, head)

            return Subscription(
                self._hub, topic, None, self._options, self._guard, prelude=read_head
            )
        position = cursor.get(key)
        if position is not None:
            position = self._position_of(key, position)
        # No entry (or a malformed cursor): a reset, then all it retains; an empty entry: the
        # topic was empty when the stream began, so all it retains, with no reset.
        self._positions[key] = position or ""
        resume = _UNKNOWN if position is None else parse_last_event_id(position)
        return Subscription(
            self._hub,
            topic,
            resume or _UNKNOWN,
            self._options,
            self._guard,
            label=topic,
            from_start=position == "",
        )

    async def _merge(
        self, channels: list[tuple[str, MemoryObjectReceiveStream[ServerSentEvent]]]
    ) -> None:
        with self._scope:
            try:
                async with anyio.create_task_group() as group:
                    for topic, channel in channels:
                        group.start_soon(self._pump, topic_key(topic), channel)
            finally:
                self._send.close()

    def _position_of(self, key: str, event_id: str) -> str:
        """What the cursor records of *event_id*: a pattern's index position, else the id."""
        return split_index_id(event_id)[0] if key in self._gates else event_id

    async def _pump(self, key: str, channel: MemoryObjectReceiveStream[ServerSentEvent]) -> None:
        positions = self._positions
        pattern = key in self._gates
        try:
            async for event in channel:
                shown = event.id
                if shown is not None and pattern:
                    if not await self._admits(key, shown, event):
                        continue
                    shown = shown if fits(shown) else None
                async with self._lock:
                    if event.id is not None:  # a reset or a farewell has none: kept as is
                        positions[key] = self._position_of(key, event.id)
                        cursor = format_cursor(key, positions, first_id=shown)
                        event = event.replace(id=cursor)
                    await self._send.send(event)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the consumer closed the merged channel: nobody is listening
        except AccessError:
            pass  # the hook failed for a topic of a pattern (logged): the client resumes
        # One topic ended: end the stream, so that the client resumes all of them.
        self._scope.cancel()

    async def _admits(self, key: str, event_id: str, event: ServerSentEvent) -> bool:
        """Whether the hook lets this stream read *event* of a pattern. A checkpoint when
        the hook is asked; ``AccessError`` when it failed (see ``_gate``)."""
        gate = self._gates[key]
        return gate is None or await gate.allows(split_index_id(event_id)[1], event)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        self._scope.cancel()
        self._receive.close()
        self._send.close()
        # Each topic's subscription leaves without a checkpoint.
        await self._stack.aclose()
