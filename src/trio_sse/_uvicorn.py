"""uvicorn's SIGINT/SIGTERM handlers, chained to a shutdown token for the server's run.

uvicorn installs its own handlers (``Server.handle_exit``, with ``signal.signal``) and, on a
signal, stops accepting and then waits for every running request, including endless event
streams, to finish. Nothing tells the app. :func:`chain_uvicorn_signals` wraps those handlers
so that a signal first triggers a token for this server run, a child of the process-wide
default token, and then runs uvicorn's own handler. Responses created without ``shutdown=``
obey that token while the run lasts (see :func:`~trio_sse.default_shutdown_token`).

By default every ``EventSourceResponse`` call does this at its edge (cheap once done: one
``signal.getsignal``); :func:`set_uvicorn_chaining` turns that off. Nothing is patched at
import time, nothing polls, the process-wide token is never replaced, and the chain goes when
uvicorn restores the previous handlers as it exits. (``trio_sse.serve`` installs its own
handlers and needs none of this.)
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeGuard

from . import _shutdown
from ._shutdown import ShutdownToken

__all__ = ["chain_handlers", "chain_uvicorn_signals", "set_uvicorn_chaining"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)

Handler = Callable[[int, FrameType | None], Any]
"""A Python signal handler (what ``signal.signal`` takes besides SIG_DFL and SIG_IGN)."""


class _ChainedHandler:
    """Trigger the run's token, then run the server's own handler."""

    __slots__ = ("original", "token")

    def __init__(self, original: Handler, token: ShutdownToken) -> None:
        self.original = original
        self.token = token

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.token.trigger(signal.Signals(signum))
        self.original(signum, frame)


# The SIGTERM handler installed by the last chaining (compared by identity on the fast path),
# and whether responses chain by themselves.
_chained: _ChainedHandler | None = None
_automatic = True
_lock = threading.Lock()  # two threads chaining at once install one chain


def _is_uvicorn_handler(handler: object) -> TypeGuard[Handler]:
    """Whether *handler* (what ``signal.getsignal`` returned) is a uvicorn ``handle_exit``.

    ``getsignal`` may return ``None`` (a handler not installed from Python), ``SIG_DFL`` or
    ``SIG_IGN`` (ints), a C function (``signal.default_int_handler``) or any callable: all
    but a method ``handle_exit`` of an object of a ``uvicorn.*`` class answer ``False``, and
    so does a handler whose attributes cannot be read.
    """
    try:
        server: object = getattr(handler, "__self__", None)
        if server is None or getattr(handler, "__name__", None) != "handle_exit":
            return False
        module = getattr(type(server), "__module__", None)
        return callable(handler) and isinstance(module, str) and module.startswith("uvicorn.")
    except Exception:  # an object whose __getattr__ raises: not uvicorn's
        return False


def chain_uvicorn_signals() -> ShutdownToken | None:
    """Chain the running uvicorn server's signal handlers to a token for this run.

    When the installed SIGTERM handler is a uvicorn ``Server``'s ``handle_exit``, wraps it
    (and uvicorn's SIGINT handler): a signal triggers a new token, a child of the process-wide
    default token, then runs uvicorn's handler as before. While that run lasts, the new token
    is what :func:`~trio_sse.default_shutdown_token` returns outside ``trio_sse.serve``, so
    responses without ``shutdown=`` drain on uvicorn's signal. Returns that token, or ``None``
    when there is no uvicorn handler to chain (another server, no server, or not in the main
    thread, where signal handlers cannot be installed and uvicorn installs none).

    Synchronous, never blocks, not a checkpoint. Idempotent: calling it again during the same
    run returns the same token and chains nothing twice. Responses call it themselves unless
    :func:`set_uvicorn_chaining` turned that off; call it yourself (in the lifespan's startup,
    say, where uvicorn's handlers are installed already) to have the token before the first
    stream, or when automatic chaining is off.
    """
    if "uvicorn" not in sys.modules:  # uvicorn is not running this process: nothing to chain
        return None
    return chain_handlers(_is_uvicorn_handler)


def chain_handlers(
    is_server_handler: Callable[[object], bool],
    wrap: Callable[[Handler, ShutdownToken], _ChainedHandler] = _ChainedHandler,
) -> ShutdownToken | None:
    """Wrap the server's SIGINT/SIGTERM handlers (those *is_server_handler* accepts) with
    *wrap*, bound to a new run token, unless already done; the token, or ``None`` when the
    installed SIGTERM handler is not the server's. Chains from the main thread only (another
    thread gets the token of a chain already made, else ``None``); sync, not a checkpoint.
    Shared by the server integrations (uvicorn here, ``_granian``, ``_daphne``)."""
    current = signal.getsignal(signal.SIGTERM)
    if current is _chained and isinstance(current, _ChainedHandler):
        return current.token
    if not is_server_handler(current):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None  # handlers can be installed from the main thread only
    return _chain(is_server_handler, wrap)


def _chain(
    is_server_handler: Callable[[object], bool],
    wrap: Callable[[Handler, ShutdownToken], _ChainedHandler],
) -> ShutdownToken | None:
    global _chained
    with _lock:
        current = signal.getsignal(signal.SIGTERM)
        if isinstance(current, _ChainedHandler):
            return current.token  # chained by another caller meanwhile
        if not is_server_handler(current):
            return None
        token = _shutdown._run_token_for_server()
        # The token first, then the handlers: a signal in between finds the new token bound.
        _shutdown._run_token = token
        for signum in _SIGNALS:
            handler = signal.getsignal(signum)
            if is_server_handler(handler) and callable(handler):
                wrapped = wrap(handler, token)
                signal.signal(signum, wrapped)
                if signum == signal.SIGTERM:
                    _chained = wrapped
        return token


def set_uvicorn_chaining(enabled: bool) -> None:
    """Whether ``EventSourceResponse`` chains uvicorn's signals by itself (on by default).

    The same switch governs granian's and daphne's (:func:`~trio_sse.chain_granian_signals`,
    :func:`~trio_sse.chain_daphne_signals`).

    Turn it off when the app handles uvicorn's shutdown its own way (its own signal handlers,
    or its own tokens passed as ``shutdown=``); call it before the first stream starts. It
    does not undo a chain already made, and :func:`chain_uvicorn_signals` called explicitly
    still chains. Sync, process-wide.
    """
    global _automatic
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {enabled!r}")
    _automatic = enabled
