"""Who may read each concrete topic met through a pattern (issue #16).

A stream of a declared pattern asks its ``authorize`` hook twice over: for the pattern
string, before anything is sent (a refusal is the 403: see ``_access``), and then for each
concrete topic, the first time the stream meets an event of it, live or replayed. The topics
a pattern covers are not known in advance, so no single answer could cover them all: a hook
that grants ``orders/*`` to a user may still refuse ``orders/42`` to that user.

A :class:`TopicGate` holds those per-topic answers for one stream. A refused topic's events
are dropped for that stream, silently (its cursor does not move past them: resuming drops
them again). A hook that raises or times out for a topic ends the stream instead (the
client resumes from its cursor and the hook is asked again): the stream cannot tell a
transient failure from a refusal, and must neither leak the topic nor hide it for good.
"""

from __future__ import annotations

import logging

from ._access import Access, Guard, decide
from ._errors import Forbidden
from ._events import ServerSentEvent
from ._validate import shown

__all__ = ["MAX_GATE_TOPICS", "TopicGate"]

logger = logging.getLogger("trio_sse")

MAX_GATE_TOPICS = 1024
"""Per-topic answers one stream keeps; beyond that the oldest is forgotten (asked again)."""


class TopicGate:
    """One stream's per-topic decisions for one pattern. Used by that stream's task alone."""

    __slots__ = ("_decisions", "_guard")

    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        self._decisions: dict[str, Access | None] = {}  # None: refused

    async def allows(self, topic: str, event: ServerSentEvent) -> bool:
        """Whether *event*, of *topic*, may reach this stream.

        A checkpoint when the hook is asked (the first event of *topic*), else none.
        Raises ``AuthorizationError`` or ``AuthorizationTimeout`` from a hook that raised
        or timed out (logged once by ``decide``); the caller ends the stream.
        """
        decisions = self._decisions
        if topic in decisions:
            access = decisions[topic]
        else:
            try:
                access = await decide(self._guard, topic)
            except Forbidden:
                access = None
            if len(decisions) >= MAX_GATE_TOPICS:
                del decisions[next(iter(decisions))]
            decisions[topic] = access
        if access is None:
            return False
        allow = access.allow_event
        if allow is None:
            return True
        try:
            return bool(allow(event))
        except Exception:
            logger.exception("trio_sse: allow_event raised for topic %s", shown(topic))
            return False  # fail closed
