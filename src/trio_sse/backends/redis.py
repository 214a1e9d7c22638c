"""The Redis Streams backend: topics and history shared by several processes or hosts.

Each topic is one Redis stream, ``<prefix><topic>``, reached through coredis (the ``redis``
extra), under trio or asyncio alike:

* ``publish`` is ``XADD <key> MAXLEN ~ <history> <id> data <..> event <..> ... _p <nonce>``
  with a stream id chosen by this process (see :class:`~._redis_entries.StreamIds`), which is
  the event's id: a publish whose reply was lost and that is sent again is stored once;
* replay is ``XRANGE`` from the ``Last-Event-ID``;
* live events come from **one reader per hub**: a task with its own connection looping on a
  blocking ``XREAD`` over every topic that has a subscriber in this process, and fanning each
  event out locally; a new topic wakes it with ``CLIENT UNBLOCK``. A hub therefore holds one
  reader connection plus the client's pool (at most ``max_connections``) for the other
  commands, whatever the number of subscribers.

**Revocations** (``hub.revoke_everywhere``, issue #16) travel on one more stream, the control
stream ``<prefix>`` + the byte ``0xFF`` + ``control``: no topic can name that key (a topic's
key is the prefix followed by the topic's UTF-8, which never holds ``0xFF``), and it falls
under the ``~<prefix>*`` ACL pattern that the topics need. Each hub's reader reads it in the
same ``XREAD`` as the topics, from where it stood when the hub started, so a hub applies
every revocation sent while it is open (and none from before). It is trimmed to about
:data:`CONTROL_HISTORY` entries. The reader is therefore always connected while the hub is
open, even with no topic followed.

On a Redis Cluster (``redis+cluster://``, or an app's ``coredis.RedisCluster``) the key is
``<prefix>{n}<topic>``, one of 16 hash tags (``_redis_cluster``), and since one ``XREAD`` may
only name keys of one slot the hub runs one reader per slot in use, each on the slot's
primary: at most 16 reader connections, plus the pool (``max_connections`` per node); they
follow ``MOVED`` and failovers (``_redis_cluster_reader``). The control stream is
``<prefix>{0}`` + ``0xFF`` + ``control``, read with the topics of tag ``{0}`` by that slot's
reader, which therefore always runs while the hub is open. The other commands are routed by
coredis.

History lives in Redis: it is shared by every process using the same Redis and the same
``prefix``, and survives a restart of any of them (and of Redis itself if Redis persists).
"""

from __future__ import annotations

import logging
import math
import secrets
import ssl
from collections.abc import Hashable, Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
import anyio.abc

from .._events import ServerSentEvent
from .._patterns import Patterns
from .._resume import parse_stream_id
from .._validate import int_at_least, optional_instance, positive_int, seconds
from ._base import Deliver, Entry, Position, Replay, Revoke
from ._control import read_entry, revocation_fields
from ._errors import (
    RedisConnectionError,
    RedisError,
    RedisNotReplicatedError,
    RedisReplyError,
    translate,
)
from ._redis_client import RedisTarget, held, reader_connection
from ._redis_cluster import check_prefix, cluster_key, keyed
from ._redis_cluster_reader import ClusterReaders, Control
from ._redis_entries import (
    StreamIds,
    decode_entry,
    encode,
    entries,
    event_fields,
    next_id,
    nonce_of,
    text,
    trimmed_past,
)
from ._redis_patterns import index_key, matched_arguments, tagged

if TYPE_CHECKING:
    from coredis import Redis, RedisCluster
    from coredis.connection import BaseConnection
    from coredis.typing import Key

__all__ = ["CONTROL_HISTORY", "RedisBackend", "parse_stream_id"]

logger = logging.getLogger("trio_sse")

_PAGE = 1000  # entries per XRANGE call when replaying
_WAKE_ATTEMPTS = 50
_ID_ATTEMPTS = 16  # XADDs refused because another publisher took the id first
_REFUSED_ID = "equal or smaller than the target stream top item"
CONTROL_HISTORY = 1000
"""Revocations the control stream keeps (``MAXLEN ~``): a reader that lags by more (Redis
down for long, a ``block`` subscriber holding it) misses the oldest ones."""


