"""The hub's live readers on a Redis Cluster: one blocking ``XREAD`` per slot in use.

A blocking ``XREAD`` may only name keys of one slot (``CROSSSLOT`` otherwise, even for two
slots of one node), and topics' keys carry one of 16 hash tags (``_redis_cluster``): so a hub
runs one reader per tag that has a watched topic, each a task with its own connection to the
primary serving that slot, at most 16 reader connections per hub (plus the client's pool,
``max_connections`` per node, for the other commands). A reader whose slot has no watched
topic left ends and closes its connection; :meth:`ClusterReaders.run` starts one when a topic
of a slot without reader is watched. The reader of the control stream's slot (revocations,
:class:`Control`) reads it with that slot's topics and runs while the hub is open.

Each reader resumes from the positions the backend keeps per topic (the last entry it
delivered): after ``MOVED`` (a slot migrated, a replica promoted: coredis' cluster layout is
told, which updates the slot's owner at once) or a lost connection (a primary killed: the
layout is told of the error, and coredis refreshes it from ``CLUSTER SLOTS``), it reconnects,
with a growing delay (at most 2 s) after errors, and reads on from there: no gap, no
duplicate. A new topic wakes its slot's reader with ``CLIENT UNBLOCK`` on that reader's node.

Beyond coredis' documented API this relies on ``ClusterConnectionPool.cluster_layout``
(``node_for_slot``, ``report_errors``), ``acquire(node=...)``, ``connection_class`` and
``connection_kwargs``: bounded with the rest of coredis' private parts (``pyproject.toml``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio

from ._errors import RedisConnectionError, RedisError, _unwrapped, translate
from ._redis_entries import entries

if TYPE_CHECKING:
    from coredis import RedisCluster
    from coredis.cluster._node import ClusterNodeLocation
    from coredis.connection import BaseConnection

__all__ = ["ClusterReaders", "Control", "node_connection", "streams"]

logger = logging.getLogger("trio_sse")

_WAKE_ATTEMPTS = 50
Dispatch = Callable[[str, Sequence[object]], Awaitable[None]]


class Control(NamedTuple):
    """The backend's control stream: its key, where to read it from now (an id), and what
    to do with its entries (sync, never blocks)."""

    key: bytes
    start: Callable[[], str]
    apply: Callable[[Sequence[object]], None]


def streams(reply: object) -> list[tuple[object, object]]:
    """An ``XREAD`` reply (a RESP3 map; nil when the block expired: coredis 6 speaks RESP3
    only) as ``(key, entries)`` pairs; anything else raises ``RedisConnectionError``."""
    if reply is None:
        return []
    if not isinstance(reply, dict):
        raise RedisConnectionError(f"unexpected reply from Redis: {reply!r}")
    return list(reply.items())


@asynccontextmanager
async def node_connection(
    client: RedisCluster[Any], node: ClusterNodeLocation
) -> AsyncIterator[BaseConnection]:
    """A connection of the reader's own to *node*, outside the pool, with the pool's
    settings. A checkpoint; raises coredis' errors. Leaving closes it."""
    from coredis.connection import TCPLocation

    from ._redis_connections import running

    pool = client.connection_pool
    connection = pool.connection_class(
        location=TCPLocation(node.host, node.port), **pool.connection_kwargs
    )
    async with running(connection):
        yield connection


def report(layout: Any, node: ClusterNodeLocation | None, error: Exception) -> None:
    """Tell coredis' slot map about *error* at *node*; nothing once the client is closing
    (its error stream closed while a reader still failed: the hub is leaving)."""
    try:
        layout.report_errors(node, error)
    except anyio.ClosedResourceError:
        pass


@dataclass
class _Reader:
    """One slot's reader, as :meth:`ClusterReaders.wake` sees it."""

    slot: int
    node: ClusterNodeLocation | None = None
    client_id: int | None = None
    reading: frozenset[str] | None = None  # the topics of the XREAD in flight


