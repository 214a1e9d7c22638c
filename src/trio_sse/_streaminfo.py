"""Which stream is this: its route and client, for hooks and for log lines (issue 17 item 4).

:class:`StreamInfo` is what a hook is told about the stream it observes. The log lines of a
failing stream name it too: ``_run`` of the stream loop puts its connection (which knows its
ASGI scope and its shutdown token) in a context variable (``CURRENT_STREAM``), which the tasks
of its task group inherit, and :func:`where` formats the scope only when a line is logged, so
a stream that never fails pays one ``set`` and one ``reset`` for it, shared with
``current_shutdown_token`` (one context-variable token per stream, not two: issue 18). Standard library only; nothing here is a checkpoint.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ._shutdown import ShutdownToken

__all__ = [
    "CURRENT_STREAM",
    "Current",
    "StreamInfo",
    "client_of",
    "describe",
    "route_of",
    "stream_info",
    "where",
]

Scope = Mapping[str, Any]


class Current(Protocol):
    """What a stream puts in ``CURRENT_STREAM`` for its tasks (the stream loop's connection)."""

    @property
    def asgi_scope(self) -> Scope | None:
        """The stream's ASGI scope, named by its log lines (``None``: not known)."""

    @property
    def shutdown_token(self) -> ShutdownToken | None:
        """The token the stream is bound to (``current_shutdown_token``)."""


CURRENT_STREAM: contextvars.ContextVar[Current | None] = contextvars.ContextVar(
    "trio_sse_stream", default=None
)
"""The stream the current task serves: ``_stream``'s ``_run`` sets it (and puts back the value
it found when the stream ends); the tasks of the stream's task group inherit it."""


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """The stream a hook observes, fixed when its ASGI call starts.

    * ``route``: the path template of the route that answered (``"/rooms/{room}"``: what
      Starlette and FastAPI put in the scope as ``scope["route"]``), else the request's path.
      Bounded in number, so fit to label metrics with;
    * ``path``: the request's path (``"/rooms/42"``);
    * ``client``: the peer as ``"host:port"`` (``None`` if the server gave none);
    * ``started``: when the stream started, as ``time.time()`` (seconds since the epoch).

    ``scope``, the ASGI scope itself, is kept for a hook that needs more (a header, the
    app's state); it is not part of the dataclass's equality or ``repr``.
    """

    route: str
    path: str
    client: str | None
    started: float
    scope: Scope = field(default_factory=dict, compare=False, repr=False)


def route_of(scope: Scope) -> str:
    """The route's path template if the router put its route in *scope*, else the path."""
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        return str(scope.get("root_path") or "") + template
    return str(scope.get("path") or "/")


def client_of(scope: Scope) -> str | None:
    """``"host:port"`` from the scope's ``client`` (``"[::1]:5000"`` for IPv6), or ``None``."""
    client = scope.get("client")
    if not client:
        return None
    host, port = client[0], client[1]
    host = f"[{host}]" if ":" in str(host) else str(host)
    return f"{host}:{port}"


def stream_info(scope: Scope) -> StreamInfo:
    """The :class:`StreamInfo` of a stream about to start for *scope*."""
    return StreamInfo(
        route=route_of(scope),
        path=str(scope.get("path") or "/"),
        client=client_of(scope),
        started=time.time(),
        scope=scope,
    )


def describe(scope: Scope | None) -> str:
    """``" (route /x, client 127.0.0.1:5000)"``: what a log line appends; ``""`` for no scope.

    The request's path follows a route template it differs from (``route /r/{id}, path /r/7``).
    """
    if scope is None:
        return ""
    route, path, client = route_of(scope), str(scope.get("path") or "/"), client_of(scope)
    shown = route if route == path else f"{route}, path {path}"
    return f" (route {shown}, client {client if client is not None else 'unknown'})"


def where() -> str:
    """:func:`describe` of the stream the current task belongs to (``""`` outside any)."""
    current = CURRENT_STREAM.get()
    return "" if current is None else describe(current.asgi_scope)