def _raw(reply: Any) -> Any:
    return reply


def _streams(reply: object) -> list[tuple[object, object]]:
    """An ``XREAD`` reply (a RESP3 map, or RESP2 pairs) as ``(key, entries)`` pairs."""
    if reply is None:
        return []
    if isinstance(reply, dict):
        return list(reply.items())
    return [(pair[0], pair[1]) for pair in map(entries, entries(reply))]


class _Attempt(NamedTuple):
    """What every attempt of one publish sends: the topic's key, the fields with the
    publish's nonce, and the pattern index to write too (key, topic), if any."""

    topic: str
    key: bytes
    nonce: bytes
    fields: list[bytes]
    pattern_index: tuple[bytes, str] | None


class _Lookup:
    """One lookup of a topic's end, shared by its concurrent first watchers."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.error: RedisError | None = None

    async def join(self) -> None:
        """Wait for the lookup (a checkpoint); raise its error, if it failed, as a copy.

        Failing with it matters: retrying in turn, each after the last one timed out (a cut
        network), the N-th watcher would wait N times the timeouts.
        """
        await self.done.wait()
        if self.error is not None:
            raise type(self.error)(str(self.error)) from self.error


class RedisBackend:
    """Topics in Redis Streams, shared by every hub that uses the same Redis and ``prefix``.

    ``RedisBackend(url="redis://127.0.0.1:6379/0", *, prefix="trio_sse:", max_connections=4,
    connect_timeout=5.0, command_timeout=10.0, read_block=2.0, read_count=512,
    ssl_context=None, wait_replicas=0, wait_timeout=1.0)``

    * ``url``: ``redis://[[user]:password@]host[:port][/db]``; ``rediss://...`` for TLS (the
      server's certificate and host name are verified; ``?ssl_ca_certs=<file>``,
      ``&ssl_certfile=<file>&ssl_keyfile=<file>`` for a client certificate, or pass an
      ``ssl_context``); ``unix:///path/to/redis.sock[?db=n]``;
      ``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db]``
      for the primary that these sentinels (port 26379 by default) name for *service_name*
      (the credentials are the Redis nodes');
      ``redis+cluster://[[user]:password@]host[:port][,host[:port]...]`` for a Redis Cluster
      found from these nodes (port 6379 by default), ``rediss+cluster://...`` the same over
      TLS to every node (with the ``rediss://`` options, or an ``ssl_context``). Or a
      ``coredis.Redis`` (or ``coredis.RedisCluster``) client the app already has: the backend uses its pool, timeouts and retry policy (so
      ``max_connections``, ``connect_timeout``, ``command_timeout`` and ``ssl_context`` are
      for URLs only) and does not close it beyond its own use.
    * ``prefix``: prepended to topic names to make the stream keys.
    * ``max_connections``: size of the pool used by ``publish`` and replays (the reader has
      its own connection; on a cluster: per node, and one reader per slot in use). ``connect_timeout``/``command_timeout``: seconds (``None``: none).
    * ``read_block``: seconds one blocking ``XREAD`` may wait before the reader loops (a new
      topic normally wakes it at once with ``CLIENT UNBLOCK``; this bounds the rare case where
      the wake-up races with the read, or the ACL forbids ``CLIENT UNBLOCK``).
      ``read_count``: entries per stream per read.
    * ``wait_replicas``: after each ``XADD``, ``WAIT`` until that many replicas confirmed it,
      for at most ``wait_timeout`` seconds; fewer: ``publish`` raises
      :class:`~trio_sse.backends.RedisNotReplicatedError` (the event is stored on the primary
      and delivered, but a failover may lose it). ``0`` (the default): no ``WAIT``.

    Entering the :class:`~trio_sse.Broadcaster` connects and checks that the user may run
    every command the backend needs on its keys: :class:`~trio_sse.backends.RedisConnectionError`
    (naming the address, never the password) when Redis cannot be reached or refuses the
    credentials, :class:`~trio_sse.backends.RedisReplyError` naming the command the ACL
    denies. Later, when Redis goes away, ``publish`` and resuming subscribers raise
    ``RedisConnectionError``, and the reader retries with a growing delay (at most 2 s),
    resuming from the last position it delivered: live subscribers miss nothing that Redis
    still holds when it comes back.

    An event published with its own ``id`` must carry a stream id (``"<ms>-<seq>"``) greater
    than the topic's last one (``ValueError`` otherwise); usually, leave ``id`` unset.
    """

    def __init__(
        self,
        url: str | Redis[Any] | RedisCluster[Any] = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "trio_sse:",
        max_connections: int = 4,
        connect_timeout: float | None = 5.0,
        command_timeout: float | None = 10.0,
        read_block: float = 2.0,
        read_count: int = 512,
        ssl_context: ssl.SSLContext | None = None,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
    ) -> None:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        block = seconds("read_block", read_block, positive=True)
        if not block < math.inf:
            raise ValueError(f"read_block must be a finite number of seconds, got {read_block!r}")
        self._target = RedisTarget.of(
            url,
            max_connections=positive_int("max_connections", max_connections),
            connect_timeout=seconds("connect_timeout", connect_timeout, allow_none=True, positive=True),
            command_timeout=seconds("command_timeout", command_timeout, allow_none=True, positive=True),
            ssl_context=optional_instance("ssl_context", ssl_context, ssl.SSLContext, "an ssl.SSLContext"),
        )  # fmt: skip
        self.prefix = check_prefix(prefix) if self._target.cluster else prefix
        self.address = self._target.address  # the URL without its password
        self._command_timeout = command_timeout
        self._read_block_ms = max(1, round(block * 1000))
        self._read_count = int_at_least("read_count", read_count, 1)
        self._wait_replicas = int_at_least("wait_replicas", wait_replicas, 0)
        wait = seconds("wait_timeout", wait_timeout, positive=True)
        if not wait < math.inf:
            raise ValueError(
                f"wait_timeout must be a finite number of seconds, got {wait_timeout!r}"
            )
        self._wait_ms = max(1, round(wait * 1000))
        self._client: Redis[Any] | RedisCluster[Any] | None = None
        self._cluster: ClusterReaders | None = None  # a Redis Cluster's readers, one per slot
        self._deliver: Deliver | None = None
        self._history = 0
        self._ids = StreamIds()
        # The reader's view: topic -> (id string, position) of the last event handled.
        self._positions: dict[str, tuple[str, Position]] = {}
        self._watchers: dict[str, int] = {}
        self._pending: dict[str, _Lookup] = {}
        self._generation = 0  # bumped whenever the set of watched topics changes
        self._reading_generation: int | None = None  # generation of the XREAD in flight
        self._reader_client_id: int | None = None
        # Revocations: this backend's name in the control stream (to skip its own), the
        # hub's local revoke, and the reader's position in the control stream.
        self._origin = secrets.token_hex(8).encode()
        self._revoke: Revoke | None = None
        self._control: tuple[str, Position] = ("0-0", (0, 0))
        self._patterns: Patterns | None = None

    def declare_patterns(self, patterns: Patterns) -> None:
        """Keep an index stream of each of *patterns* (the hub's, before :meth:`start`):
        a publish to a matching topic writes both in one script (``_redis_patterns``). Not on
        a Redis Cluster (``ValueError``): a topic and its index are in two slots there."""
        if self._target.cluster:
            raise ValueError(
                "topic patterns are not available on Redis Cluster yet: a topic and its "
                "pattern's index stream hash to different slots"
            )
        self._patterns = patterns

    def __repr__(self) -> str:
        return f"RedisBackend({self.address!r}, prefix={self.prefix!r})"

    def _key(self, topic: str) -> bytes:
        """The stream of *topic*; for a declared pattern, its index (``_redis_patterns``)."""
        if self._patterns is not None and topic in self._patterns:
            return index_key(self.prefix, topic)
        if self._target.cluster:
            return encode(cluster_key(self.prefix, topic))
        return encode(self.prefix + topic)

    @property
    def _control_key(self) -> bytes:
        """The control stream (revocations): no topic's key, still under the prefix; on a
        cluster, in the slot of the hash tag ``{0}`` (one of the topics' tags)."""
        tag = b"{0}" if self._target.cluster else b""
        return encode(self.prefix) + tag + b"\xffcontrol"

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(
        self, task_group: anyio.abc.TaskGroup, deliver: Deliver, *, history: int
    ) -> None:
        """Open the client in *task_group* (the hub's), check access, start the reader."""
        if self._client is not None:
            raise RuntimeError("this RedisBackend already serves a Broadcaster")
        client = self._client = self._target.client()
        if self._target.cluster:
            self._cluster = self._cluster_readers(client, deliver)  # type: ignore[arg-type]
        try:
            await task_group.start(self._hold, client, name="trio_sse Redis client")
            await self._check_access()
            # The control stream's end, as an id: ``$`` in each XREAD would skip what was
            # added between two reads (and the revocations sent before this hub started).
            self._control = await self._top(self._control_key)
        except BaseException:
            self._client = self._cluster = None
            raise
        self._deliver = deliver
        self._history = history
        if self._cluster is not None:
            task_group.start_soon(self._cluster.run, name="trio_sse Redis Cluster readers")
        else:
            task_group.start_soon(self._read_forever, name="trio_sse Redis stream reader")

    def _cluster_readers(self, client: RedisCluster[Any], deliver: Deliver) -> ClusterReaders:
        async def dispatch(topic: str, found: Sequence[object]) -> None:
            await self._dispatch(deliver, topic, found)

        control = Control(self._control_key, lambda: self._control[0], self._apply_revocations)
        return ClusterReaders(
            client, self._positions, self._key, dispatch, control, address=self.address,
            block_ms=self._read_block_ms, count=self._read_count, timeout=self._read_timeout(),
        )  # fmt: skip

    def _read_timeout(self) -> float:
        # A blocking read legitimately takes up to read_block: allow that on top.
        return self._read_block_ms / 1000 + (self._command_timeout or 30.0)

    async def _hold(
        self, client: Redis[Any] | RedisCluster[Any], *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        """Keep *client*'s pools entered (see :func:`~._redis_client.held`) until the hub
        cancels. Entering a cluster's pool discovers the cluster (``CLUSTER SLOTS``): its
        errors are translated (a node refusing TLS is a ``RedisConnectionError``)."""
        from coredis.exceptions import RedisError as CoredisError

        async with AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(held(client, owned=self._target.owned))
            except CoredisError as exc:  # always translated into a new error
                raise translate(exc, self.address, "CLUSTER SLOTS") from exc
            task_status.started()
            await anyio.sleep_forever()

    async def _check_access(self) -> None:
        """Fail at start, not at the first publish, when the ACL denies a command we need.

        Each probe is refused or answered by Redis without writing anything: ``XADD`` with
        the id ``0-0`` is refused ("must be greater than 0-0") only *after* the ACL check.
        """
        probes: list[tuple[bytes, tuple[bytes | int | Key, ...]]] = []
        for name in (self._key("trio_sse-access-check"), self._control_key):
            key = keyed(name)
            probes += [
                (b"XADD", (key, b"0-0", b"_", b"")),
                (b"XRANGE", (key, b"-", b"+", b"COUNT", 1)),
                (b"XREVRANGE", (key, b"+", b"-", b"COUNT", 1)),
                (b"XREAD", (b"COUNT", 1, b"STREAMS", key, b"0-0")),
            ]
        if self._patterns is not None:  # a publish to a matching topic is a script
            probes.append((b"EVAL", (b"return 0", 0)))
        for name, args in probes:
            try:
                await self._command(name, *args)
            except RedisReplyError as exc:
                if str(exc).startswith("NOPERM"):
                    raise RedisReplyError(
                        f"the Redis user at {self.address} may not run {name.decode()} on the keys "
                        f"{self.prefix}*: {exc}"
                    ) from exc
        try:
            if self._cluster is not None:
                await self._cluster.unblock(None, 0)
            else:
                await self._command(b"CLIENT UNBLOCK", 0)
        except RedisReplyError as exc:
            logger.warning(
                "trio_sse: Redis at %s denies CLIENT UNBLOCK (%s): a topic's first subscriber "
                "may wait up to read_block for its first live event",
                self.address,
                exc,
            )

    async def aclose(self) -> None:
        """Forget the topics. The client was closed with the hub's task group."""
        self._positions.clear()
        self._watchers.clear()

    # -- commands -------------------------------------------------------------------------------

    async def _command(self, name: bytes, *args: bytes | int | Key) -> Any:
        """One command through the client's pool, its reply undecoded. A checkpoint."""
        client = self._client
        if client is None:
            raise RuntimeError("the backend is not started")
        try:
            return await client.create_request(
                name, *args, callback=_raw, execution_parameters={"decode": False}
            )
        except Exception as exc:
            error = translate(exc, self.address, name.decode())
            if error is exc:
                raise
            raise error from exc

    async def publish(self, topic: str, event: ServerSentEvent) -> str:
        """``XADD`` with an id chosen here; returns it. A checkpoint; delivery goes through
        the reader.

        Returns only once Redis confirmed that it stored the event; raises otherwise
        (``RedisConnectionError``: maybe stored, maybe not). Sent again after a lost reply
        (the client's retry), the ``XADD`` is refused, and the entry at that id carries this
        publish's nonce: success, stored once. When the entry is not there and the stream was
        trimmed past it, it may have been stored and trimmed before the retry looked:
        ``RedisConnectionError``, never a second copy under a new id.
        """
        own_id = event.id
        if own_id is not None and parse_stream_id(own_id) is None:
            raise ValueError(
                f"on Redis an event's own id must be a stream id '<ms>-<seq>' greater than the "
                f"topic's last one (or None to let the backend choose it), got {own_id!r}"
            )
        nonce = secrets.token_hex(8).encode()
        pattern = None if self._patterns is None else self._patterns.match(topic)
        index = None if pattern is None else (index_key(self.prefix, pattern), topic)
        attempt = _Attempt(topic, self._key(topic), nonce, event_fields(event, nonce), index)
        for _ in range(_ID_ATTEMPTS):
            if own_id is None:
                stream_id, position = self._ids.issue(topic)
            else:
                stream_id, position = own_id, parse_stream_id(own_id) or (0, 0)
            if await self._try_add(attempt, stream_id, position, own_id):
                return stream_id
        raise RedisReplyError(
            f"no free stream id in {topic!r} after {_ID_ATTEMPTS} attempts: other publishers "
            "took each one first"
        )

    async def _try_add(
        self, attempt: _Attempt, stream_id: str, position: Position, own_id: str | None
    ) -> bool:
        """One ``XADD`` of *attempt* at *stream_id*: ``True`` once it is stored (by this call,
        or by an earlier one whose reply was lost), ``False`` when another publish holds the
        id (try the next one). A checkpoint."""
        try:
            if (
                attempt.pattern_index is None
            ):  # the call as it was (tests wrap _add with its arguments)
                await self._add(attempt.key, stream_id, attempt.fields)
            else:
                await self._add(attempt.key, stream_id, attempt.fields, index=attempt.pattern_index)
        except RedisReplyError as exc:
            return await self._after_refusal(attempt, stream_id, position, own_id, exc)
        self._ids.observe(attempt.topic, position)
        return True

    async def _after_refusal(
        self,
        attempt: _Attempt,
        stream_id: str,
        position: Position,
        own_id: str | None,
        exc: RedisReplyError,
    ) -> bool:
        """Redis refused the ``XADD``: stored already (``True``), taken by another publish
        (``False``), or an error to raise. A checkpoint."""
        refused = _REFUSED_ID in str(exc)
        if refused and await self._stored(attempt.key, stream_id, attempt.nonce):
            # An earlier attempt of this publish stored it, on a connection now gone: a WAIT
            # on another one could not tell whether replicas have it.
            if self._wait_replicas:
                raise self._not_replicated(stream_id, "its first reply was lost") from exc
            return True
        if own_id is not None and (refused or "ID" in str(exc)):
            raise ValueError(f"Redis refused the event id {own_id!r}: {exc}") from exc
        if not refused:
            raise exc
        self._ids.observe(attempt.topic, (await self._top(attempt.key))[1])
        if await self._trimmed_past(attempt.key, position):
            raise RedisConnectionError(
                f"could not confirm the publish to {attempt.topic!r} at {self.address}: the "
                f"entry {stream_id} is not there, and may have been trimmed after it was "
                "stored (a lost reply, the XADD sent again)"
            ) from exc
        return False

    async def _trimmed_past(self, key: bytes, position: Position) -> bool:
        """Whether an entry at *position* may have been trimmed (or deleted) from the stream
        since it was stored: see :func:`~._redis_entries.trimmed_past`. ``False`` when Redis
        cannot say (before 7.0, or an ACL without ``XINFO``). A checkpoint."""
        try:
            info = await self._command(b"XINFO", b"STREAM", keyed(key))
        except RedisReplyError:
            return False
        return trimmed_past(info, position)

    async def _add(
        self,
        key: bytes,
        stream_id: str,
        fields: Sequence[bytes],
        index: tuple[bytes, str] | None = None,
    ) -> None:
        """The ``XADD``, then (with ``wait_replicas``) the ``WAIT``, which coredis sends on the
        connection of the ``XADD``: it counts the replicas that have this write. A checkpoint.

        With *index* (a pattern's index key and the topic), the script that writes both."""
        name = b"XADD"
        arguments: list[bytes | int | Key] = [keyed(key), b"MAXLEN", b"~", self._history]
        arguments.append(stream_id.encode())
        arguments += fields
        if index is not None:
            name = b"EVAL"
            arguments = [
                *matched_arguments(key, *index[:1], self._history, stream_id, index[1], fields)
            ]
        if not self._wait_replicas:
            await self._command(name, *arguments)
            return
        from coredis.exceptions import ReplicationError

        assert self._client is not None
        try:
            with self._client.ensure_replication(self._wait_replicas, self._wait_ms):
                await self._command(name, *arguments)
        except RedisError as exc:
            if isinstance(exc.__cause__, ReplicationError):
                raise self._not_replicated(stream_id, "WAIT timed out") from exc.__cause__
            raise

    def _not_replicated(self, stream_id: str, why: str) -> RedisNotReplicatedError:
        wanted = self._wait_replicas
        return RedisNotReplicatedError(
            f"the event {stream_id} is stored on the Redis primary at {self.address}, but "
            f"fewer than {wanted} replica(s) confirmed it within {self._wait_ms} ms ({why})",
            id=stream_id,
            wanted=wanted,
        )

    async def _stored(self, key: bytes, stream_id: str, nonce: bytes) -> bool:
        """Whether the entry at *stream_id* is the publish named by *nonce*."""
        start = stream_id.encode()
        found = entries(await self._command(b"XRANGE", keyed(key), start, start))
        return any(nonce_of(raw) == nonce for raw in found)

    async def _top(self, key: bytes) -> tuple[str, Position]:
        """The stream's last id (``"0-0"`` when empty or missing)."""
        reply = entries(await self._command(b"XREVRANGE", keyed(key), b"+", b"-", b"COUNT", 1))
        if not reply:
            return "0-0", (0, 0)
        stream_id = text(entries(reply[0])[0])
        position = parse_stream_id(stream_id)
        if position is None:
            raise RedisConnectionError(f"unexpected stream id from Redis: {stream_id!r}")
        return stream_id, position

    async def _range(self, topic: str, start: str) -> list[Entry]:
        found: list[Entry] = []
        key = self._key(topic)
        while True:
            page = entries(
                await self._command(b"XRANGE", keyed(key), start.encode(), b"+", b"COUNT", _PAGE)
            )
            for raw in page:
                _, position, event = self._decode(topic, raw)
                if event is not None:
                    found.append(Entry(position, event))
            if len(page) < _PAGE:
                return found
            last = parse_stream_id(text(entries(page[-1])[0]))
            assert last is not None
            start = next_id(last)

    def _decode(self, topic: str, raw: object) -> tuple[str, Position, ServerSentEvent | None]:
        """:func:`decode_entry`; an index entry's event also names its topic in its id."""
        stream_id, position, event = decode_entry(raw)
        if event is not None and self._patterns is not None and topic in self._patterns:
            event = tagged(raw, event)
        return stream_id, position, event

    async def replay(self, topic: str, last_event_id: str | None) -> Replay:
        """``XRANGE`` after the id; the whole retained stream when the id is not in it."""
        position = parse_stream_id(last_event_id) if last_event_id is not None else None
        if position is not None:
            assert last_event_id is not None
            found = await self._range(topic, last_event_id)
            if found and found[0].position == position:
                return Replay("found", position, found[1:])
        retained = await self._range(topic, "-")
        if position is not None and retained and position < retained[0].position:
            return Replay("expired", None, retained)
        return Replay("unknown-id", None, retained)

    async def head(self, topic: str) -> str | None:
        """The stream's last id, ``None`` when empty (streams of several topics, issue #16)."""
        stream_id, position = await self._top(self._key(topic))
        return None if position == (0, 0) else stream_id

    # -- watching -------------------------------------------------------------------------------

    async def watch(self, topic: str) -> None:
        """Make the reader follow *topic* from its current end. A checkpoint.

        Returns once the reader's starting point is fixed: every event added after that is
        delivered. Concurrent first watchers of one topic share one lookup, and its failure.
        """
        self._watchers[topic] = self._watchers.get(topic, 0) + 1
        try:
            while topic not in self._positions:
                pending = self._pending.get(topic)
                if pending is not None:
                    await pending.join()
                    continue
                pending = self._pending[topic] = _Lookup()
                try:
                    last = await self._top(self._key(topic))
                except RedisError as exc:
                    pending.error = exc
                    raise
                finally:
                    del self._pending[topic]
                    pending.done.set()
                if self._watchers.get(topic, 0) > 0 and topic not in self._positions:
                    self._positions[topic] = last
                    self._generation += 1
                    if self._cluster is not None:
                        self._cluster.add(topic)
                        await self._cluster.wake(topic)
                    else:
                        await self._wake_reader(self._generation)
        except BaseException:
            self.unwatch(topic)
            raise

    def unwatch(self, topic: str) -> None:
        count = self._watchers.get(topic, 0) - 1
        if count > 0:
            self._watchers[topic] = count
            return
        self._watchers.pop(topic, None)
        if self._cluster is not None:
            self._cluster.discard(topic)
        if self._positions.pop(topic, None) is not None:
            # The reader drops the topic at its next read; no need to wake it for that.
            self._generation += 1

    async def _wake_reader(self, generation: int) -> None:
        """Make the reader restart its ``XREAD`` with the current topics. A checkpoint.

        ``CLIENT UNBLOCK`` ends a blocked ``XREAD`` at once (as if it timed out). It returns 0
        when the ``XREAD`` has not reached Redis yet: then retry briefly; if that still fails,
        ``read_block`` bounds the wait. Errors are ignored (an ACL may forbid ``CLIENT``).
        """
        for _ in range(_WAKE_ATTEMPTS):
            reading = self._reading_generation
            client_id = self._reader_client_id
            if reading is None or reading >= generation or client_id is None:
                return
            try:
                if await self._command(b"CLIENT UNBLOCK", client_id) == 1:
                    return
            except RedisError:
                return
            await anyio.sleep(0.002)

    # -- the reader -----------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        """The hub's reader task: reconnect with a growing delay whenever Redis fails."""
        delay = 0.05
        while True:
            error, connected = await self._read_once()
            if connected:
                delay = 0.05
            if isinstance(error, RedisError):
                # With no topic followed, no subscriber waits for it: only revocations, read
                # from where it stopped once it is back, so nothing is lost (info, not warning).
                logger.log(
                    logging.WARNING if self._positions else logging.INFO,
                    "trio_sse: Redis stream reader: %s; retrying in %.2f s",
                    error,
                    delay,
                )
            else:
                logger.error(
                    "trio_sse: Redis stream reader failed; retrying in %.2f s",
                    delay,
                    exc_info=error,
                )
            await anyio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _read_once(self) -> tuple[Exception, bool]:
        """Connect the reader and read until that fails: (the error, whether it connected)."""
        assert self._client is not None
        connected = False
        try:
            # Not a cluster's client: those have their ClusterReaders.
            async with reader_connection(self._client) as connection:  # type: ignore[arg-type]
                connected = True
                self._reader_client_id = connection.client_id
                await self._read(connection)
        except Exception as exc:
            return translate(exc, self.address, "XREAD"), connected
        finally:
            self._reader_client_id = None
            self._reading_generation = None
        raise AssertionError("the reader's loop ended")  # pragma: no cover

    async def _read(self, connection: BaseConnection) -> None:
        deliver = self._deliver
        assert deliver is not None
        block_ms = self._read_block_ms
        timeout = self._read_timeout()
        control = self._control_key
        while True:
            topics = list(self._positions)
            by_key = {self._key(topic): topic for topic in topics}
            starts = [self._positions[topic][0].encode() for topic in topics]
            arguments: list[bytes | int] = [b"COUNT", self._read_count, b"BLOCK", block_ms]
            arguments += [b"STREAMS", control, *by_key, self._control[0].encode(), *starts]
            self._reading_generation = self._generation
            try:
                reply = await connection.create_request(
                    b"XREAD",
                    *arguments,
                    decode=False,
                    timeout=timeout,
                    disconnect_on_cancellation=True,
                )
            finally:
                self._reading_generation = None
            for key, found in _streams(reply):
                if key == control:
                    self._apply_revocations(entries(found))
                    continue
                topic = by_key.get(key) if isinstance(key, bytes) else None
                if topic is not None:
                    await self._dispatch(deliver, topic, entries(found))

    async def _dispatch(self, deliver: Deliver, topic: str, found: Sequence[object]) -> None:
        for raw in found:
            current = self._positions.get(topic)
            if current is None:
                return  # nobody here follows this topic any more
            stream_id, position, event = self._decode(topic, raw)
            # Only forward: a topic dropped and watched again restarts from its newer end.
            if position <= current[1]:
                continue
            if event is not None:
                await deliver(topic, Entry(position, event))
            current = self._positions.get(topic)
            if current is not None and position > current[1]:
                self._positions[topic] = (stream_id, position)

    # -- revocations ----------------------------------------------------------------------------

    def on_revoke(self, revoke: Revoke) -> None:
        """The hub's local revoke, called for each revocation another hub sends. Never blocks."""
        self._revoke = revoke

    async def revoke(self, principal: Hashable, farewell: ServerSentEvent | None) -> None:
        """``XADD`` the revocation to the control stream; every other hub's reader applies it.

        A checkpoint; returns once Redis stored it. ``TypeError`` first, with nothing sent,
        for a principal that JSON cannot carry (see ``_control``). A lost reply retried by the
        client may store it twice: applied twice, the second finds nothing more to end.
        """
        fields = revocation_fields(self._origin, principal, farewell)
        history = b"%d" % CONTROL_HISTORY
        key = keyed(self._control_key)
        await self._command(b"XADD", key, b"MAXLEN", b"~", history, b"*", *fields)

    def _apply_revocations(self, found: Sequence[object]) -> None:
        """Apply the control entries the reader read (not this backend's own). Never blocks."""
        revoke = self._revoke
        for raw in found:
            # XREAD returns only entries after the position it was given: each is new here.
            stream_id, position, revocation = read_entry(raw)
            self._control = (stream_id, position)
            if revocation is not None and revocation.origin != self._origin and revoke:
                revoke(revocation.principal, revocation.farewell)
