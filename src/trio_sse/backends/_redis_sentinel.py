"""Redis behind Sentinel: the ``redis+sentinel://`` URL, and the coredis client it builds.

``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service_name[/db]``: the
sentinels to ask (port 26379 by default), the name of the monitored service, and the
database. The credentials are those of the Redis nodes (primary and replicas); the sentinels
are asked without credentials. No query options.

The client is a ``coredis.Sentinel``'s ``primary_for(service_name)``: each new connection asks
the sentinels where the primary is and checks its ``ROLE``, so after a failover new
connections reach the promoted replica (and the pool drops those to the old primary).

coredis is imported when a client is built, not when this module is imported. Nothing here
is a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ._redis_hosts import hosts_text, invalid_url, parse_netloc

if TYPE_CHECKING:
    from coredis import Redis

__all__ = ["SCHEME", "SentinelURL", "build_sentinel_client", "describe", "parse_sentinel_url"]

SCHEME = "redis+sentinel"
_PORT = 26379


@dataclass(frozen=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL. ``str()`` shows it without the password."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return _address(self.sentinels, self.service, self.db, self.username)


def _address(sentinels: Any, service: str, db: int, username: str | None) -> str:
    user = f"{username}@" if username else ""
    hosts = hosts_text(sentinels)
    return f"{SCHEME}://{user}{hosts}/{service}/{db}"


def parse_sentinel_url(url: str) -> SentinelURL:
    """Read a ``redis+sentinel://`` URL (see the module docstring). ``ValueError`` when
    malformed; the message never shows the password."""
    rest = url.removeprefix(f"{SCHEME}://")
    if "?" in rest or "#" in rest:
        raise invalid_url(url, "redis+sentinel:// takes no query options")
    netloc, slash, path = rest.partition("/")
    username, password, sentinels = parse_netloc(url, netloc, default_port=_PORT, what="sentinel")
    parts = path.strip("/").split("/") if slash else []
    if not parts or not parts[0] or len(parts) > 2:
        raise invalid_url(url, "expected /service_name or /service_name/db after the sentinels")
    db_text = parts[1] if len(parts) == 2 else "0"
    if not (db_text.isascii() and db_text.isdigit()):
        raise invalid_url(url, f"the database must be a number, got {db_text!r}")
    return SentinelURL(sentinels, unquote(parts[0]), int(db_text), username, password)


def build_sentinel_client(
    url: SentinelURL,
    *,
    max_connections: int,
    connect_timeout: float | None,
    command_timeout: float | None,
    retry_policy: Any,
) -> Redis[Any]:
    """The primary's client; its pool's connections close their buffers however they end."""
    from coredis import Sentinel
    from coredis.connection import TCPLocation

    from ._redis_connections import ClosingSentinelPool

    sentinel: Sentinel[bytes] = Sentinel(
        [TCPLocation(host, port) for host, port in url.sentinels],
        sentinel_kwargs={"connect_timeout": connect_timeout, "stream_timeout": command_timeout},
        retry_policy=retry_policy,
    )
    return sentinel.primary_for(
        url.service,
        connection_pool_class=ClosingSentinelPool,
        db=url.db,
        username=url.username,
        password=url.password,
        connect_timeout=connect_timeout,
        stream_timeout=command_timeout,
        max_connections=max_connections,
    )


def describe(pool: Any) -> str:
    """The address of a Sentinel-managed pool (``SentinelConnectionPool``), without password."""
    sentinels = [
        (location.host, location.port)
        for node in pool.sentinel_manager.sentinels
        if (location := node.connection_pool.location) is not None
    ]
    options = pool.connection_kwargs
    return _address(sentinels, pool.service_name, options.get("db") or 0, options.get("username"))
