"""A small Redis client speaking RESP2 over ``anyio``: enough Redis for the stream backend.

Why our own: the broadcaster must run the same code under trio and asyncio, and the common
Redis clients are asyncio-only.  The broadcaster needs a handful of commands (``XADD``,
``XRANGE``, ``XREVRANGE``, blocking ``XREAD``, ``CLIENT ID``/``UNBLOCK``, ``PING``), one
command at a time per connection, so a client without pipelining, pub/sub or RESP3 is enough.

* :class:`RedisConnection` is one TCP connection. A command that fails half-way (cancelled,
  timed out, connection lost) leaves the reply stream at an unknown place, so the connection
  is closed and never reused: the next command gets a fresh one from the :class:`RedisPool`.
* Error replies (``-ERR ...``) raise :class:`RedisReplyError`; the connection stays usable.
* Anything that means "Redis cannot be reached or spoke nonsense" raises
  :class:`RedisConnectionError` (also a built-in :class:`ConnectionError`), naming the address.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Union
from urllib.parse import unquote, urlsplit

import anyio
import anyio.abc

__all__ = [
    "RedisAddress",
    "RedisConnection",
    "RedisConnectionError",
    "RedisError",
    "RedisPool",
    "RedisReplyError",
    "RespValue",
    "parse_redis_url",
]

# Simple strings decode to ``str``, bulk strings stay ``bytes``, nil is ``None``; an error
# nested in an array (only MULTI/EXEC produce those; we do not use them) is kept as a value.
RespValue = Union[None, int, str, bytes, "RedisReplyError", list["RespValue"]]
Arg = str | bytes | int

# Refuse absurd sizes from a confused peer rather than allocate them (Redis' own limit on a
# bulk string is 512 MB; a status line is short).
_MAX_LINE = 64 * 1024
_MAX_BULK = 512 * 1024 * 1024
_RECEIVE_SIZE = 65536


class RedisError(Exception):
    """Base class of the errors of the built-in Redis client."""


class RedisConnectionError(RedisError, ConnectionError):
    """Redis could not be reached, the connection was lost, or Redis did not answer in time."""


class RedisReplyError(RedisError):
    """Redis answered a command with an error reply (``-ERR ...``, ``-WRONGTYPE ...``)."""


# Error replies that mean "not now", not "wrong command".
_UNAVAILABLE = ("LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN")


class _NoReply(RedisConnectionError):
    """The connection failed before a single byte of the reply arrived."""


@dataclass(frozen=True)
class RedisAddress:
    """Where and how to connect: parsed from a ``redis://`` URL by :func:`parse_redis_url`."""

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"redis://{host}:{self.port}/{self.db}"


