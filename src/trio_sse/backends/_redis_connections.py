"""coredis connections that close everything they opened, however they end.

coredis 6's ``BaseConnection.__init__`` makes six anyio memory streams, and ``run`` closes
them only once the transport connected: a connection refused, failing its TLS handshake, or
cancelled while connecting leaves them to the garbage collector, which warns
(``ResourceWarning``, an error under ``-W error``). While Redis is down that is one warning
per attempt. These subclasses close them when ``run`` ends. Imported only where coredis is
(the ``redis`` extra): the clients built from a URL use them (a Sentinel URL through
:class:`ClosingSentinelPool`, which overrides coredis' private ``_construct_connection``); an app's own client keeps its
classes (the reader's connection is closed the same way by ``_redis_client``). A cluster's
discovery (``CLUSTER SLOTS`` through a client per startup node, whose connection class coredis
fixes) gets the closing class too: :class:`ClosingClusterPool`; a node that refuses the
handshake (TLS: a wrong CA, no client certificate) is then no warning either.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
from anyio import TASK_STATUS_IGNORED
from anyio.abc import TaskStatus
from coredis.cluster._discovery import DiscoveryService
from coredis.cluster._node import ClusterNodeLocation
from coredis.connection import (
    BaseConnection,
    ClusterConnection,
    TCPConnection,
    UnixDomainSocketConnection,
)
from coredis.connection._sentinel import SentinelManagedConnection
from coredis.pool import ClusterConnectionPool, SentinelConnectionPool

if TYPE_CHECKING:
    from collections import defaultdict

    from coredis import Redis
    from coredis.pool import ConnectionPoolParams
    from coredis.typing import Unpack

__all__ = [
    "ClosingClusterConnection",
    "ClosingClusterPool",
    "ClosingSentinelConnection",
    "ClosingSentinelPool",
    "ClosingTCPConnection",
    "ClosingUnixConnection",
    "close_buffers",
    "running",
]

_BUFFERS = (
    "_write_buffer_in",
    "_write_buffer_out",
    "_push_message_buffer_in",
    "_push_message_buffer_out",
    "_streamed_message_buffer_in",
    "_streamed_message_buffer_out",
)


@asynccontextmanager
async def running(connection: BaseConnection) -> AsyncIterator[BaseConnection]:
    """Run *connection* (a new one, outside any pool) in a task group of its own until the
    block ends, then close it and its memory streams (an app's connection class may leave
    them open). A checkpoint; raises coredis' errors (callers translate)."""
    try:
        async with anyio.create_task_group() as group:
            await group.start(connection.run)
            try:
                yield connection
            finally:
                connection.invalidate()
    finally:
        close_buffers(connection)


def close_buffers(connection: BaseConnection) -> None:
    """Close the connection's memory streams (private attributes of coredis 6). Idempotent."""
    for name in _BUFFERS:
        stream = getattr(connection, name, None)
        if stream is not None:
            stream.close()


class ClosingTCPConnection(TCPConnection):
    """A ``TCPConnection`` (plain or TLS) whose ``run`` always closes its memory streams."""

    async def run(self, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED) -> None:
        try:
            await super().run(task_status=task_status)
        finally:
            close_buffers(self)


class ClosingUnixConnection(UnixDomainSocketConnection):
    """A ``UnixDomainSocketConnection`` whose ``run`` always closes its memory streams."""

    async def run(self, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED) -> None:
        try:
            await super().run(task_status=task_status)
        finally:
            close_buffers(self)


class ClosingClusterConnection(ClusterConnection):
    """A cluster node's connection whose ``run`` always closes its memory streams."""

    async def run(self, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED) -> None:
        try:
            await super().run(task_status=task_status)
        finally:
            close_buffers(self)


class _ClosingNode(ClusterNodeLocation):
    """A startup node whose discovery client's connections close their memory streams."""

    def as_client(
        self, **client_args: Unpack[ConnectionPoolParams[ClusterConnection]]
    ) -> Redis[Any]:
        client = super().as_client(**client_args)
        client.connection_pool.connection_class = ClosingClusterConnection
        return client


def _closing(node: ClusterNodeLocation) -> ClusterNodeLocation:
    if isinstance(node, _ClosingNode):
        return node
    fields = dataclasses.fields(node)
    return _ClosingNode(**{f.name: getattr(node, f.name) for f in fields if f.init})


class _ClosingDiscovery(DiscoveryService):
    """Asks its nodes (coredis' private lists of them, replaced by each discovery) through
    :class:`_ClosingNode` clients. A checkpoint."""

    async def get_cluster_layout(
        self,
    ) -> tuple[list[ClusterNodeLocation], defaultdict[int, list[ClusterNodeLocation]]]:
        for nodes in (self._startup_nodes, self._initial_startup_nodes):
            nodes[:] = [_closing(node) for node in nodes]
        return await super().get_cluster_layout()


class ClosingClusterPool(ClusterConnectionPool):
    """A ``ClusterConnectionPool`` of the ``redis+cluster://`` URLs' clients, with three fixes.

    * ``close_streams`` closes the memory streams of its cluster layout (``_error_stream``,
      private to coredis 6, made with the pool and closed by nothing):
      :func:`~._redis_client.held` calls it once the pool is left (one per hub, never
      entered again).
    * ``release`` gives back the node pool's slot of a connection that died while leased,
      as :class:`ClosingSentinelPool` does: coredis 6.9 gives it back only for one that dies
      idle in the pool, so each connection lost during a ``WAIT`` (``wait_replicas``) shrank
      the node's pool until ``publish`` waited for a slot forever.
    * its discovery's connections close their memory streams too (:class:`_ClosingDiscovery`:
      the class of coredis' own ``DiscoveryService``, made by the pool, is swapped for it).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cluster_layout._discovery_service.__class__ = _ClosingDiscovery

    def release(self, connection: ClusterConnection) -> None:
        super().release(connection)
        slots = self._node_pool(connection.location)
        if not connection.usable and not slots.full():
            slots.append_nowait(None)

    def close_streams(self) -> None:
        for stream in getattr(self.cluster_layout, "_error_stream", ()):
            stream.close()


class ClosingSentinelConnection(SentinelManagedConnection):
    """A Sentinel-managed connection whose ``run`` always closes its memory streams."""

    async def run(self, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED) -> None:
        try:
            await super().run(task_status=task_status)
        finally:
            close_buffers(self)


class ClosingSentinelPool(SentinelConnectionPool):
    """A ``SentinelConnectionPool`` of :class:`ClosingSentinelConnection`. Each new connection
    asks the sentinels where the primary is (a checkpoint).

    ``release`` gives back the pool's slot of a connection that died while leased: coredis
    6.9 gives it back only for a connection that dies while idle in the pool, so each
    connection lost during a blocking command (``XADD`` with ``WAIT``: ``wait_replicas``)
    shrank the pool, until, after a failover, ``publish`` waited for a slot forever.
    """

    def release(self, connection: SentinelManagedConnection) -> None:
        super().release(connection)
        if not connection.usable and not self._available_connections.full():
            self._available_connections.append_nowait(None)

    async def _construct_connection(self) -> ClosingSentinelConnection:
        location = await self.get_primary_location()
        return ClosingSentinelConnection(
            location, self.service_name, self.is_primary, **self.connection_kwargs
        )
