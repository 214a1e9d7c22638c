"""Redis Cluster: the ``redis+cluster://`` URL, the coredis client it builds, the key names.

``redis+cluster://[[user]:password@]host[:port][,host[:port]...][/]``: a few nodes of the
cluster to discover it from (port 6379 by default); the credentials are the nodes'. No
database (a cluster has only 0) and no query options. ``rediss+cluster://`` is the same over
TLS, to every node (the discovery's connections, the pool's and the readers': all are made
with the pool's ``connection_kwargs``, which hold the context), with the TLS options of
``rediss://`` in its query (``_redis_tls``).

Key names (:func:`cluster_key`): ``<prefix>{<n>}<topic>``, where ``n`` is the CRC-32 of the
topic modulo :data:`TAGS` (16). The hash tag ``{n}`` puts each topic in one of 16 slots
(spread over the primaries), the same in every process: a blocking ``XREAD`` may only name
keys of one slot, so the hub runs one reader per tag in use, at most 16, whatever the number
of topics (see ``_redis_cluster_reader``). The keys still start with the prefix, so an ACL
key pattern ``~<prefix>*`` covers them. A prefix that has a hash tag of its own
(``"{app}:"``) puts every topic in that one slot (one node, one reader).

coredis is imported when a client is built, not when this module is imported. Nothing here
is a checkpoint.
"""

from __future__ import annotations

import ssl
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._redis_hosts import hosts_text, invalid_url, parse_netloc
from ._redis_tls import TLS_OPTIONS, context_for, read_options

if TYPE_CHECKING:
    from coredis import RedisCluster
    from coredis.typing import Key

__all__ = [
    "SCHEME",
    "SCHEMES",
    "TAGS",
    "TLS_SCHEME",
    "ClusterURL",
    "build_cluster_client",
    "check_client",
    "check_prefix",
    "cluster_key",
    "describe_cluster",
    "keyed",
    "parse_cluster_url",
]

SCHEME = "redis+cluster"
TLS_SCHEME = "rediss+cluster"
SCHEMES = (SCHEME, TLS_SCHEME)
TAGS = 16
_PORT = 6379


def cluster_key(prefix: str, topic: str) -> str:
    """The stream key of *topic* in a cluster: ``<prefix>{<n>}<topic>``, ``n`` < :data:`TAGS`."""
    tag = zlib.crc32(topic.encode("utf-8", "surrogatepass")) % TAGS
    return f"{prefix}{{{tag}}}{topic}"


def check_prefix(prefix: str) -> str:
    """*prefix*, unless it would make every key its own hash tag (``ValueError``): a first
    ``{`` followed at once by ``}`` is no tag, and Redis then hashes each whole key, which
    would take one reader per topic."""
    start = prefix.find("{")
    if start >= 0 and prefix[start + 1 : start + 2] == "}":
        raise ValueError(
            f"on a Redis Cluster the prefix must not contain '{{}}' before any other '{{', got "
            f"{prefix!r}: each topic would hash to a slot of its own"
        )
    return prefix


def check_client(client: RedisCluster[Any]) -> RedisCluster[Any]:
    """An app's cluster client, unless it reads from replicas (``ValueError``): a replica
    lagging behind would make a retried publish look unstored (stored twice) and a new
    topic start from an old end."""
    if client.connection_pool.read_from_replicas:
        raise ValueError("RedisBackend needs a RedisCluster that reads from primaries only")
    return client


def keyed(key: bytes) -> Key:
    """*key* marked as the key of a command, as coredis' cluster client needs it to route the
    command to the slot's node (the plain client sends it as it is)."""
    from coredis.typing import Key

    return Key(key)


@dataclass(frozen=True)
class ClusterURL:
    """A parsed ``redis+cluster://`` URL (``tls``: the options of a ``rediss+cluster://``
    one, ``None`` for plain TCP). ``str()`` shows it without the password and the query."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: dict[str, str] | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return _address(self.nodes, self.username, tls=self.tls is not None)

    def ssl_context(self) -> ssl.SSLContext | None:
        """The context of a ``rediss+cluster://`` URL's options (see ``_redis_tls``), else
        ``None``."""
        return None if self.tls is None else context_for(self.tls)


def _address(nodes: Any, username: str | None, *, tls: bool) -> str:
    user = f"{username}@" if username else ""
    hosts = hosts_text(nodes)
    return f"{TLS_SCHEME if tls else SCHEME}://{user}{hosts}"


def parse_cluster_url(url: str) -> ClusterURL:
    """Read a ``redis+cluster://`` or ``rediss+cluster://`` URL (see the module docstring).
    ``ValueError`` when malformed; the message never shows the password."""
    scheme, _, rest = url.partition("://")
    tls = scheme == TLS_SCHEME
    rest, _, query = rest.partition("?")  # before any "/": a file's path may follow
    netloc, _, tail = rest.partition("/")
    if tail.strip("/") or (query and not tls):
        why = "no database" if tls else "no database and no query options"
        raise invalid_url(url, f"{scheme}:// takes {why}")
    username, password, nodes = parse_netloc(url, netloc, default_port=_PORT, what="node")
    options = read_options(query, TLS_OPTIONS, lambda why: invalid_url(url, why)) if tls else None
    return ClusterURL(nodes, username, password, options)


def build_cluster_client(
    url: ClusterURL,
    *,
    max_connections: int,
    connect_timeout: float | None,
    command_timeout: float | None,
    retry_policy: Any,
    ssl_context: ssl.SSLContext | None = None,
) -> RedisCluster[Any]:
    """The cluster's client: a pool of at most *max_connections* per node, whose
    connections close their buffers however they end; ``CLUSTERDOWN`` (a failover in
    progress) is retried too. Over TLS with *ssl_context* (else the URL's, for a
    ``rediss+cluster://`` one)."""
    from coredis import RedisCluster
    from coredis.connection import TCPLocation
    from coredis.exceptions import ClusterDownError
    from coredis.retry import CompositeRetryPolicy, ConstantRetryPolicy

    from ._redis_connections import ClosingClusterConnection, ClosingClusterPool

    pool = ClosingClusterPool(
        [TCPLocation(host, port) for host, port in url.nodes],
        connection_class=ClosingClusterConnection,
        max_connections=max_connections,
        max_connections_per_node=True,  # else coredis warns below one per node
        username=url.username,
        password=url.password,
        connect_timeout=connect_timeout,
        stream_timeout=command_timeout,
        ssl_context=ssl_context if ssl_context is not None else url.ssl_context(),
    )
    down = ConstantRetryPolicy((ClusterDownError,), retries=2, delay=0.1)
    return RedisCluster(connection_pool=pool, retry_policy=CompositeRetryPolicy(down, retry_policy))


def describe_cluster(client: RedisCluster[Any]) -> str:
    """The address of an app's cluster client (its startup nodes), without password."""
    pool = client.connection_pool
    nodes = [(location.host, location.port) for location in pool.startup_nodes]
    options = pool.connection_kwargs
    return _address(nodes, options.get("username"), tls=options.get("ssl_context") is not None)