def parse_redis_url(url: str) -> RedisAddress:
    """Parse ``redis://[[user]:password@]host[:port][/db]`` (``ValueError`` when malformed).

    Only plain TCP is supported: ``rediss://`` (TLS) and ``unix://`` are refused by name.
    """
    if not isinstance(url, str):
        raise TypeError(f"the Redis URL must be a str, got {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError(
            f"unsupported Redis URL {url!r}: expected redis://host:port/db "
            "(the built-in client speaks plain TCP; rediss:// and unix:// are not supported)"
        )
    try:
        port = parts.port if parts.port is not None else 6379
    except ValueError:
        raise ValueError(f"invalid port in Redis URL {url!r}") from None
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"invalid database number in Redis URL {url!r}: {path!r}")
    return RedisAddress(
        host=parts.hostname or "127.0.0.1",
        port=port,
        db=int(path) if path else 0,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def _encode_command(args: tuple[Arg, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            # surrogatepass: any Python str round-trips through Redis unchanged.
            data = arg.encode("utf-8", "surrogatepass")
        elif isinstance(arg, int) and not isinstance(arg, bool):
            data = b"%d" % arg
        else:
            raise TypeError(f"Redis command arguments are str, bytes or int, got {arg!r}")
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _ReplyReader:
    """Incremental RESP2 parser over a byte stream. Parsing buffered data never checkpoints."""

    __slots__ = ("_buffer", "_position", "_stream", "received")

    def __init__(self, stream: anyio.abc.ByteReceiveStream) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._position = 0
        self.received = False  # any byte since the flag was last cleared

    async def _fill(self) -> None:
        chunk = await self._stream.receive(_RECEIVE_SIZE)
        self.received = True
        if self._position:
            del self._buffer[: self._position]
            self._position = 0
        self._buffer += chunk

    async def _line(self) -> bytes:
        while True:
            end = self._buffer.find(b"\r\n", self._position)
            if end >= 0:
                line = bytes(self._buffer[self._position : end])
                self._position = end + 2
                return line
            if len(self._buffer) - self._position > _MAX_LINE:
                raise RedisConnectionError("protocol error: a reply line longer than 64 KiB")
            await self._fill()

    async def _exactly(self, size: int) -> bytes:
        while len(self._buffer) - self._position < size + 2:
            await self._fill()
        start = self._position
        data = bytes(self._buffer[start : start + size])
        if self._buffer[start + size : start + size + 2] != b"\r\n":
            raise RedisConnectionError("protocol error: a bulk string not followed by CRLF")
        self._position = start + size + 2
        return data

    async def reply(self) -> RespValue:
        line = await self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode("utf-8", "replace")
        if kind == b"-":
            return RedisReplyError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return self._integer(rest)
        if kind == b"$":
            size = self._integer(rest)
            if size < 0:
                return None
            if size > _MAX_BULK:
                raise RedisConnectionError(f"protocol error: a bulk string of {size} bytes")
            return await self._exactly(size)
        if kind == b"*":
            count = self._integer(rest)
            if count < 0:
                return None
            return [await self.reply() for _ in range(count)]
        raise RedisConnectionError(f"protocol error: unexpected reply type {line[:20]!r}")

    @staticmethod
    def _integer(text: bytes) -> int:
        try:
            return int(text)
        except ValueError:
            raise RedisConnectionError(f"protocol error: bad integer {text[:20]!r}") from None


def _check_seconds(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, got {value!r}")
    if math.isnan(value) or value <= 0:
        raise ValueError(f"{name} must be > 0 (or None for no limit), got {value!r}")
    return float(value)


class RedisConnection:
    """One connection to Redis; one command at a time.

    Open with :meth:`open`; close with :meth:`aclose`. Not safe for concurrent use by
    several tasks (the pool hands each connection to one task at a time).
    """

    __slots__ = ("_address", "_busy", "_reader", "_stream", "broken", "timeout")

    def __init__(
        self, stream: anyio.abc.ByteStream, address: RedisAddress, timeout: float | None = None
    ) -> None:
        self.timeout = timeout  # seconds a command may take (None: no limit)
        self._stream = stream
        self._address = address
        self._reader = _ReplyReader(stream)
        self._busy = False
        self.broken = False

    @classmethod
    async def open(
        cls, address: RedisAddress, *, connect_timeout: float | None = 5.0
    ) -> RedisConnection:
        """Connect, authenticate (``AUTH``) and select the database. A checkpoint.

        Raises :class:`RedisConnectionError` when Redis cannot be reached in
        ``connect_timeout`` seconds or refuses the credentials.
        """
        try:
            with anyio.fail_after(connect_timeout if connect_timeout is not None else math.inf):
                stream = await anyio.connect_tcp(address.host, address.port)
        except TimeoutError:
            raise RedisConnectionError(
                f"cannot connect to Redis at {address}: no answer within {connect_timeout} s"
            ) from None
        except OSError as exc:
            raise RedisConnectionError(
                f"cannot connect to Redis at {address}: {exc.strerror or exc}"
            ) from exc
        connection = cls(stream, address, connect_timeout)
        try:
            if address.password is not None:
                credentials: tuple[str, ...] = (address.password,)
                if address.username is not None:
                    credentials = (address.username, address.password)
                await connection.execute("AUTH", *credentials)
            if address.db:
                await connection.execute("SELECT", address.db)
        except RedisReplyError as exc:
            await connection.aclose()
            raise RedisConnectionError(f"Redis at {address} refused the connection: {exc}") from exc
        except BaseException:
            await connection.aclose()
            raise
        return connection

    async def execute(self, *args: Arg) -> RespValue:
        """Send one command and return its reply. A checkpoint.

        An error reply raises :class:`RedisReplyError`. A lost connection, a protocol error or
        no reply within ``self.timeout`` seconds raises :class:`RedisConnectionError`.
        Cancelled (or failed) half-way, the connection is closed and marked ``broken``.
        """
        timeout = self.timeout
        if self.broken:
            raise RedisConnectionError(f"the connection to Redis at {self._address} is closed")
        if self._busy:
            raise RuntimeError("RedisConnection.execute called concurrently")
        # Encoded before the connection is marked busy: a bad argument (TypeError) must leave
        # it usable, as nothing was sent.
        payload = _encode_command(args)
        self._busy = True
        completed = False
        self._reader.received = False
        try:
            with anyio.fail_after(timeout if timeout is not None else math.inf):
                await self._stream.send(payload)
                reply = await self._reader.reply()
            completed = True
        except TimeoutError:
            raise RedisConnectionError(
                f"Redis at {self._address} did not answer {_name(args)} within {timeout} s"
            ) from None
        except (OSError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
            error = RedisConnectionError if self._reader.received else _NoReply
            raise error(
                f"lost the connection to Redis at {self._address} during {_name(args)}"
            ) from exc
        finally:
            self._busy = False
            if not completed:
                await self.aclose()
        if isinstance(reply, RedisReplyError):
            if str(reply).startswith(_UNAVAILABLE):
                # Redis is up but cannot serve yet (loading its data after a restart, a busy
                # script, a replica without its master): as retryable as a lost connection.
                raise RedisConnectionError(f"Redis at {self._address} is unavailable: {reply}")
            raise reply
        return reply

    async def aclose(self) -> None:
        """Close the connection (idempotent; shielded, so it completes even when cancelled)."""
        self.broken = True
        with anyio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass


def _name(args: tuple[Arg, ...]) -> str:
    first = args[0] if args else "?"
    return first.decode("ascii", "replace") if isinstance(first, bytes) else str(first)


class RedisPool:
    """A few connections shared by the tasks that send commands (not by the stream reader).

    At most ``size`` connections exist at once; a task waits for a free one. Connections are
    opened lazily and a broken one is dropped, so the pool recovers by itself once Redis is
    back. ``command_timeout`` bounds each command (``None``: no limit).
    """

    def __init__(
        self,
        address: RedisAddress,
        *,
        size: int = 4,
        connect_timeout: float | None = 5.0,
        command_timeout: float | None = 10.0,
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"max_connections must be an int >= 1, got {size!r}")
        self.address = address
        self.connect_timeout = _check_seconds("connect_timeout", connect_timeout)
        self.command_timeout = _check_seconds("command_timeout", command_timeout)
        self._slots = anyio.Semaphore(size)
        self._idle: deque[RedisConnection] = deque()
        self._closed = False

    async def connect(self) -> RedisConnection:
        """A new connection that the caller owns (and closes). A checkpoint."""
        connection = await RedisConnection.open(self.address, connect_timeout=self.connect_timeout)
        connection.timeout = self.command_timeout
        return connection

    async def execute(self, *args: Arg) -> RespValue:
        """Run one command on a pooled connection. A checkpoint; see ``RedisConnection``."""
        if self._closed:
            raise RedisConnectionError("the Redis connection pool is closed")
        async with self._slots:
            if self._idle:
                try:
                    return await self._execute_on(self._idle.pop(), args)
                except _NoReply:
                    # A pooled connection that died while idle (Redis restarted, an idle
                    # timeout): Redis never saw the command, so it is sent once more on a new
                    # connection instead of failing the caller.
                    pass
            return await self._execute_on(await self.connect(), args)

    async def _execute_on(self, connection: RedisConnection, args: tuple[Arg, ...]) -> RespValue:
        try:
            return await connection.execute(*args)
        finally:
            if connection.broken or self._closed:
                await connection.aclose()
            else:
                self._idle.append(connection)

    async def aclose(self) -> None:
        """Close the idle connections; busy ones are closed when their command returns."""
        self._closed = True
        while self._idle:
            await self._idle.pop().aclose()
