"""``Broadcaster``: the hub. Its lifetime, publishing, fan-out, subscribing, ``stream()``, stats.

How the pieces fit (issue #5; the rooms split in issue #12):

* a **backend** (``backends/``) stores each topic's history and hands live events to
  :meth:`Broadcaster._deliver`, per topic in position order and one at a time;
* each **subscriber** (``_subscriber``) owns a bounded channel; delivery never waits for it
  except under the ``block`` policy, so one slow subscriber does not hold back the others. It
  is given the hub's counters and callables, never the hub;
* a **resuming** subscriber is registered for live events *before* the history is read (see
  ``_subscriber``); what it asks for, and the reset event it may get first, come from the pure
  parsing of untrusted ids in ``_resume``;
* a **guarded** subscription (``authorize=``) asks its hook first, before it is registered and
  before the response sends anything (``_access``); the hook's :class:`~trio_sse.Access`
  names its principals (for :meth:`Broadcaster.revoke`) and may filter its events. This is
  above the backend, so it holds for every backend.
"""

from __future__ import annotations

import functools
import reprlib
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._access import (
    REVOKED,
    Access,
    Authorize,
    Guard,
    Principals,
    check_guard,
    check_principal,
    decide,
)
from ._channels import DirectSource
from ._cursor import parse_cursor, topic_key
from ._errors import Forbidden
from ._events import JSONServerSentEvent, ServerSentEvent, event_from_mapping
from ._json import JSONDumps, is_model
from ._patterns import Patterns, check_patterns, is_pattern, split_index_id
from ._resume import (
    MAX_LAST_EVENT_ID_LENGTH,
    Resume,
    last_event_id_from,
    parse_last_event_id,
    reset_event,
)
from ._subscriber import (
    DEFAULT_BLOCK_TIMEOUT,
    Counters,
    FilteredSubscriber,
    Options,
    Overflow,
    Subscriber,
    check_options,
)
from ._topics import TopicsSubscription, check_topics
from ._validate import optional_callable, positive_int
from .backends._base import Backend, Entry, Position
from .backends.memory import MemoryBackend

__all__ = [
    "DEFAULT_BLOCK_TIMEOUT",
    "MAX_LAST_EVENT_ID_LENGTH",
    "BroadcastStats",
    "Broadcaster",
    "Overflow",
    "Subscription",
    "last_event_id_from",
    "reset_event",
]

Producer = Callable[[MemoryObjectSendStream[Any]], Awaitable[None]]


@dataclass(frozen=True)
class BroadcastStats:
    """A snapshot of a hub's counters, from :meth:`Broadcaster.stats`.

    * ``subscribers``: topic -> number of current subscribers in this process;
    * ``published``: events published through this hub;
    * ``delivered``: events put into subscribers' buffers (one per subscriber and event);
    * ``dropped``: events discarded by ``drop_oldest``;
    * ``disconnected``: subscribers ended by ``disconnect`` or a ``block`` timeout;
    * ``revoked``: subscribers ended by :meth:`Broadcaster.revoke`;
    * ``withheld``: events kept from a subscriber by its ``allow_event`` filter.
    """

    subscribers: Mapping[str, int]
    published: int
    delivered: int
    dropped: int
    disconnected: int
    revoked: int = 0
    withheld: int = 0

    @property
    def total_subscribers(self) -> int:
        return sum(self.subscribers.values())


def _check_topic(topic: object) -> str:
    if not isinstance(topic, str):
        raise TypeError(f"topic must be a str, got {type(topic).__name__} {reprlib.repr(topic)}")
    if not topic:
        raise ValueError("topic must not be empty, got ''")
    return topic


def _several(topic: object) -> bool:
    """Whether *topic* asks for a stream of several topics (a list or tuple of them)."""
    return isinstance(topic, Sequence) and not isinstance(topic, (str, bytes, bytearray))


def _as_event(item: object, json_dumps: JSONDumps | None) -> ServerSentEvent:
    if isinstance(item, ServerSentEvent):
        return item
    if isinstance(item, (bytes, bytearray, memoryview)):
        raise TypeError(
            "publish() takes a ServerSentEvent, a dict or data; pre-encoded bytes cannot be "
            "kept in the history or given an id"
        )
    if isinstance(item, Mapping):
        return event_from_mapping(item, json_dumps)
    if is_model(item):  # its str() is of no use to a client
        return JSONServerSentEvent(item, json_dumps=json_dumps)
    return ServerSentEvent(item)


