"""The small protocol between ``Broadcaster`` and where events and history live."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Literal, NamedTuple, Protocol

import anyio.abc

from .._events import ServerSentEvent

__all__ = [
    "Backend",
    "Deliver",
    "Entry",
    "Position",
    "Replay",
    "ReplayStatus",
    "Revocations",
    "Revoke",
]

Position = tuple[int, int]
"""Where an event stands in its topic: totally ordered, increasing with publication order.

The memory backend uses ``(sequence, 0)``; Redis uses the stream id ``ms-seq`` as ``(ms, seq)``.
The broadcaster compares positions to splice a replay onto the live events without a gap or
a duplicate; it never shows them to users (they see the event ``id``).
"""


class Entry(NamedTuple):
    """One stored event: its position in the topic and the event, whose ``id`` is set."""

    position: Position
    event: ServerSentEvent


ReplayStatus = Literal["found", "unknown-id", "expired"]


class Replay(NamedTuple):
    """The answer to "what came after this id?".

    * ``status == "found"``: ``after`` is the position of the id, ``entries`` what follows it;
    * ``"expired"`` (the id is older than the retained history) or ``"unknown-id"`` (never seen
      here, malformed, or from another epoch of a memory hub): ``after`` is ``None`` and
      ``entries`` is the whole retained history, oldest first.
    """

    status: ReplayStatus
    after: Position | None
    entries: Sequence[Entry]


Deliver = Callable[[str, Entry], Awaitable[None]]
"""``await deliver(topic, entry)``: hand a live event to the hub's local subscribers."""


class Backend(Protocol):
    """What a :class:`~trio_sse.Broadcaster` needs from a backend.

    The one ordering rule: for each topic, ``deliver`` is called with positions in increasing
    order, one call at a time (the next call starts after the previous one returned), and
    every event published after ``watch(topic)`` returned is delivered while the topic is
    watched.  ``deliver`` may wait (a subscriber with the ``block`` overflow policy).
    """

    async def start(
        self, task_group: anyio.abc.TaskGroup, deliver: Deliver, *, history: int
    ) -> None:
        """Connect and start background tasks in *task_group* (the hub's). A checkpoint.

        ``history`` is how many events to retain per topic. Raise here if the backend is
        unusable (for Redis: unreachable), so that the app fails at startup.
        """
        ...

    async def aclose(self) -> None:
        """Release connections. Called after the hub's task group has been cancelled."""
        ...

    async def publish(self, topic: str, event: ServerSentEvent) -> str:
        """Store *event* (assigning an id when it has none) and return its id. A checkpoint."""
        ...

    async def replay(self, topic: str, last_event_id: str | None) -> Replay:
        """The retained events after *last_event_id* (``None``: everything retained)."""
        ...

    async def head(self, topic: str) -> str | None:
        """The id of *topic*'s newest retained event (``None``: none). A checkpoint.

        Used only by streams of several topics, to record where a topic stood when the
        stream began (a backend without it cannot serve them).
        """
        ...

    async def watch(self, topic: str) -> None:
        """Start delivering *topic*'s live events; reference-counted with :meth:`unwatch`."""
        ...

    def unwatch(self, topic: str) -> None:
        """Undo one successful :meth:`watch`. Never blocks; safe after :meth:`aclose`."""
        ...

    # Optional, for ``Broadcaster(patterns=...)`` (issue #16): ``declare_patterns(patterns)``,
    # called once before ``start``. The backend then keeps each pattern's index under the
    # pattern's name: every publish to a topic that ``patterns.match(topic)`` names also
    # appends the event, at once and in commit order, with the id ``<position>~<topic>``
    # (``trio_sse._patterns.index_id``), and ``replay``, ``head``, ``watch`` and ``deliver``
    # treat the pattern's name as a topic whose ids are the position ids alone.


Revoke = Callable[[Hashable, ServerSentEvent | None], int]
"""``revoke(principal, farewell)``: end this process's subscriptions of *principal* with
*farewell*; how many. Sync, never blocks (the hub's, given to :meth:`Revocations.on_revoke`)."""


class Revocations(Protocol):
    """What a backend adds so that ``await hub.revoke_everywhere(...)`` reaches every process.

    Optional: a backend without :meth:`revoke` makes ``revoke_everywhere`` raise ``TypeError``
    (``hub.revoke`` still ends this process's subscriptions). A backend used by one hub only
    (memory) has nobody to tell: its ``revoke`` is a checkpoint and it needs no ``on_revoke``.
    """

    def on_revoke(self, revoke: Revoke) -> None:
        """Called once by the hub, before :meth:`Backend.start`: call *revoke* for each
        revocation that another hub sent, in the order they were sent. Never blocks."""
        ...

    async def revoke(self, principal: Hashable, farewell: ServerSentEvent | None) -> None:
        """Tell every other hub sharing this backend to revoke *principal* with *farewell*.

        A checkpoint; returns once the message is stored (the other hubs apply it when they
        read it); the sending hub ends its own subscriptions itself. ``TypeError``, before
        anything is sent, for a principal the backend cannot carry to other processes.
        """
        ...
