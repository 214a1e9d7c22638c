"""Per-stream hooks: ``on_open``, ``on_close`` and ``StreamHooks`` objects (issue 17 item 4).

The response's ``on_open=``/``on_close=``/``hooks=`` options become one :class:`Observer`
per ASGI call, or ``None`` when none is set: then the stream loop creates no :class:`Tally`
and its writer runs exactly as without this module (one ``is None`` test per body message).
With an observer, the writer sends each body message through :meth:`Tally.send`, which
counts the events and bytes of the whole message at once (never per event) and times the
send only if a hook wants the time (``on_send``).

A hook that raises is logged (once per kind of failure per 10 s, ``_ratelog``) and the
stream goes on: observing a stream must never break it. A hook may be sync or async; an
async one is awaited (a checkpoint) for at most ``HOOK_TIMEOUT`` seconds, and ``on_close``
shielded, so that it runs even when the stream was cancelled by its server.
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from ._ratelog import LogLimiter
from ._streaminfo import Scope, StreamInfo, describe, stream_info

__all__ = [
    "HOOK_LOG",
    "HOOK_TIMEOUT",
    "CloseReason",
    "Observer",
    "OnClose",
    "OnOpen",
    "StreamClosed",
    "StreamHooks",
    "Tally",
    "make_observer",
]

logger = logging.getLogger("trio_sse")

HOOK_TIMEOUT = 5.0
"""Seconds an async ``on_open``/``on_close`` hook may take before it is cancelled (logged)."""

HOOK_LOG = LogLimiter(10.0)
"""Hooks that raise: one record per hook and kind of failure per 10 s."""


class CloseReason(enum.StrEnum):
    """Why a stream ended (a ``str``: ``CloseReason.SHUTDOWN == "shutdown"``).

    * ``COMPLETED``: the content ended (the producer closed its channel, the iterable ran out);
    * ``CLIENT_DISCONNECT``: the client left (``http.disconnect``, or a send that failed);
    * ``SEND_TIMEOUT``: a send took longer than ``send_timeout``;
    * ``SHUTDOWN``: the shutdown token triggered, or the server cancelled the stream;
    * ``MAX_DURATION``: the stream's ``max_duration`` was over;
    * ``ERROR``: the producer raised, an item or a ping could not be encoded, or a
      subscription's channel could not be opened (each logged).
    """

    COMPLETED = "completed"
    CLIENT_DISCONNECT = "client_disconnect"
    SEND_TIMEOUT = "send_timeout"
    SHUTDOWN = "shutdown"
    MAX_DURATION = "max_duration"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class StreamClosed:
    """What ``on_close`` is told: why the stream ended and what it sent.

    ``events`` and ``bytes`` count the content's items and their encoded bytes that the server
    accepted (not pings, not the farewell); ``duration`` is seconds from open to close, on the
    event loop's clock.
    """

    reason: CloseReason
    events: int
    bytes: int
    duration: float


OnOpen = Callable[[StreamInfo], Awaitable[None] | None]
OnClose = Callable[[StreamInfo, StreamClosed], Awaitable[None] | None]


class StreamHooks:
    """A base class for an object of hooks, given as ``EventSourceResponse(hooks=...)``.

    Override what you need; what is not overridden costs nothing. ``on_open`` and ``on_close``
    may be ``async def``. ``on_send(info, events, nbytes, seconds)`` is sync (it must not
    block): called after each body message the server accepted, with the number of events
    in it, its bytes and how long the send took. ``trio_sse.metrics.OpenTelemetryHooks`` is one.
    """

    def on_open(self, info: StreamInfo) -> Awaitable[None] | None:
        """The stream starts (its response headers were sent)."""
        return None

    def on_close(self, info: StreamInfo, closed: StreamClosed) -> Awaitable[None] | None:
        """The stream ended: *closed* says why and what it sent."""
        return None

    def on_send(self, info: StreamInfo, events: int, nbytes: int, seconds: float) -> None:
        """A body message of *events* events (*nbytes* bytes) was sent in *seconds*."""


OnSend = Callable[[StreamInfo, int, int, float], None]


class Observer:
    """The hooks of one response, gathered once per ASGI call by :func:`make_observer`."""

    __slots__ = ("on_close", "on_open", "on_send")

    def __init__(
        self, on_open: tuple[OnOpen, ...], on_close: tuple[OnClose, ...], on_send: OnSend | None
    ) -> None:
        self.on_open = on_open
        self.on_close = on_close
        self.on_send = on_send


def make_observer(
    on_open: OnOpen | None, on_close: OnClose | None, hooks: StreamHooks | None
) -> Observer | None:
    """The observer of these options; ``None`` when none is set (nothing is counted)."""
    if on_open is None and on_close is None and hooks is None:
        return None
    opens: list[OnOpen] = [] if hooks is None else [hooks.on_open]
    closes: list[OnClose] = [] if hooks is None else [hooks.on_close]
    opens += [on_open] if on_open is not None else []
    closes += [on_close] if on_close is not None else []
    on_send = None
    if hooks is not None and type(hooks).on_send is not StreamHooks.on_send:
        on_send = hooks.on_send
    return Observer(tuple(opens), tuple(closes), on_send)


def _report(what: str, hook: object, error: BaseException | None, info: StreamInfo) -> None:
    """Log that *hook* failed (raised *error*, or timed out for ``None``), without flooding."""
    name = getattr(hook, "__qualname__", type(hook).__qualname__)
    failure = "timed out" if error is None else f"raised {type(error).__name__}: {error}"
    left_out = HOOK_LOG.admit(f"{what}:{name}:{failure.partition(':')[0]}")
    if left_out is None:
        return
    more = f"; {left_out} more since the last report" if left_out else ""
    logger.error(
        "trio_sse: the stream's %s hook %s %s; the stream goes on%s "
        "(reported at most once per %g s%s)",
        what,
        name,
        failure,
        describe(info.scope),
        HOOK_LOG.interval,
        more,
        exc_info=error,
    )


async def _call(what: str, hook: Callable[..., Any], info: StreamInfo, *args: Any) -> None:
    """Call *hook*; await what it returns if awaitable (bounded; ``on_close`` shielded)."""
    try:
        result = hook(info, *args)
        if inspect.isawaitable(result):
            with anyio.move_on_after(HOOK_TIMEOUT, shield=what == "on_close") as scope:
                await result
            if scope.cancelled_caught:
                _report(what, hook, None, info)
    except Exception as exc:
        _report(what, hook, exc, info)


class Tally:
    """One observed stream: its :class:`StreamInfo`, what it sent, and its hooks' calls.

    Made by the stream loop for its ASGI call only when the response has an observer. The
    loop sets :attr:`expired` (``max_duration``) and :attr:`failed` (an error ended it), and
    :attr:`cause` once the content stopped and the stream's reason is decided (the last send
    that follows may still fail).
    """

    __slots__ = (
        "_clock",
        "_observer",
        "_opened_at",
        "bytes",
        "cause",
        "events",
        "expired",
        "failed",
        "info",
    )

    def __init__(self, observer: Observer, scope: Scope) -> None:
        self._observer = observer
        self.info = stream_info(scope)
        self.events = 0
        self.bytes = 0
        self.expired = False
        self.failed = False
        self.cause: CloseReason | None = None  # decided when the content stopped, if it did
        self._clock: Callable[[], float] = anyio.current_time
        self._opened_at = 0.0

    async def open(self, clock: Callable[[], float]) -> None:
        """The stream starts: call the ``on_open`` hooks. A checkpoint if one is async."""
        self._clock = clock
        self._opened_at = clock()
        for hook in self._observer.on_open:
            await _call("on_open", hook, self.info)

    async def send(
        self, send: Callable[[dict[str, Any]], Awaitable[None]], count: int, message: dict[str, Any]
    ) -> None:
        """``await send(message)``, a body of *count* events; counted once the server took it."""
        on_send = self._observer.on_send
        if on_send is None:
            await send(message)
        else:
            clock = self._clock
            start = clock()
            await send(message)
            elapsed = clock() - start
        nbytes = len(message["body"])
        self.events += count
        self.bytes += nbytes
        if on_send is not None:
            try:
                on_send(self.info, count, nbytes, elapsed)
            except Exception as exc:
                _report("on_send", on_send, exc, self.info)

    async def close(self, reason: CloseReason) -> None:
        """The stream ended for *reason*: call the ``on_close`` hooks (shielded, bounded)."""
        closed = StreamClosed(reason, self.events, self.bytes, self._clock() - self._opened_at)
        for hook in self._observer.on_close:
            await _call("on_close", hook, self.info, closed)