class Subscription:
    """``async with hub.subscribe(topic, ...) as events:``, see :meth:`Broadcaster.subscribe`.

    Single use. Entering asks the ``authorize`` hook (if any; a refusal or a failing hook
    raises an :class:`~trio_sse.AccessError` and nothing is registered), registers the
    subscriber, then (when resuming) reads the history: a checkpoint; cancelled or failing
    there (Redis unreachable), it unregisters and the exception propagates. The subscription
    owns both ends of the channel: leaving unregisters and closes them (a replay still in
    progress is cancelled). Leaving never blocks.
    """

    __slots__ = (
        "_from_start",
        "_guard",
        "_hub",
        "_label",
        "_options",
        "_prelude",
        "_resume",
        "_subscriber",
        "_topic",
        "_watching",
    )

    def __init__(
        self,
        hub: Broadcaster,
        topic: str,
        resume: Resume | None,
        options: Options,
        guard: Guard | None = None,
        *,
        label: str | None = None,
        from_start: bool = False,
        prelude: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._hub = hub
        self._topic = topic
        self._resume = resume
        self._options = options
        self._guard = guard
        # For one topic of a stream of several (``_topics``): *label* names the topic in its
        # reset event; *from_start* replays all it retains with no reset (it was empty when
        # the client's stream began); *prelude* is awaited once the topic is granted, before
        # it is registered (a fresh stream reads where the topic stands there).
        self._label = label
        self._from_start = from_start
        self._prelude = prelude
        self._subscriber: Subscriber | None = None
        self._watching = False

    async def __aenter__(self) -> MemoryObjectReceiveStream[ServerSentEvent]:
        if self._subscriber is not None:
            raise RuntimeError("a Subscription can be entered only once")
        hub = self._hub
        hub._check_open()
        topic = self._topic
        resume = self._resume
        access = None
        if self._guard is not None:
            access = await hub._authorize(topic, self._guard, self._prelude)
            hub._check_open()
        elif self._prelude is not None:
            await self._prelude()
            hub._check_open()
        # Registered for live events before anything else (and, when guarded, in the same
        # step as the decision: no revocation can come between): whatever is published from
        # now on reaches this subscriber, live or queued behind the replay.
        subscriber = hub._add_subscriber(
            topic, self._options, replaying=resume is not None, access=access
        )
        self._subscriber = subscriber
        try:
            await hub._backend.watch(topic)
            self._watching = True
            if resume is not None:
                replay = await hub._backend.replay(topic, resume.lookup)
                items: deque[tuple[Position | None, ServerSentEvent]] = deque()
                if replay.status != "found" and not self._from_start:
                    reset = reset_event(replay.status, resume.echo, topic=self._label)
                    items.append((None, reset))
                items.extend(replay.entries)
                subscriber.begin_replay(items, replay.after, hub._start_task)
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
    ``MAXLEN ~``, so it may keep a few more). ``json_dumps``: a callable ``(obj) -> str | bytes``
    (``orjson.dumps``...) for the models :meth:`publish` writes as JSON (``None``: FastAPI's
    rules, or the current stream's, as for a :class:`JSONServerSentEvent` built without one).

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
    A cursor only selects a position in the subscription's own topic. A stream of several
    topics (a list of them) resumes them all from one cursor; each topic resets alone.

    **Patterns.** ``patterns=["orders/*", ...]`` declares topic patterns (``*`` as the whole
    last segment: one more segment without ``/``; see ``_patterns``; a bad one is a
    ``ValueError``, a backend without ``declare_patterns()`` a ``TypeError``). Every publish
    to a topic that one covers also goes, with its topic, to that pattern's ordered index, and
    :meth:`stream`/:meth:`subscribe` of the pattern (alone or among other topics) read that
    index: resumed exactly from one cursor, the hook asked for the pattern and then for each
    concrete topic met (``_gate``); :meth:`topic_of` names an event's topic. Patterns are
    declared rather than matched at subscription because a merge of unbounded topics cannot
    be resumed exactly from per-topic positions, nor from time-based ids (publishers' clocks
    differ). A hub without patterns publishes as before.

    **Access.** Without an ``authorize`` hook, anyone given a subscription reads the topic. With
    one (:meth:`subscribe`, :meth:`stream`), the hook decides per topic before anything is
    registered or sent, may filter events, and names principals that :meth:`revoke` ends (in
    this process) and :meth:`revoke_everywhere` ends in every process sharing the backend.
    """

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        history: int = 1000,
        json_dumps: JSONDumps | None = None,
        patterns: Sequence[str] | None = None,
    ) -> None:
        positive_int("history", history, hint=" (events kept per topic)")
        declared = check_patterns(patterns)
        self.json_dumps: JSONDumps | None = optional_callable("json_dumps", json_dumps)
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
        self._patterns: Patterns | None = declared
        if declared is not None:
            declare = getattr(self._backend, "declare_patterns", None)
            if not callable(declare):
                raise TypeError(
                    f"{type(self._backend).__name__} cannot keep pattern indexes "
                    "(it has no declare_patterns())"
                )
            declare(declared)
        self._topics: dict[str, dict[Subscriber, None]] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._state = "new"
        # The hub's counters, incremented by its subscribers (and by publish); and the one
        # bound method that every subscriber keeps to unregister itself (a reference each,
        # not a bound method of its own).
        self._counters = Counters()
        self._unregister_hook: Callable[[Subscriber], None] = self._unregister
        # Subscribers whose Access named principals, for ``revoke``; they unregister from it
        # too (the others never touch it).
        self._principals = Principals()
        self._unregister_held_hook: Callable[[Subscriber], None] = self._unregister_held

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
        on_revoke = getattr(self._backend, "on_revoke", None)
        if callable(on_revoke):
            on_revoke(self._principals.revoke)  # revocations sent by the other processes
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

    def _add_subscriber(
        self, topic: str, options: Options, *, replaying: bool, access: Access | None = None
    ) -> Subscriber:
        """A new subscriber of *topic*, registered for live events from now on. Never blocks.

        With an *access* that filters events it is a ``FilteredSubscriber``; one that names
        principals is indexed for :meth:`revoke`. Without *access*, a plain ``Subscriber``.
        """
        unregister = self._unregister_hook
        if access is not None and access.principals:
            unregister = self._unregister_held_hook
        subscriber: Subscriber
        if access is not None and access.allow_event is not None:
            subscriber = FilteredSubscriber(
                topic,
                options,
                self._counters,
                unregister,
                replaying=replaying,
                allow_event=access.allow_event,
            )
        else:
            subscriber = Subscriber(topic, options, self._counters, unregister, replaying=replaying)
        subscribers = self._topics.get(topic)
        if subscribers is None:
            subscribers = self._topics[topic] = {}
        subscribers[subscriber] = None
        if access is not None and access.principals:
            self._principals.add(subscriber, access.principals)
        return subscriber

    def _unregister(self, subscriber: Subscriber) -> None:
        subscribers = self._topics.get(subscriber.topic)
        if subscribers is not None:
            subscribers.pop(subscriber, None)
            if not subscribers:
                del self._topics[subscriber.topic]

    def _unregister_held(self, subscriber: Subscriber) -> None:
        self._unregister(subscriber)
        self._principals.remove(subscriber)

    # -- access -------------------------------------------------------------------------------

    async def _authorize(
        self, topic: str, guard: Guard, prelude: Callable[[], Awaitable[None]] | None = None
    ) -> Access:
        """The hook's grant for *topic*, or an ``AccessError``. A checkpoint (the hook's).

        A principal revoked while the hook (or *prelude*, awaited once it granted) ran is
        refused (``Forbidden``): the caller registers the subscriber right after this
        returns, with no checkpoint between.
        """
        principals = self._principals
        serial = principals.begin()
        try:
            access = await decide(guard, topic)
            if prelude is not None:
                await prelude()
            if principals.revoked_since(access.principals, serial):
                raise Forbidden(f"topic {reprlib.repr(topic)}: the principal was just revoked")
            return access
        finally:
            principals.done(serial)

    def revoke(self, principal: Hashable, *, farewell: object = REVOKED) -> int:
        """End this process's subscriptions granted to *principal*; returns how many.

        *principal* is matched against the principals of each subscription's
        :class:`~trio_sse.Access` (what its ``authorize`` hook returned). Each one's
        buffered events are discarded, *farewell* is the last thing it reads (an event, a
        dict of its fields or data, as for :meth:`publish`; give it no ``id``: the client's
        ``Last-Event-ID`` should stay its last real event; ``None``: none; default
        ``event: revoked`` with ``data: {"reason":"revoked"}``), then its channel ends, so a
        ``hub.stream()`` response ends its body cleanly. A hook still deciding for this
        principal is refused when it answers. Whether the client may come back is up to the
        hook, which must now refuse it (the hub keeps no list of revoked principals).

        Sync, never blocks; only this process: :meth:`revoke_everywhere` tells the others.
        """
        check_principal("principal", principal)
        event = None if farewell is None else _as_event(farewell, self.json_dumps)
        return self._principals.revoke(principal, event)

    async def revoke_everywhere(self, principal: Hashable, *, farewell: object = REVOKED) -> int:
        """:meth:`revoke` in every process sharing this hub's backend; returns this
        process's count (the others' are not known here).

        Memory: the same as :meth:`revoke` (one process), plus a checkpoint. Redis: the
        revocation is first stored in the backend's control stream, then this process's
        subscriptions are ended; every other hub's reader ends its own when it reads it (a
        round trip later), with the same *farewell*. The principal must then cross processes:
        a ``str``, an ``int``, a ``float``, ``None`` or a tuple of those (``("user", 42)``),
        else ``TypeError``, and nothing is revoked anywhere. A hub started after the call
        is not affected; whether the client may come back is still the hook's to decide.

        A checkpoint. Raising (``RedisConnectionError``) or cancelled, nothing was revoked
        in this process and the other processes may or may not have it: call it again (or
        :meth:`revoke` for this process alone). ``TypeError`` for a backend that cannot tell
        other processes (no ``revoke()``, see :class:`~trio_sse.backends.Revocations`).
        """
        self._check_open()
        check_principal("principal", principal)
        event = None if farewell is None else _as_event(farewell, self.json_dumps)
        tell = getattr(self._backend, "revoke", None)
        if not callable(tell):
            raise TypeError(
                f"{type(self._backend).__name__} cannot send revocations to other processes "
                "(it has no revoke()); hub.revoke() ends this process's subscriptions"
            )
        await tell(principal, event)
        return self._principals.revoke(principal, event)

    # -- publishing ---------------------------------------------------------------------------

    async def publish(self, topic: str, event: object) -> str:
        """Publish *event* to *topic* and return its id.

        *event* is a :class:`ServerSentEvent`, a ``dict`` of its fields, or data (``str()``-ed).
        A model (a Pydantic model, a dataclass instance), as *event* or as a dict's ``"data"``,
        is sent as JSON (a :class:`JSONServerSentEvent`) with the hub's ``json_dumps``.
        An event without an id gets one (memory: ``"<epoch>-<n>"``; Redis: the stream id);
        an event with an id keeps it (memory: unique within the retained history; Redis: must
        be a stream id above the last one), else ``ValueError``. An event that cannot be
        encoded as UTF-8 (a lone surrogate) is refused with ``ValueError``.

        A checkpoint. Memory: the checkpoint comes first (cancelled there, nothing is
        published); the publish then returns once each local subscriber has the event buffered
        or was handled by its overflow policy (``block`` may make it wait, see
        :class:`Overflow`), with no scheduling pass after: the publisher waits for the queueing,
        not for its subscribers, which run at its next checkpoint (issue 18).
        Redis: returns once Redis stored it; every hub's reader then delivers it.
        Cancelled before the event is stored, nothing is published; a cancelled memory publish
        that was waiting for ``block`` subscribers disconnects them (they resume by replay).
        """
        self._check_open()
        _check_topic(topic)
        if self._patterns is not None and is_pattern(topic):
            raise ValueError(
                f"cannot publish to {topic!r}: on a hub with patterns, a name with a '*' "
                "segment is a pattern, not a topic"
            )
        built = _as_event(event, self.json_dumps)
        try:
            # Refused here, not in every subscriber's stream: an event that cannot be encoded
            # (a lone surrogate from untrusted JSON, say) would end every stream it reaches and
            # come back with every resume. The encoding is cached on the event.
            built.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(f"the event cannot be encoded as UTF-8: {exc.reason}") from exc
        event_id = await self._backend.publish(topic, built)
        self._counters.published += 1
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
        blocked: deque[Subscriber] | None = None
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
        topic: str | Sequence[str],
        *,
        last_event_id: str | bytes | None = None,
        max_buffer_size: int = 256,
        on_overflow: Overflow | str = Overflow.DISCONNECT,
        block_timeout: float | None = None,
        authorize: Authorize | None = None,
        authorize_timeout: float | None = None,
    ) -> Subscription | TopicsSubscription:
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
        * ``authorize``: ``async def authorize(topic) -> Access | None``, awaited when
          entering, before anything is registered or replayed (see :class:`~trio_sse.Access`).
          ``None`` (or raising :class:`~trio_sse.Forbidden`) refuses: entering raises
          ``Forbidden``; a hook that raises gives :class:`~trio_sse.AuthorizationError`, one
          that takes longer than ``authorize_timeout`` seconds (default 5) is cancelled and
          gives :class:`~trio_sse.AuthorizationTimeout` (both logged once). The grant's
          ``allow_event`` filters every event this subscriber gets, replayed ones included;
          its principals are what :meth:`revoke` ends.

        *topic* may also be a list or tuple of 1 to 16 topics (issue #16): one channel of
        them all, each in its own order, each event's ``id`` replaced by the stream's cursor,
        which *last_event_id* then resumes for every topic (see ``_cursor`` and the README's
        "Several topics in one stream"); ``authorize`` is asked for each topic in turn.
        A declared pattern (``"orders/*"``) is streamed the same way, alone or as one of
        the topics: ``authorize`` is asked for the pattern, then for each concrete topic
        the first time its event comes (a refusal drops that topic's events); an undeclared
        one (a ``*`` segment) is a ``ValueError``, as is a topic that a pattern of the same
        stream covers.

        Arguments are checked here (``TypeError``/``ValueError``), not when entering.
        """
        options = check_options(max_buffer_size, on_overflow, block_timeout)
        guard = check_guard(authorize, authorize_timeout)
        if self._merged(topic):
            topics, cursor = self._check_topics(topic, last_event_id)
            return TopicsSubscription(self, topics, cursor, options, guard, self._declared(topics))
        return Subscription(
            self, _check_topic(topic), parse_last_event_id(last_event_id), options, guard
        )

    def _check_topics(
        self, topics: Sequence[object], cursor: object
    ) -> tuple[tuple[str, ...], dict[str, str] | None]:
        """Several topics and their cursor, checked and parsed (``_topics``). Never blocks."""
        if isinstance(topics, str):
            topics = (topics,)  # a pattern: a stream of one entry
        checked = check_topics(topics, _check_topic)
        self._check_patterns_of(checked)
        if cursor is not None and not isinstance(cursor, (str, bytes)):
            raise TypeError(
                f"last_event_id must be a str, bytes or None, got {type(cursor).__name__}"
            )
        if not callable(getattr(self._backend, "head", None)):
            raise TypeError(
                f"a stream of several topics needs a backend with head(); "
                f"{type(self._backend).__name__} has none"
            )
        return checked, parse_cursor(cursor)

    def _merged(self, topic: object) -> bool:
        """Whether *topic* is streamed by a ``TopicsSubscription``: several topics, or a
        pattern (checked by :meth:`_check_topics`). Never blocks."""
        return _several(topic) or (isinstance(topic, str) and is_pattern(topic))

    def _declared(self, topics: tuple[str, ...]) -> frozenset[str]:
        patterns = self._patterns
        return frozenset(t for t in topics if patterns is not None and t in patterns)

    def _check_patterns_of(self, topics: tuple[str, ...]) -> None:
        """``ValueError`` for an undeclared pattern, or a topic that a pattern of the same
        stream covers (its events would come twice). Never blocks."""
        patterns = self._patterns
        for topic in topics:
            if not is_pattern(topic):
                covering = None if patterns is None else patterns.match(topic)
                if covering is not None and covering in topics:
                    raise ValueError(
                        f"topic {topic!r} is covered by the pattern {covering!r} of the same "
                        "stream: give one of them"
                    )
            elif patterns is None or topic not in patterns:
                declared = [] if patterns is None else list(patterns)
                raise ValueError(
                    f"{topic!r} is not a pattern this hub declares (declared: {declared}); "
                    "declare it with Broadcaster(..., patterns=[...])"
                )

    def topic_of(self, event: ServerSentEvent | str) -> str | None:
        """The topic that *event* (or its id, a stream's cursor) came from through one of
        this hub's patterns; ``None`` for an event that did not come through a pattern, or
        whose topic was too long to be named in its cursor. Never raises; never blocks."""
        event_id = event.id if isinstance(event, ServerSentEvent) else event
        patterns = self._patterns
        entries = parse_cursor(event_id) if isinstance(event_id, str) else None
        if not entries or patterns is None:
            return None
        key, value = next(iter(entries.items()))
        if "~" not in value or all(topic_key(p) != key for p in patterns):
            return None
        return split_index_id(value)[1]

    def stream(
        self,
        topic: str | Sequence[str],
        request_or_last_event_id: object = None,
        /,
        *,
        max_buffer_size: int = 256,
        on_overflow: Overflow | str = Overflow.DISCONNECT,
        block_timeout: float | None = None,
        authorize: Authorize | None = None,
        authorize_timeout: float | None = None,
    ) -> Producer:
        """A producer for ``EventSourceResponse(hub.stream(topic, request))``.

        *topic* is one topic, or a list or tuple of them for one stream of several topics
        with one resume cursor (see :meth:`subscribe`); a refusal of any one is the 403.
        A declared pattern is one of them (the hook refusing the pattern string is the 403;
        refusing a concrete topic later drops its events silently: see :meth:`subscribe`).

        The second argument is a request (its ``Last-Event-ID`` header, else its
        ``lastEventId`` query parameter, see :func:`last_event_id_from`), an id, or ``None``.
        The other options are those of :meth:`subscribe`, checked now.

        The response subscribes before it sends its headers, then streams the subscription
        itself (no forwarding task: an event costs one wake-up per subscriber) until it ends
        (overflow policy, revocation, hub closed) or the response ends (client gone,
        shutdown); then it unsubscribes, the body ends cleanly and an ``EventSource``
        reconnects with its last id. With ``authorize``, a refusal is answered with a 403, a
        hook that raises with a 500 and one that times out with a 503, plain text and no
        stream (an ``EventSource`` does not retry after them); ``HEAD`` asks the hook too.
        The hook is the app's to bind to the request, e.g. a closure over the user its
        cookie names. A subscription that cannot start for another reason (Redis
        unreachable) is logged and ends a 200 body at once, as a producer that raises does
        (an ``EventSource`` retries that). Called as a producer function
        (``await producer(send)``), it forwards the events into *send* and closes it (an
        ``AccessError`` is then the producer's error).
        """
        if self._merged(topic):
            topics, cursor = self._check_topics(topic, last_event_id_from(request_or_last_event_id))
            options = check_options(max_buffer_size, on_overflow, block_timeout)
            guard = check_guard(authorize, authorize_timeout)
            patterns = self._declared(topics)
            return DirectSource(
                functools.partial(
                    TopicsSubscription, self, topics, cursor, options, guard, patterns
                )
            )
        checked = _check_topic(topic)
        resume = parse_last_event_id(last_event_id_from(request_or_last_event_id))
        options = check_options(max_buffer_size, on_overflow, block_timeout)
        guard = check_guard(authorize, authorize_timeout)
        return DirectSource(functools.partial(Subscription, self, checked, resume, options, guard))

    # -- statistics ---------------------------------------------------------------------------

    def stats(self) -> BroadcastStats:
        """A snapshot of the counters (see :class:`BroadcastStats`). Never blocks."""
        counters = self._counters
        return BroadcastStats(
            subscribers={topic: len(subscribers) for topic, subscribers in self._topics.items()},
            published=counters.published,
            delivered=counters.delivered,
            dropped=counters.dropped,
            disconnected=counters.disconnected,
            revoked=counters.revoked,
            withheld=counters.withheld,
        )
