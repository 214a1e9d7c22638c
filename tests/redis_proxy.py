"""A TCP proxy between the Redis backend and a test's ``redis-server``, to fail on cue.

``async with open_redis_proxy(redis_port) as proxy:`` listens on a free port of 127.0.0.1
(``proxy.url``) and forwards every connection to the Redis on *redis_port*. Its tasks live in
the context manager's own task group: leaving closes the listener and every connection.
What it does with the traffic, decided per client request (one RESP command):

* by default it passes everything through;
* :meth:`RedisProxy.lose_replies`: the next *times* requests of a command (optionally: those
  with a given argument, a stream id) reach Redis, then the
  proxy resets the client's connection (``SO_LINGER`` 0: an RST) as soon as Redis' reply
  starts to come back, instead of passing the reply on. Redis executed the command; the client
  never hears of it (issue 15: "a reply lost after Redis executed the XADD");
* :meth:`RedisProxy.cut_at`: at the next request of a command the network is cut, both ways
  and for every connection, old or new (new ones are accepted and connected to Redis, then
  get nothing through): the bytes are held, as TCP would keep retransmitting them, until
  :meth:`RedisProxy.restore`. With ``forward=True`` the request itself reaches Redis first
  (its reply is held), else it is held too. :meth:`RedisProxy.cut` cuts at once.

``proxy.requests`` counts the requests seen, by command name (``b"XADD"``), and
``proxy.resets`` the connections reset. The request parser (:class:`Requests`) is pure.
"""

from __future__ import annotations

import collections
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc

__all__ = ["RedisProxy", "Requests", "open_redis_proxy"]

_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class Requests:
    """Client requests (RESP arrays of bulk strings) taken off a byte stream. Pure."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Add *data*; return the requests it completed, each as its list of arguments."""
        self._buffer += data
        found: list[list[bytes]] = []
        while (request := self._take()) is not None:
            found.append(request)
        return found

    def _line(self, start: int) -> tuple[bytes, int] | None:
        end = self._buffer.find(b"\r\n", start)
        return None if end < 0 else (bytes(self._buffer[start:end]), end + 2)

    def _take(self) -> list[bytes] | None:
        header = self._line(0)
        if header is None:
            return None
        line, position = header
        if not line.startswith(b"*"):
            raise ValueError(f"not a RESP request: {line!r}")
        arguments: list[bytes] = []
        for _ in range(int(line[1:])):
            size_line = self._line(position)
            if size_line is None:
                return None
            size, position = int(size_line[0][1:]), size_line[1]
            if len(self._buffer) < position + size + 2:
                return None
            arguments.append(bytes(self._buffer[position : position + size]))
            position += size + 2
        del self._buffer[:position]
        return arguments


def reset_on_close(stream: anyio.abc.SocketStream) -> None:
    """``SO_LINGER`` 0: closing *stream* sends an RST, not a FIN."""
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


Hook = Callable[[], Awaitable[None]]


@dataclass
class _Loss:
    """Replies to lose: of how many more requests, which ones, what to do before the reset."""

    times: int
    argument: bytes | None
    before_reset: Hook | None


@dataclass
class _Link:
    """One client connection and its own connection to Redis."""

    client: anyio.abc.SocketStream
    upstream: anyio.abc.SocketStream
    scope: anyio.CancelScope
    doomed: _Loss | None = None  # the next reply bytes are not passed on: the client is reset
    parser: Requests = field(default_factory=Requests)


class RedisProxy:
    """The proxy's switches; see the module docstring. Made by :func:`open_redis_proxy`."""

    def __init__(self, port: int, redis_port: int) -> None:
        self.port = port
        self.redis_port = redis_port
        self.requests: collections.Counter[bytes] = collections.Counter()
        self.resets = 0
        self._lose: dict[bytes, _Loss] = {}
        self._cut_at: tuple[bytes, bool] | None = None
        self._restored: anyio.Event | None = None  # set while the network is cut

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def lose_replies(
        self,
        command: bytes = b"XADD",
        *,
        times: int = 1,
        argument: bytes | None = None,
        before_reset: Hook | None = None,
    ) -> None:
        """Reset the connection instead of passing on the replies of the next *times*
        requests of *command* (with *argument* among their arguments, if given). Sync.

        With *before_reset*, the proxy awaits it once Redis' reply is there, and resets the
        connection after: what happens in the world while a client waits for a lost reply.
        """
        self._lose[command.upper()] = _Loss(times, argument, before_reset)

    def cut_at(self, command: bytes = b"XADD", *, forward: bool) -> None:
        """Cut the network at the next request of *command*; see the module docstring."""
        self._cut_at = (command.upper(), forward)

    def cut(self) -> None:
        """Cut the network now: nothing more goes through, either way, until restored."""
        if self._restored is None:
            self._restored = anyio.Event()

    @property
    def is_cut(self) -> bool:
        return self._restored is not None

    def restore(self) -> None:
        """Let the held bytes, and all that follows, through again."""
        restored, self._restored = self._restored, None
        if restored is not None:
            restored.set()

    async def _flowing(self) -> None:
        """Wait while the network is cut. A checkpoint only while it is."""
        while self._restored is not None:
            await self._restored.wait()

    def _decide(self, link: _Link, request: list[bytes]) -> bool:
        """Count *request*, arm the faults it triggers; whether it goes through at once."""
        name = request[0].upper() if request else b""
        self.requests[name] += 1
        loss = self._lose.get(name)
        if loss is not None and loss.times > 0 and loss.argument in (None, *request[1:]):
            loss.times -= 1
            link.doomed = loss
        if self._cut_at is not None and self._cut_at[0] == name:
            forward = self._cut_at[1]
            self._cut_at = None
            self.cut()
            return forward
        return False

    async def serve(self, client: anyio.abc.SocketStream) -> None:
        """Forward one client connection until either side closes (or the proxy resets it)."""
        async with client:
            try:
                upstream = await anyio.connect_tcp("127.0.0.1", self.redis_port)
            except OSError:
                return  # Redis is down: the client sees its connection closed
            async with upstream, anyio.create_task_group() as group:
                link = _Link(client, upstream, group.cancel_scope)
                group.start_soon(self._requests, link)
                group.start_soon(self._replies, link)

    async def _requests(self, link: _Link) -> None:
        try:
            while True:
                data = await link.client.receive()
                now = [self._decide(link, request) for request in link.parser.feed(data)]
                if not any(now):
                    await self._flowing()
                await link.upstream.send(data)
        except _GONE:
            link.scope.cancel()

    async def _replies(self, link: _Link) -> None:
        try:
            while True:
                data = await link.upstream.receive()
                if link.doomed is not None:
                    if link.doomed.before_reset is not None:
                        await link.doomed.before_reset()
                    self.resets += 1
                    reset_on_close(link.client)
                    await link.client.aclose()
                    break
                await self._flowing()
                await link.client.send(data)
        except _GONE:
            pass
        link.scope.cancel()


@asynccontextmanager
async def open_redis_proxy(redis_port: int) -> AsyncIterator[RedisProxy]:
    """A :class:`RedisProxy` to the Redis on *redis_port*, serving until the block ends."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    proxy = RedisProxy(port, redis_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, proxy.serve)
        try:
            yield proxy
        finally:
            proxy.restore()
            group.cancel_scope.cancel()
