"""Who may read a topic: the ``authorize`` hook's decision, its bounds, and revocation (#16).

The shape, and why:

* **One async hook per topic, called once per subscription**, ``await authorize(topic)``,
  before the subscriber is registered and before the response sends anything. It takes the
  topic alone: the hub does not know what identifies a caller (a cookie, a query token, a
  FastAPI dependency's user), so the app binds that itself, in a closure over its request.
  Being async, it may ask a database or a session store; it is bounded by a timeout, since a
  hook that hangs must never leave a stream half-open.
* **Its answer is a decision object**, :class:`Access`, rather than a bool plus a second hook:
  who the subscriber is (its *principals*, what :meth:`Broadcaster.revoke` matches) and which
  events of the topic it may see (``allow_event``) are both learnt by the same lookup, so they
  come back together, and a per-event filter can close over what the hook found (a tenant
  id) without looking it up again. ``None`` refuses.
* **The per-event filter is synchronous**: it runs in the delivery loop, for each live and
  each replayed event, and fan-out must never wait on one subscriber's filter. A subscriber
  without one costs the delivery loop nothing (it is a plain ``Subscriber``); one with a
  filter is a ``FilteredSubscriber`` (see ``_subscriber``). A filter that raises withholds the
  event (fail closed) and is logged once per subscriber.
* **Revocation** ends, in this process, every subscription whose :class:`Access` named the
  principal: its buffered events are discarded, a farewell is sent and its channel ends (the
  response's body ends cleanly). A hook still running while its principal is revoked is
  refused when it returns, so a revocation never misses a subscriber being admitted. Refusing
  the *next* connection is the hook's job (it reads the app's own record of the revocation):
  the hub remembers nothing once no hook is running, so revoked principals never pile up.
  ``Broadcaster.revoke_everywhere`` does the same in every process of a shared backend: each
  hub runs this very revocation when its backend hands it the message (``backends/_control``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple, final

import anyio

from ._errors import AccessError, AuthorizationError, AuthorizationTimeout, Forbidden
from ._events import ServerSentEvent
from ._validate import optional_callable, seconds, shown

if TYPE_CHECKING:
    from ._subscriber import Subscriber

__all__ = [
    "DEFAULT_AUTHORIZE_TIMEOUT",
    "REVOKED",
    "Access",
    "Authorize",
    "EventFilter",
    "Guard",
    "Principals",
    "check_guard",
    "check_principal",
    "decide",
]

logger = logging.getLogger("trio_sse")

DEFAULT_AUTHORIZE_TIMEOUT = 5.0
"""Seconds an ``authorize`` hook may take before the subscription fails (a 503)."""

REVOKED = ServerSentEvent('{"reason":"revoked"}', event="revoked")
"""The default farewell of :meth:`Broadcaster.revoke`: ``event: revoked``, no ``id``."""

EventFilter = Callable[[ServerSentEvent], bool]
"""``allow_event(event) -> bool``: may this subscriber see this event of its topic? Sync."""


@final
class Access:
    """An ``authorize`` hook's grant: ``Access(*principals, allow_event=None)``.

    * ``principals``: what :meth:`Broadcaster.revoke` matches to end this subscription
      (a user id, a tenant, a session: any hashable values, e.g. ``("user", 42)``); none:
      the subscription cannot be revoked by principal;
    * ``allow_event``: ``None`` (every event of the topic) or a sync predicate called with
      each event, live and replayed, before it reaches this subscriber; ``False`` withholds
      it. It must not block (it runs in the hub's delivery loop); if it raises, the event is
      withheld and the error logged once for this subscriber.

    Immutable; ``TypeError`` for an unhashable principal or an ``allow_event`` that is not
    callable.
    """

    __slots__ = ("allow_event", "principals")

    principals: tuple[Hashable, ...]
    allow_event: EventFilter | None

    def __init__(self, *principals: Hashable, allow_event: EventFilter | None = None) -> None:
        for principal in principals:
            check_principal("a principal", principal)
        object.__setattr__(self, "principals", tuple(dict.fromkeys(principals)))
        object.__setattr__(self, "allow_event", optional_callable("allow_event", allow_event))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Access is immutable")

    def __repr__(self) -> str:
        parts = [repr(principal) for principal in self.principals]
        if self.allow_event is not None:
            parts.append(f"allow_event={self.allow_event!r}")
        return f"Access({', '.join(parts)})"


def check_principal(name: str, principal: object) -> None:
    """``TypeError`` (naming *name*) unless *principal* is hashable, as principals must be."""
    try:
        hash(principal)
    except TypeError:
        raise TypeError(
            f"{name} must be hashable (a str, an int, a tuple), got {shown(principal)}"
        ) from None


Authorize = Callable[[str], Awaitable[Access | None]]
"""``await authorize(topic)``: an :class:`Access` to grant the topic, ``None`` to refuse."""


class Guard(NamedTuple):
    """A subscription's checked ``authorize`` hook and its timeout."""

    authorize: Authorize
    timeout: float


def check_guard(authorize: object, authorize_timeout: object) -> Guard | None:
    """Check ``authorize=`` and ``authorize_timeout=`` (``TypeError``/``ValueError``)."""
    hook = optional_callable("authorize", authorize)
    timeout = seconds("authorize_timeout", authorize_timeout, allow_none=True, positive=True)
    if hook is None:
        if timeout is not None:
            raise ValueError(
                f"authorize_timeout applies only with an authorize hook "
                f"(got authorize_timeout={authorize_timeout!r} and no authorize)"
            )
        return None
    return Guard(hook, DEFAULT_AUTHORIZE_TIMEOUT if timeout is None else timeout)


async def decide(guard: Guard, topic: str) -> Access:
    """Ask *guard*'s hook about *topic*: its :class:`Access`, or an :class:`AccessError`.

    A checkpoint (the hook's own). ``Forbidden`` if it returned ``None`` or raised
    ``Forbidden``; ``AuthorizationTimeout`` if it took longer than the guard's timeout (it is
    cancelled); ``AuthorizationError`` if it raised anything else or returned something that
    is not an ``Access`` (fail closed: ``True`` is not a grant). The last two are logged here,
    once, with the topic; nothing else logs them again.
    """
    answer: Any = None
    with anyio.move_on_after(guard.timeout) as scope:
        try:
            answer = await guard.authorize(topic)
        except AccessError:
            raise
        except Exception as exc:
            logger.exception("trio_sse: the authorize hook raised for topic %s", shown(topic))
            raise AuthorizationError(f"the authorize hook raised for topic {shown(topic)}") from exc
    if scope.cancelled_caught:
        logger.error(
            "trio_sse: the authorize hook did not answer within %s s for topic %s",
            guard.timeout,
            shown(topic),
        )
        raise AuthorizationTimeout(
            f"the authorize hook did not answer within {guard.timeout} s for topic {shown(topic)}"
        )
    if answer is None:
        raise Forbidden(f"topic {shown(topic)} refused by the authorize hook")
    if not isinstance(answer, Access):
        logger.error(
            "trio_sse: the authorize hook returned %s for topic %s, not a trio_sse.Access or None",
            shown(answer),
            shown(topic),
        )
        raise AuthorizationError(
            f"the authorize hook must return a trio_sse.Access or None, got {shown(answer)}"
        )
    return answer


class Principals:
    """The hub's index of revocable subscribers, and the guard against revocation races.

    Owned by one hub, used from its event loop; nothing here blocks or is a checkpoint.
    """

    __slots__ = ("_held", "_in_flight", "_index", "_revoked", "_serial")

    def __init__(self) -> None:
        self._index: dict[Hashable, dict[Subscriber, None]] = {}
        self._held: dict[Subscriber, tuple[Hashable, ...]] = {}
        # Revocations that a running hook may not have seen: principal -> the serial of the
        # revocation. Only those since the oldest running hook began are kept (a hook runs
        # for at most its timeout), and none once no hook runs.
        self._revoked: dict[Hashable, int] = {}
        self._serial = 0  # incremented by every revocation
        self._in_flight: dict[int, int] = {}  # serial a running hook began at -> how many

    def __len__(self) -> int:
        return len(self._held)

    def begin(self) -> int:
        """A hook starts: the serial to give :meth:`revoked_since` and :meth:`done`."""
        serial = self._serial
        self._in_flight[serial] = self._in_flight.get(serial, 0) + 1
        return serial

    def done(self, serial: int) -> None:
        """The hook that began at *serial* ended: forget what no running hook needs."""
        left = self._in_flight[serial] - 1
        if left:
            self._in_flight[serial] = left
            return
        del self._in_flight[serial]
        if not self._revoked:
            return
        if not self._in_flight:
            self._revoked.clear()
            return
        oldest = min(self._in_flight)
        if serial < oldest:
            self._revoked = {p: s for p, s in self._revoked.items() if s >= oldest}

    def revoked_since(self, principals: Iterable[Hashable], serial: int) -> bool:
        """Was one of *principals* revoked after :meth:`begin` returned *serial*?"""
        revoked = self._revoked
        return bool(revoked) and any(revoked.get(p, -1) >= serial for p in principals)

    def add(self, subscriber: Subscriber, principals: tuple[Hashable, ...]) -> None:
        self._held[subscriber] = principals
        for principal in principals:
            self._index.setdefault(principal, {})[subscriber] = None

    def remove(self, subscriber: Subscriber) -> None:
        for principal in self._held.pop(subscriber, ()):
            subscribers = self._index.get(principal)
            if subscribers is not None:
                subscribers.pop(subscriber, None)
                if not subscribers:
                    del self._index[principal]

    def revoke(self, principal: Hashable, farewell: ServerSentEvent | None) -> int:
        """End every subscriber held by *principal* with *farewell*; how many were ended."""
        if self._in_flight:
            self._revoked[principal] = self._serial
        self._serial += 1
        subscribers = self._index.get(principal)
        if not subscribers:
            return 0
        ended = 0
        for subscriber in list(subscribers):
            ended += subscriber.revoke(farewell)
        return ended