class ClusterReaders:
    """The readers of one hub; *positions* is the backend's own (topic -> last delivered),
    read here, updated by *dispatch*. Sync methods never block."""

    def __init__(
        self,
        client: RedisCluster[Any],
        positions: dict[str, Any],
        key: Callable[[str], bytes],
        dispatch: Dispatch,
        control: Control,
        *,
        address: str,
        block_ms: int,
        count: int,
        timeout: float,
    ) -> None:
        self._client = client
        self._positions = positions
        self._key = key
        self._dispatch = dispatch
        self._control = control
        self._control_slot = self._slot(control.key)
        self._address = address
        self._block_ms = block_ms
        self._count = count
        self._timeout = timeout  # of one XREAD, read_block included
        self._members: dict[int, set[str]] = {}
        self._readers: dict[int, _Reader] = {}
        self._changed = anyio.Event()

    def slot_of(self, topic: str) -> int:
        return self._slot(self._key(topic))

    @staticmethod
    def _slot(key: bytes) -> int:
        from coredis.typing import Key

        return Key(key).slot

    def add(self, topic: str) -> None:
        """*topic* is watched now (its position set): its slot's reader follows it."""
        self._members.setdefault(self.slot_of(topic), set()).add(topic)

    def discard(self, topic: str) -> None:
        """*topic* is no longer watched: its reader drops it at its next read."""
        slot = self.slot_of(topic)
        members = self._members.get(slot)
        if members is not None:
            members.discard(topic)
            if not members:
                del self._members[slot]

    def _topics(self, slot: int) -> list[str]:
        return [t for t in self._members.get(slot, ()) if t in self._positions]

    def _needed(self, slot: int) -> bool:
        """Whether *slot* needs a reader: it has watched topics, or the control stream."""
        return slot == self._control_slot or bool(self._topics(slot))

    @property
    def readers(self) -> int:
        """How many readers (each with its connection, once connected) run now."""
        return len(self._readers)

    async def run(self) -> None:
        """Start a reader for each slot with watched topics and none; until cancelled."""
        async with anyio.create_task_group() as group:
            while True:
                for slot in {*self._members, self._control_slot} - set(self._readers):
                    self._readers[slot] = reader = _Reader(slot)
                    group.start_soon(self._follow, reader, name=f"trio_sse Redis slot {slot}")
                self._changed = anyio.Event()
                await self._changed.wait()

    async def wake(self, topic: str) -> None:
        """Make *topic*'s reader read it (a checkpoint): ``CLIENT UNBLOCK`` its ``XREAD``
        when that does not name the topic; retried briefly while the ``XREAD`` has not
        reached Redis; errors are ignored (``read_block`` bounds the wait then)."""
        slot = self.slot_of(topic)
        for _ in range(_WAKE_ATTEMPTS):
            reader = self._readers.get(slot)
            if reader is None:
                self._changed.set()
                return
            reading, node, client_id = reader.reading, reader.node, reader.client_id
            if reading is None or topic in reading or node is None or client_id is None:
                return
            try:
                if await self.unblock(node, client_id) == 1:
                    return
            except RedisError:
                return
            await anyio.sleep(0.002)

    async def unblock(self, node: ClusterNodeLocation | None, client_id: int) -> object:
        """``CLIENT UNBLOCK`` on *node* (``None``: any primary) through the pool; its reply.
        A checkpoint; raises trio_sse's errors."""
        pool = self._client.connection_pool
        try:
            if node is None:
                node = pool.cluster_layout.random_node(primary=True)
            async with pool.acquire(node=node) as connection:
                return await connection.create_request(b"CLIENT UNBLOCK", client_id, decode=False)
        except Exception as exc:
            error = translate(exc, self._address, "CLIENT UNBLOCK")
            raise error from (exc if error is not exc else exc.__cause__)

    async def _follow(self, reader: _Reader) -> None:
        """Read *reader*'s slot until no topic of it is watched; reconnect after errors."""
        delay = 0.05
        try:
            while self._needed(reader.slot):
                error, connected = await self._read_once(reader)
                if error is None:
                    continue
                if connected:
                    delay = 0.05
                # A slot read for revocations only has no subscriber waiting: info.
                logger.log(
                    logging.WARNING if self._topics(reader.slot) else logging.INFO,
                    "trio_sse: Redis stream reader of slot %d: %s; retrying in %.2f s",
                    reader.slot,
                    error,
                    delay,
                    exc_info=not isinstance(error, RedisError),  # a bug: its traceback
                )
                await anyio.sleep(delay)
                delay = min(delay * 2, 2.0)
        finally:
            del self._readers[reader.slot]

    async def _read_once(self, reader: _Reader) -> tuple[Exception | None, bool]:
        """Connect to the slot's primary and read until that fails (the error, whether it
        connected; ``None`` after ``MOVED``, the layout knowing the new owner already, or
        ``ASK``, the slot still migrating: read again shortly) or no topic is left
        (``None``)."""
        from coredis.exceptions import AskError

        layout = self._client.connection_pool.cluster_layout
        connected = False
        node: ClusterNodeLocation | None = None
        try:
            node = layout.node_for_slot(reader.slot)
            async with node_connection(self._client, node) as connection:
                connected = True
                reader.node, reader.client_id = node, connection.client_id
                await self._read(reader, connection)
                return None, True
        except Exception as exc:
            cause = _unwrapped(exc)
            report(layout, node, cause)  # MOVED: the new owner; else toward a refresh
            if isinstance(cause, AskError):  # MOVED, or ASK while the slot migrates
                logger.info("trio_sse: Redis slot %d is moving: %s", reader.slot, cause)
                await anyio.sleep(0.05)  # no busy loop while a migration lasts
                return None, True
            where = self._address if node is None else f"{self._address} (node {node.name})"
            return translate(cause, where, "XREAD"), connected
        finally:
            reader.node = reader.client_id = reader.reading = None

    async def _read(self, reader: _Reader, connection: BaseConnection) -> None:
        """Blocking ``XREAD`` over the slot's watched topics (and the control stream in its
        slot), until none is left."""
        control = self._control
        while self._needed(reader.slot):
            topics = self._topics(reader.slot)
            keys = [self._key(topic) for topic in topics]
            by_key: dict[object, str] = dict(zip(keys, topics, strict=True))
            starts = [self._positions[topic][0].encode() for topic in topics]
            if reader.slot == self._control_slot:
                keys.insert(0, control.key)
                starts.insert(0, control.start().encode())
            arguments: list[bytes | int] = [b"COUNT", self._count, b"BLOCK", self._block_ms]
            arguments += [b"STREAMS", *keys, *starts]
            reader.reading = frozenset(topics)
            try:
                reply = await connection.create_request(
                    b"XREAD",
                    *arguments,
                    decode=False,
                    timeout=self._timeout,
                    disconnect_on_cancellation=True,
                )
            finally:
                reader.reading = None
            for key, found in streams(reply):
                if key == control.key:
                    control.apply(entries(found))
                else:
                    await self._dispatch(by_key[key], entries(found))  # only keys it asked
