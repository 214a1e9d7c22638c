"""A cap on concurrent event streams, so that overload degrades instead of collapsing (#8).

An event stream holds a connection, a few tasks and its buffers for as long as the client
stays. Past some number of streams a process runs out of file descriptors or memory, or
spends all its time on pings, and then *every* client suffers. A :class:`StreamLimit`
turns the streams beyond ``max_streams`` away at once, cheaply, with an answer the client
can act on, while the streams already admitted go on as before.

The check is made by :class:`~trio_sse.EventSourceResponse` before it sends its headers; the
limit comes from the response's ``stream_limit=`` option, else from the ASGI scope, where
:class:`StreamLimitMiddleware` puts it for a whole app (under :data:`STREAM_LIMIT_SCOPE_KEY`).
"""

from __future__ import annotations

import threading
from typing import Any, Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from ._validate import choice, non_negative_int, shown

__all__ = ["STREAM_LIMIT_SCOPE_KEY", "StreamLimit", "StreamLimitMiddleware"]

STREAM_LIMIT_SCOPE_KEY = "trio_sse.stream_limit"
"""The ASGI scope key under which :class:`StreamLimitMiddleware` passes its limit down."""

OnFull = Literal["reject", "retry"]


def _check_retry_after(value: object) -> int | None:
    if value is None:
        return None
    return non_negative_int("retry_after", value, what="an int (seconds) or None")


class StreamLimit:
    """At most ``max_streams`` event streams at once; the next ones are turned away.

    ``StreamLimit(max_streams, *, retry_after=5, on_full="reject")``

    * ``max_streams``: how many streams may run at once (an ``int >= 0``; ``0`` admits none).
    * ``retry_after``: seconds a turned-away client is told to wait (``Retry-After`` header),
      or ``None`` to send no hint.
    * ``on_full``: how a response turns a client away when the limit is reached:

      - ``"reject"`` (the default): ``503 Service Unavailable`` with ``Retry-After`` and a short
        ``text/plain`` body. HTTP clients, proxies and load balancers understand it (a load
        balancer can send the client to another instance). A browser's ``EventSource``
        *fails* on any status but 200 and does not reconnect by itself (WHATWG HTML 9.2.3,
        "fail the connection"): the page's ``onerror`` must retry;
      - ``"retry"``: ``200`` with an event stream that holds only a ``retry:`` hint
        (``retry_after`` seconds, plus up to 50 % random jitter so that rejected clients do not
        all come back together) and ends at once: an ``EventSource`` reconnects by itself
        after that delay. The ``Retry-After`` header is sent as well.

    The counter is thread-safe: one limit may be shared by apps running in several threads
    and event loops. It is per process: several worker processes each have their own.
    :meth:`try_acquire` and :meth:`release` never block and are not checkpoints.

    An ``EventSourceResponse`` takes a slot before it sends its headers and gives it back when
    its ASGI call returns, however the stream ended (the content ended, the client left, a send
    timed out, shutdown, an error, or the call was cancelled). A ``HEAD`` request takes a slot
    only for the instant of its answer (it is answered 503 when the limit is full).
    """

    __slots__ = ("_active", "_lock", "_max_streams", "_on_full", "_rejected", "_retry_after")

    def __init__(
        self, max_streams: int, *, retry_after: int | None = 5, on_full: OnFull = "reject"
    ) -> None:
        self._max_streams = non_negative_int("max_streams", max_streams)
        self._retry_after = _check_retry_after(retry_after)
        choice("on_full", on_full, ("reject", "retry"))
        self._on_full: OnFull = on_full
        self._lock = threading.Lock()
        self._active = 0
        self._rejected = 0

    @property
    def max_streams(self) -> int:
        """How many streams may run at once."""
        return self._max_streams

    @property
    def retry_after(self) -> int | None:
        """Seconds a turned-away client is told to wait (``None``: no hint)."""
        return self._retry_after

    @property
    def on_full(self) -> OnFull:
        """``"reject"`` (503) or ``"retry"`` (200 with a ``retry:`` hint)."""
        return self._on_full

    @property
    def active(self) -> int:
        """Streams holding a slot now."""
        return self._active

    @property
    def rejected(self) -> int:
        """Requests turned away since the limit was created."""
        return self._rejected

    def try_acquire(self) -> bool:
        """Take a slot if one is free: ``True``; else count a rejection and return ``False``."""
        with self._lock:
            if self._active >= self._max_streams:
                self._rejected += 1
                return False
            self._active += 1
            return True

    def release(self) -> None:
        """Give back a slot taken by :meth:`try_acquire` (``RuntimeError`` if none is held)."""
        with self._lock:
            if self._active <= 0:
                raise RuntimeError("StreamLimit.release() called more times than try_acquire()")
            self._active -= 1

    def __repr__(self) -> str:
        return (
            f"<StreamLimit {self._active}/{self._max_streams} active, "
            f"{self._rejected} rejected, on_full={self._on_full!r}>"
        )


class StreamLimitMiddleware:
    """Apply one :class:`StreamLimit` to every ``EventSourceResponse`` of an app.

    ``StreamLimitMiddleware(app, *, max_streams=None, retry_after=5, on_full="reject",
    limit=None)``: give either ``max_streams`` (and optionally ``retry_after``/``on_full``),
    or a ready ``limit`` (to read its counters, or to share it between apps). With Starlette::

        app = Starlette(routes=..., middleware=[Middleware(StreamLimitMiddleware, max_streams=1000)])

    The middleware only passes the limit down in the request's scope (a copy of it, under
    :data:`STREAM_LIMIT_SCOPE_KEY`); the responses do the counting, so ordinary requests are
    never limited and no route needs wiring. A response given its own ``stream_limit=`` uses
    that one instead.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_streams: int | None = None,
        retry_after: int | None = 5,
        on_full: OnFull = "reject",
        limit: StreamLimit | None = None,
    ) -> None:
        if limit is None:
            if max_streams is None:
                raise TypeError("StreamLimitMiddleware needs max_streams= or limit=")
            limit = StreamLimit(max_streams, retry_after=retry_after, on_full=on_full)
        elif max_streams is not None:
            raise TypeError("give StreamLimitMiddleware either max_streams= or limit=, not both")
        elif not isinstance(limit, StreamLimit):
            raise TypeError(f"limit must be a StreamLimit, got {shown(limit)}")
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            # A copy: a middleware must not change the scope its caller still holds (ASGI spec).
            scope = {**scope, STREAM_LIMIT_SCOPE_KEY: self.limit}
        await self.app(scope, receive, send)


def limit_from_scope(scope: Scope) -> StreamLimit | None:
    """The limit :class:`StreamLimitMiddleware` put in *scope*, if any."""
    limit: Any = scope.get(STREAM_LIMIT_SCOPE_KEY)
    return limit if isinstance(limit, StreamLimit) else None
