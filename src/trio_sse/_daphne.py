"""daphne's SIGTERM/SIGINT, chained to a shutdown token and held until the streams drained.

daphne (4.x) runs Twisted's asyncio reactor with Twisted's own signal handlers
(``reactor.sigTerm``/``sigInt``, installed with ``signal.signal``). On a signal the reactor
stops at once, and daphne's "before shutdown" trigger cancels every running application
task: no lifespan (daphne has none), no ``http.disconnect``, no wait. A stream then gets
only its hard phase (trio_sse still sends the farewell and ends the body cleanly).

:func:`chain_daphne_signals` wraps those handlers: the first signal triggers a token for this
run and passes the signal on to Twisted only once every stream bound to the token has ended
(each within its own ``shutdown_grace_period``) or after ``drain_timeout`` seconds, whichever
comes first; a second signal passes on at once. The wait is callbacks on the reactor's event
loop (a stream-finished watcher and one timer), not a task. Requests other than event streams
are not waited for: daphne cancels them when the reactor stops, as it always does.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
import threading
from types import FrameType

from ._asynclib import current_loop_caller
from ._shutdown import ShutdownToken
from ._uvicorn import Handler, _ChainedHandler, chain_handlers
from ._validate import seconds

__all__ = ["DEFAULT_DAPHNE_DRAIN_TIMEOUT", "chain_daphne_signals"]

DEFAULT_DAPHNE_DRAIN_TIMEOUT = 30.0
"""Seconds the first signal is held at most while streams drain (streams end sooner, at
their ``shutdown_grace_period``; this bounds a producer that shields itself)."""

_keys = itertools.count()


def _is_twisted_handler(handler: object) -> bool:
    """Whether *handler* is a Twisted reactor's ``sigTerm``/``sigInt`` (a bound method)."""
    try:
        reactor: object = getattr(handler, "__self__", None)
        if reactor is None or getattr(handler, "__name__", None) not in ("sigTerm", "sigInt"):
            return False
        module = getattr(type(reactor), "__module__", None)
        return callable(handler) and isinstance(module, str) and module.startswith("twisted.")
    except Exception:  # an object whose __getattr__ raises: not Twisted's
        return False


class _Drain:
    """The shutdown one run's held handlers share: the first signal, and whether it went on."""

    __slots__ = ("loop", "passed_on", "pending", "timeout", "token")

    def __init__(
        self, token: ShutdownToken, loop: asyncio.AbstractEventLoop, timeout: float
    ) -> None:
        self.token = token
        self.loop = loop
        self.timeout = timeout
        self.passed_on = False
        # Twisted's handler for the first signal, and its arguments.
        self.pending: tuple[Handler, int, FrameType | None] | None = None

    def signalled(self, original: Handler, signum: int, frame: FrameType | None) -> None:
        """From the signal handler: trigger the token and start the drain (first signal), or
        pass the first signal on now (second signal). Never blocks."""
        if self.pending is not None:
            self.loop.call_soon_threadsafe(self.pass_on)
            return
        self.pending = (original, signum, frame)
        self.token.trigger(signal.Signals(signum))
        self.loop.call_soon_threadsafe(self._start)

    def _start(self) -> None:
        """In the loop: pass the signal on when no stream runs, or at the timeout."""
        self.token._idle_watchers[next(_keys)] = (current_loop_caller(), self._check)
        self.loop.call_later(self.timeout, self.pass_on)
        self._check()

    def _check(self) -> None:
        if not self.token._active_streams():
            self.pass_on()

    def pass_on(self) -> None:
        """In the loop: run Twisted's handler for the first signal, once (it stops daphne)."""
        if self.passed_on or self.pending is None:
            return
        self.passed_on = True
        self.token._idle_watchers.clear()
        original, signum, frame = self.pending
        original(signum, frame)


class _HeldHandler(_ChainedHandler):
    """A Twisted handler whose signal goes through the run's :class:`_Drain`."""

    __slots__ = ("drain",)

    def __init__(self, original: Handler, drain: _Drain) -> None:
        super().__init__(original, drain.token)
        self.drain = drain

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.drain.signalled(self.original, signum, frame)


def chain_daphne_signals(
    *, drain_timeout: float = DEFAULT_DAPHNE_DRAIN_TIMEOUT
) -> ShutdownToken | None:
    """Chain daphne's (Twisted's) SIGTERM/SIGINT to a token for this run, held while streams drain.

    Must be called from inside the reactor's event loop in the main thread (a response's
    ``__call__`` is). The first signal triggers the token (the streams' cooperative phase,
    then their grace and farewell) and reaches Twisted, which stops daphne, once no stream
    bound to the token runs, or *drain_timeout* seconds later; a second signal reaches it at
    once. Returns the token, or ``None`` when the installed SIGTERM handler is not Twisted's.

    Synchronous, never blocks, not a checkpoint; idempotent (the first call's *drain_timeout*
    stays). Responses call it themselves unless :func:`~trio_sse.set_uvicorn_chaining` turned
    automatic chaining off.
    """
    timeout = seconds("drain_timeout", drain_timeout)
    if "daphne" not in sys.modules or threading.current_thread() is not threading.main_thread():
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not under asyncio: not daphne's reactor
        return None

    drains: dict[ShutdownToken, _Drain] = {}  # one per run token: SIGINT and SIGTERM share it

    def hold(original: Handler, token: ShutdownToken) -> _ChainedHandler:
        drain = drains.setdefault(token, _Drain(token, loop, timeout))
        return _HeldHandler(original, drain)

    return chain_handlers(_is_twisted_handler, hold)
