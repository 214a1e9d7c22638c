"""The Redis Streams backend: topics and history shared by several processes or hosts.

Each topic is one Redis stream, ``<prefix><topic>``:

* ``publish`` is ``XADD <key> MAXLEN ~ <history> * data <..> event <..> ...``; the stream id
  Redis assigns (``1718000000000-0``) is the event's id. The fields stored are the event's
  ``data``, ``event``, ``retry``, ``comment`` and ``sep`` (only those that are set), so replay
  rebuilds the same :class:`~trio_sse.ServerSentEvent` with the stream id as its id;
* replay is ``XRANGE`` from the ``Last-Event-ID``;
* live events come from **one reader per hub**: a task with its own connection looping on a
  blocking ``XREAD`` over every topic that has a subscriber in this process, and fanning each
  event out locally. A hub therefore holds one reader connection plus a small pool (at most
  ``max_connections``) for ``XADD``/``XRANGE``, whatever the number of subscribers.

History lives in Redis: it is shared by every process using the same Redis and the same
``prefix``, and survives a restart of any of them (and of Redis itself if Redis persists).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import anyio
import anyio.abc

from .._events import ServerSentEvent
from .._resume import MAX_STREAM_ID_PART, parse_stream_id
from ._base import Deliver, Entry, Position, Replay
from ._resp import (
    RedisConnection,
    RedisConnectionError,
    RedisError,
    RedisPool,
    RedisReplyError,
    RespValue,
    parse_redis_url,
)

__all__ = ["RedisBackend", "parse_stream_id"]

logger = logging.getLogger("trio_sse")

_PAGE = 1000  # entries per XRANGE call when replaying
_WAKE_ATTEMPTS = 50


def _next_id(position: Position) -> str:
    ms, seq = position
    return f"{ms}-{seq + 1}" if seq < MAX_STREAM_ID_PART else f"{ms + 1}-0"


def _text(value: RespValue) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    raise RedisConnectionError(f"unexpected reply from Redis: {value!r}")


def _list(value: RespValue) -> list[RespValue]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RedisConnectionError(f"unexpected reply from Redis: {value!r}")
    return value


_FIELDS = ("data", "event", "retry", "comment", "sep")


def _event_fields(event: ServerSentEvent) -> list[str]:
    fields: list[str] = []
    if event.data is not None:
        fields += ["data", event.data]
    if event.event is not None:
        fields += ["event", event.event]
    if event.retry is not None:
        fields += ["retry", str(event.retry)]
    if event.comment is not None:
        fields += ["comment", event.comment]
    if event.sep is not None:
        fields += ["sep", event.sep]
    # XADD needs at least one field: an empty event is stored with a marker.
    return fields or ["_", ""]


def _decode_entry(raw: RespValue) -> tuple[str, Position, ServerSentEvent | None]:
    """A stream entry -> (id, position, event); event ``None`` when it cannot be rebuilt."""
    item = _list(raw)
    if len(item) != 2:
        raise RedisConnectionError(f"unexpected stream entry from Redis: {raw!r}")
    stream_id = _text(item[0])
    position = parse_stream_id(stream_id)
    if position is None:
        raise RedisConnectionError(f"unexpected stream id from Redis: {stream_id!r}")
    values = _list(item[1])
    fields: dict[str, str] = {}
    for index in range(0, len(values) - 1, 2):
        name = _text(values[index])
        if name in _FIELDS:
            fields[name] = _text(values[index + 1])
    retry_text = fields.get("retry")
    try:
        event = ServerSentEvent(
            fields.get("data"),
            event=fields.get("event"),
            id=stream_id,
            retry=int(retry_text) if retry_text is not None else None,
            comment=fields.get("comment"),
            sep=fields.get("sep"),
        )
    except (TypeError, ValueError):
        # Written by something else than this library (a bad ``event`` or ``retry``): the
        # entry is skipped, the stream goes on.
        logger.warning("trio_sse: skipping stream entry %s that is not a valid event", stream_id)
        return stream_id, position, None
    return stream_id, position, event


class RedisBackend:
    """Topics in Redis Streams, shared by every hub that uses the same Redis and ``prefix``.

    ``RedisBackend(url="redis://127.0.0.1:6379/0", *, prefix="trio_sse:", max_connections=4,
    connect_timeout=5.0, command_timeout=10.0, read_block=2.0, read_count=512)``

    * ``url``: ``redis://[[user]:password@]host[:port][/db]`` (plain TCP; no TLS).
    * ``prefix``: prepended to topic names to make the stream keys.
    * ``max_connections``: size of the pool used by ``publish`` and replays (the reader has
      its own connection). ``connect_timeout``/``command_timeout``: seconds (``None``: none).
    * ``read_block``: seconds one blocking ``XREAD`` may wait before the reader loops (a new
      topic normally wakes it at once with ``CLIENT UNBLOCK``; this bounds the rare case where
      the wake-up races with the read). ``read_count``: entries per stream per read.

    Entering the :class:`~trio_sse.Broadcaster` checks that Redis answers (``PING``) and
    raises :class:`~trio_sse.backends.RedisConnectionError` if not. Later, when Redis goes
    away, ``publish`` and resuming subscribers raise that error, and the reader retries with a
    growing delay (at most 2 s), resuming from the last position it delivered: live
    subscribers miss nothing that Redis still holds when it comes back.

    An event published with its own ``id`` must carry a stream id (``"<ms>-<seq>"``) greater
    than the topic's last one (``ValueError`` otherwise); usually, leave ``id`` unset.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "trio_sse:",
        max_connections: int = 4,
        connect_timeout: float | None = 5.0,
        command_timeout: float | None = 10.0,
        read_block: float = 2.0,
        read_count: int = 512,
    ) -> None:
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        if (
            isinstance(read_block, bool)
            or not isinstance(read_block, (int, float))
            or not 0 < read_block < math.inf
        ):
            raise ValueError(f"read_block must be a number of seconds > 0, got {read_block!r}")
        if isinstance(read_count, bool) or not isinstance(read_count, int) or read_count < 1:
            raise ValueError(f"read_count must be an int >= 1, got {read_count!r}")
        self.url = url
        self.prefix = prefix
        self._pool = RedisPool(
            parse_redis_url(url),
            size=max_connections,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
        )
        self._read_block_ms = max(1, round(read_block * 1000))
        self._read_count = read_count
        self._deliver: Deliver | None = None
        self._history = 0
        # The reader's view: topic -> (id string, position) of the last event handled.
        self._positions: dict[str, tuple[str, Position]] = {}
        self._watchers: dict[str, int] = {}
        self._pending: dict[str, anyio.Event] = {}
        self._generation = 0  # bumped whenever the set of watched topics changes
        self._reading_generation: int | None = None  # generation of the XREAD in flight
        self._reader_client_id: int | None = None
        self._idle: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"RedisBackend({str(self._pool.address)!r}, prefix={self.prefix!r})"

    def _key(self, topic: str) -> str:
        return self.prefix + topic

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(
        self, task_group: anyio.abc.TaskGroup, deliver: Deliver, *, history: int
    ) -> None:
        if self._deliver is not None:
            raise RuntimeError("this RedisBackend already serves a Broadcaster")
        await self._pool.execute("PING")
        self._deliver = deliver
        self._history = history
        task_group.start_soon(self._read_forever, name="trio_sse Redis stream reader")

    async def aclose(self) -> None:
        self._positions.clear()
        self._watchers.clear()
        await self._pool.aclose()

    # -- commands -------------------------------------------------------------------------------

    async def publish(self, topic: str, event: ServerSentEvent) -> str:
        """``XADD``; returns the stream id. A checkpoint; delivery goes through the reader."""
        own_id = event.id
        if own_id is not None and parse_stream_id(own_id) is None:
            raise ValueError(
                f"on Redis an event's own id must be a stream id '<ms>-<seq>' greater than the "
                f"topic's last one (or None to let Redis assign it), got {own_id!r}"
            )
        try:
            reply = await self._pool.execute(
                "XADD",
                self._key(topic),
                "MAXLEN",
                "~",
                self._history,
                own_id if own_id is not None else "*",
                *_event_fields(event),
            )
        except RedisReplyError as exc:
            if own_id is not None and "ID" in str(exc):
                raise ValueError(f"Redis refused the event id {own_id!r}: {exc}") from exc
            raise
        return _text(reply)

    async def _range(self, topic: str, start: str) -> list[Entry]:
        entries: list[Entry] = []
        key = self._key(topic)
        while True:
            page = _list(await self._pool.execute("XRANGE", key, start, "+", "COUNT", _PAGE))
            for raw in page:
                _, position, event = _decode_entry(raw)
                if event is not None:
                    entries.append(Entry(position, event))
            if len(page) < _PAGE:
                return entries
            last = parse_stream_id(_text(_list(page[-1])[0]))
            assert last is not None
            start = _next_id(last)

    async def replay(self, topic: str, last_event_id: str | None) -> Replay:
        """``XRANGE`` after the id; the whole retained stream when the id is not in it."""
        position = parse_stream_id(last_event_id) if last_event_id is not None else None
        if position is not None:
            assert last_event_id is not None
            found = await self._range(topic, last_event_id)
            if found and found[0].position == position:
                return Replay("found", position, found[1:])
        entries = await self._range(topic, "-")
        if position is not None and entries and position < entries[0].position:
            return Replay("expired", None, entries)
        return Replay("unknown-id", None, entries)

    async def _last_position(self, topic: str) -> tuple[str, Position]:
        reply = _list(await self._pool.execute("XREVRANGE", self._key(topic), "+", "-", "COUNT", 1))
        if not reply:
            return "0-0", (0, 0)
        stream_id = _text(_list(reply[0])[0])
        position = parse_stream_id(stream_id)
        if position is None:
            raise RedisConnectionError(f"unexpected stream id from Redis: {stream_id!r}")
        return stream_id, position

    # -- watching -------------------------------------------------------------------------------

    async def watch(self, topic: str) -> None:
        """Make the reader follow *topic* from its current end. A checkpoint.

        Returns once the reader's starting point is fixed: every event added after that is
        delivered. Concurrent first watchers of one topic share one lookup.
        """
        self._watchers[topic] = self._watchers.get(topic, 0) + 1
        try:
            while topic not in self._positions:
                pending = self._pending.get(topic)
                if pending is not None:
                    await pending.wait()
                    continue
                pending = self._pending[topic] = anyio.Event()
                try:
                    last = await self._last_position(topic)
                finally:
                    del self._pending[topic]
                    pending.set()
                if self._watchers.get(topic, 0) > 0 and topic not in self._positions:
                    self._positions[topic] = last
                    self._generation += 1
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
        if self._positions.pop(topic, None) is not None:
            # The reader drops the topic at its next read; no need to wake it for that.
            self._generation += 1

    async def _wake_reader(self, generation: int) -> None:
        """Make the reader restart its ``XREAD`` with the current topics. A checkpoint.

        ``CLIENT UNBLOCK`` ends a blocked ``XREAD`` at once (as if it timed out). It returns 0
        when the ``XREAD`` has not reached Redis yet: then retry briefly; if that still fails,
        ``read_block`` bounds the wait. Errors are ignored (an ACL may forbid ``CLIENT``).
        """
        idle = self._idle
        if idle is not None:
            idle.set()
        for _ in range(_WAKE_ATTEMPTS):
            reading = self._reading_generation
            client_id = self._reader_client_id
            if reading is None or reading >= generation or client_id is None:
                return
            try:
                if await self._pool.execute("CLIENT", "UNBLOCK", client_id) == 1:
                    return
            except RedisError:
                return
            await anyio.sleep(0.002)

    # -- the reader -----------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        """The hub's reader task: reconnect with a growing delay whenever Redis fails."""
        delay = 0.05
        while True:
            connection: RedisConnection | None = None
            try:
                connection = await self._pool.connect()
                client_id = await connection.execute("CLIENT", "ID")
                self._reader_client_id = client_id if isinstance(client_id, int) else None
                delay = 0.05
                await self._read(connection)
            except RedisError as exc:
                logger.warning("trio_sse: Redis stream reader: %s; retrying in %.2f s", exc, delay)
            except Exception:
                logger.exception("trio_sse: Redis stream reader failed; retrying in %.2f s", delay)
            finally:
                self._reader_client_id = None
                self._reading_generation = None
                if connection is not None:
                    await connection.aclose()
            await anyio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _read(self, connection: RedisConnection) -> None:
        deliver = self._deliver
        assert deliver is not None
        block_ms = self._read_block_ms
        # A blocking read legitimately takes up to read_block: allow that on top.
        connection.timeout = block_ms / 1000 + (self._pool.command_timeout or 30.0)
        while True:
            if not self._positions:
                self._idle = anyio.Event()
                if not self._positions:
                    await self._idle.wait()
                self._idle = None
                continue
            topics = list(self._positions)
            by_key = {self._key(topic).encode("utf-8", "surrogatepass"): topic for topic in topics}
            starts = [self._positions[topic][0] for topic in topics]
            self._reading_generation = self._generation
            try:
                reply = await connection.execute(
                    "XREAD",
                    "COUNT",
                    self._read_count,
                    "BLOCK",
                    block_ms,
                    "STREAMS",
                    *by_key,
                    *starts,
                )
            finally:
                self._reading_generation = None
            for stream in _list(reply):
                key_and_entries = _list(stream)
                topic = (
                    by_key.get(key_and_entries[0])
                    if isinstance(key_and_entries[0], bytes)
                    else None
                )
                if topic is None:
                    continue
                await self._dispatch(deliver, topic, _list(key_and_entries[1]))

    async def _dispatch(self, deliver: Deliver, topic: str, entries: Sequence[RespValue]) -> None:
        for raw in entries:
            current = self._positions.get(topic)
            if current is None:
                return  # nobody here follows this topic any more
            stream_id, position, event = _decode_entry(raw)
            # Only forward: a topic dropped and watched again restarts from its newer end.
            if position <= current[1]:
                continue
            if event is not None:
                await deliver(topic, Entry(position, event))
            current = self._positions.get(topic)
            if current is not None and position > current[1]:
                self._positions[topic] = (stream_id, position)
