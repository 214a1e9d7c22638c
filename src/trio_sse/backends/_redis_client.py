"""Where the Redis backend connects: a URL it turns into a coredis client, or the app's client.

* :func:`parse_redis_url` reads ``redis://``, ``rediss://`` (TLS) and ``unix://`` URLs into a
  :class:`RedisURL`, whose ``str()`` is the address shown in errors and reprs: the URL
  without its password (and without its query).
* :class:`RedisTarget` is what the backend holds: how to get its coredis client (built from
  the URL when the hub starts, so that a backend made at import time binds to no event loop;
  or the app's own), the address to name, and how to open the reader's own connection.

The table :data:`_SCHEMES` is the one place that knows URL schemes; ``redis+sentinel://``
URLs are read and built by ``_redis_sentinel``, ``redis+cluster://`` and ``rediss+cluster://``
(TLS) ones by ``_redis_cluster`` (a target that is a cluster says so: ``cluster``). The TLS
options of ``rediss://`` and ``rediss+cluster://`` are read by ``_redis_tls``.
A Sentinel-managed client (one URL's, or an app's ``Sentinel.primary_for(...)``) is held
with its sentinels' pools, and the reader's connection asks the sentinels for the primary.

coredis is imported when a client is built or checked, not when this module is imported.
Beyond coredis' documented client API the backend relies on a basic pool's
``connection_class``/``location``/``connection_kwargs`` attributes and on
``BaseConnection.run``/``create_request``/``client_id``/``invalidate``, the pools' private
``_construct_connection`` and the private memory streams that ``_redis_connections`` closes,
for the reader's own connection: hence the upper bound on coredis in ``pyproject.toml``.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from .._extras import require
from .._validate import shown
from ._redis_cluster import SCHEMES as CLUSTER_SCHEMES
from ._redis_cluster import TLS_SCHEME as CLUSTER_TLS_SCHEME
from ._redis_cluster import (
    build_cluster_client,
    check_client,
    describe_cluster,
    parse_cluster_url,
)
from ._redis_sentinel import SCHEME as SENTINEL_SCHEME
from ._redis_sentinel import build_sentinel_client, parse_sentinel_url
from ._redis_tls import TLS_OPTIONS, context_for, read_options

if TYPE_CHECKING:
    from coredis import Redis, RedisCluster
    from coredis.connection import BaseConnection

__all__ = [
    "RedisTarget",
    "RedisURL",
    "held",
    "import_coredis",
    "parse_redis_url",
    "reader_connection",
]

_SCHEMES = ("redis", "rediss", "unix")  # and redis+sentinel://, read by _redis_sentinel


def import_coredis() -> None:
    """Import coredis, or raise ``MissingExtraError`` (an ``ImportError``) naming the extra."""
    require("coredis", part="trio_sse.backends.RedisBackend", extras=("redis",))


@dataclass(frozen=True)
class RedisURL:
    """A parsed Redis URL. ``str()`` shows it without password or query (safe to log)."""

    scheme: str
    host: str = "127.0.0.1"
    port: int = 6379
    path: str | None = None  # unix:// only
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: dict[str, str] = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        if self.path is not None:
            return f"unix://{user}{self.path}?db={self.db}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}/{self.db}"

    def ssl_context(self) -> ssl.SSLContext:
        """A context that verifies the server (and its host name) unless the URL says not to."""
        return context_for(self.tls)


def _invalid(url: str, why: str) -> ValueError:
    # The URL is shown without what follows the scheme's "//" up to "@": no password.
    scheme, sep, rest = url.partition("://")
    safe = f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url.rpartition("@")[2]
    return ValueError(f"invalid Redis URL {safe!r}: {why}")


def _query(url: str, query: str, allowed: tuple[str, ...]) -> dict[str, str]:
    return read_options(query, allowed, lambda why: _invalid(url, why))


def _db(url: str, text: str) -> int:
    if text and not (text.isascii() and text.isdigit()):
        raise _invalid(url, f"the database must be a number, got {text!r}")
    return int(text) if text else 0


def parse_redis_url(url: str) -> RedisURL:
    """``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` the same over TLS (with
    ``?ssl_ca_certs=...&ssl_certfile=...&ssl_keyfile=...``), or
    ``unix://[[user]:password@]/path/to/redis.sock[?db=n]``. ``ValueError`` when malformed.
    """
    if not isinstance(url, str):
        raise TypeError(f"the Redis URL must be a str, got {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise _invalid(
            url,
            "expected redis://, rediss:// (TLS), unix://, redis+sentinel://, redis+cluster:// "
            "or rediss+cluster:// (TLS)",
        )
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if parts.scheme == "unix":
        options = _query(url, parts.query, ("db",))
        if not parts.path:
            raise _invalid(url, "unix:// needs the socket's path")
        return RedisURL(
            "unix", path=unquote(parts.path), db=_db(url, options.get("db", "")),
            username=username, password=password,
        )  # fmt: skip
    allowed = TLS_OPTIONS if parts.scheme == "rediss" else ()
    try:
        port = parts.port if parts.port is not None else 6379
    except ValueError:
        raise _invalid(url, "bad port") from None
    return RedisURL(
        parts.scheme,
        host=parts.hostname or "127.0.0.1",
        port=port,
        db=_db(url, parts.path.strip("/")),
        username=username,
        password=password,
        tls=_query(url, parts.query, allowed),
    )


def _describe(client: Redis[Any]) -> str:
    """The address of an app's client, as a URL without password (for errors and logs)."""
    from coredis.connection import TCPLocation, UnixDomainSocketLocation
    from coredis.pool import SentinelConnectionPool

    from . import _redis_sentinel

    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        return _redis_sentinel.describe(pool)
    location = pool.location
    options = pool.connection_kwargs
    user = f"{options['username']}@" if options.get("username") else ""
    db = options.get("db") or 0
    if isinstance(location, UnixDomainSocketLocation):
        return f"unix://{user}{location.path}?db={db}"
    if isinstance(location, TCPLocation):
        scheme = "rediss" if options.get("ssl_context") is not None else "redis"
        host = f"[{location.host}]" if ":" in location.host else location.host
        return f"{scheme}://{user}{host}:{location.port}/{db}"
    return repr(client)


@dataclass(frozen=True)
class _Options:
    max_connections: int
    connect_timeout: float | None
    command_timeout: float | None
    ssl_context: ssl.SSLContext | None


def _retry_policy() -> Any:
    """A command that fails with the connection is sent again on a new one (a pooled
    connection that died while idle, Redis restarting). Safe for every command the backend
    sends: reads, CLIENT UNBLOCK, and XADD, which carries its own stream id and a nonce (see
    redis.py: a second XADD of one event is refused, then recognised)."""
    from coredis.exceptions import ConnectionError as CoredisConnectionError
    from coredis.retry import ConstantRetryPolicy

    return ConstantRetryPolicy((CoredisConnectionError, TimeoutError), retries=2, delay=0.05)


def _build(url: RedisURL, options: _Options) -> Redis[Any]:
    from coredis import ConnectionPool, Redis
    from coredis.connection import Location, TCPLocation, UnixDomainSocketLocation

    from ._redis_connections import ClosingTCPConnection, ClosingUnixConnection

    context = options.ssl_context
    if context is None and url.scheme == "rediss":
        context = url.ssl_context()
    location: Location
    connection_class: type[Any]
    if url.path is not None:
        location, connection_class = UnixDomainSocketLocation(url.path), ClosingUnixConnection
    else:
        location, connection_class = TCPLocation(url.host, url.port), ClosingTCPConnection
    pool: ConnectionPool[Any] = ConnectionPool(
        connection_class=connection_class,
        location=location,
        db=url.db,
        username=url.username,
        password=url.password,
        ssl_context=context,
        connect_timeout=options.connect_timeout,
        stream_timeout=options.command_timeout,
        max_connections=options.max_connections,
    )
    return Redis(connection_pool=pool, retry_policy=_retry_policy())


@dataclass(frozen=True)
class RedisTarget:
    """A URL to build a client from, or an app's client; see the module docstring."""

    address: str
    _make: Callable[[], Redis[Any] | RedisCluster[Any]] = field(repr=False)
    owned: bool = True  # built here (from a URL), or the app's
    cluster: bool = False  # a Redis Cluster (keys with hash tags, one reader per slot)

    @classmethod
    def of(
        cls,
        url_or_client: object,
        *,
        max_connections: int,
        connect_timeout: float | None,
        command_timeout: float | None,
        ssl_context: ssl.SSLContext | None,
    ) -> RedisTarget:
        """Check *url_or_client* now (``TypeError``/``ValueError``); build nothing yet."""
        import_coredis()
        from coredis import Redis, RedisCluster

        if isinstance(url_or_client, (Redis, RedisCluster)):
            return _app_target(url_or_client, ssl_context)
        if not isinstance(url_or_client, str):
            raise TypeError(
                "url must be a redis://, rediss:// or unix:// URL (or redis+sentinel://, "
                "redis+cluster://, rediss+cluster://) or a coredis.Redis (or RedisCluster) "
                "client, got "
                f"{shown(url_or_client)}"
            )
        options = _Options(max_connections, connect_timeout, command_timeout, ssl_context)
        managed = _managed_target(url_or_client, options)
        if managed is not None:
            return managed
        url = parse_redis_url(url_or_client)
        if ssl_context is not None and url.scheme != "rediss":
            raise ValueError(f"ssl_context needs a rediss:// URL, got {str(url)!r}")
        return cls(str(url), lambda: _build(url, options))

    def client(self) -> Redis[Any] | RedisCluster[Any]:
        """The coredis client: a new one for a URL (once per hub), else the app's."""
        return self._make()


def _app_target(client: Redis[Any] | RedisCluster[Any], context: object) -> RedisTarget:
    """The target of an app's own client (a cluster's checked: primaries only)."""
    from coredis import RedisCluster

    if context is not None:
        raise ValueError("ssl_context is for a URL; the client given has its own")
    if isinstance(client, RedisCluster):
        cluster = check_client(client)
        return RedisTarget(describe_cluster(cluster), lambda: cluster, owned=False, cluster=True)
    return RedisTarget(_describe(client), lambda: client, owned=False)


def _managed_target(url: str, options: _Options) -> RedisTarget | None:
    """The target of a ``redis+cluster://``, ``rediss+cluster://`` (where *options* may
    carry an ``ssl_context``) or ``redis+sentinel://`` URL, else ``None``."""
    scheme = url.partition("://")[0]
    if scheme not in (*CLUSTER_SCHEMES, SENTINEL_SCHEME):
        return None
    if options.ssl_context is not None and scheme != CLUSTER_TLS_SCHEME:
        raise ValueError(
            f"ssl_context needs a rediss:// or rediss+cluster:// URL, got a {scheme}:// one"
        )
    limits = (options.max_connections, options.connect_timeout, options.command_timeout)
    most, connect, command = limits
    if scheme in CLUSTER_SCHEMES:
        nodes = parse_cluster_url(url)
        return RedisTarget(
            str(nodes),
            lambda: build_cluster_client(
                nodes, max_connections=most, connect_timeout=connect,
                command_timeout=command, retry_policy=_retry_policy(),
                ssl_context=options.ssl_context,
            ),
            cluster=True,
        )  # fmt: skip
    sentinel = parse_sentinel_url(url)
    return RedisTarget(
        str(sentinel),
        lambda: build_sentinel_client(
            sentinel, max_connections=most, connect_timeout=connect,
            command_timeout=command, retry_policy=_retry_policy(),
        ),
    )  # fmt: skip


@asynccontextmanager
async def held(
    client: Redis[Any] | RedisCluster[Any], *, owned: bool = False
) -> AsyncIterator[None]:
    """Keep *client*'s pool entered (coredis 6 pools own a task group), and for a
    Sentinel-managed client its sentinels' pools too. Pools, not clients: entering a pool is
    reference-counted, so an app's client (or Sentinel) may be entered by the app as well. A
    checkpoint on entry and exit. A cluster pool built from a URL (*owned*, a
    ``ClosingClusterPool``) has its layout's streams closed once left."""
    from coredis.pool import SentinelConnectionPool

    from ._redis_connections import ClosingClusterPool

    pool = client.connection_pool
    async with AsyncExitStack() as stack:
        if owned and isinstance(pool, ClosingClusterPool):
            stack.callback(pool.close_streams)
        if isinstance(pool, SentinelConnectionPool):
            for node in pool.sentinel_manager.sentinels:
                await stack.enter_async_context(node.connection_pool)
        await stack.enter_async_context(pool)
        yield


@asynccontextmanager
async def reader_connection(client: Redis[Any]) -> AsyncIterator[BaseConnection]:
    """A connection of the reader's own, with the pool's settings (address, TLS, credentials,
    database), outside the pool: its blocking ``XREAD`` never holds a pooled one, and its
    ``client_id`` is known for ``CLIENT UNBLOCK``. Built as the pool builds its own (for a
    Sentinel-managed pool: at the primary the sentinels name now, its role checked). A
    checkpoint; raises coredis' errors (the caller translates). Leaving closes it.
    """
    from ._redis_connections import running

    pool = client.connection_pool
    connection = await pool._construct_connection()
    async with running(connection):
        yield connection
