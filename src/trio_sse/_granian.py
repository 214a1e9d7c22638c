"""granian's worker signals, chained to a shutdown token for the worker's run.

A granian (2.x) worker process serves the app on an asyncio loop and learns of shutdown from
SIGTERM/SIGINT, which its parent relays (``loop.add_signal_handler``). It then stops accepting
and waits, with no limit unless ``--workers-kill-timeout`` is given, for every open connection
to close: endless event streams keep it alive, and nothing tells the app (the ASGI lifespan's
shutdown comes only once all connections are gone).

``loop.add_signal_handler`` leaves a do-nothing Python handler installed (asyncio's
``_sighandler_noop``) and learns of the signal through ``signal.set_wakeup_fd``, which the
interpreter writes whatever Python handler is installed. So wrapping that Python handler, as
:func:`chain_granian_signals` does, adds the token's trigger without taking anything away from
granian: the loop still runs granian's own callback, which starts granian's drain, and the
streams, now in their cooperative phase, end and let the worker exit.
"""

from __future__ import annotations

import sys
import threading

from ._shutdown import ShutdownToken
from ._uvicorn import chain_handlers

__all__ = ["chain_granian_signals"]


def _is_loop_placeholder(handler: object) -> bool:
    """Whether *handler* is the Python handler an event loop's ``add_signal_handler`` leaves."""
    return getattr(handler, "__name__", None) == "_sighandler_noop" and callable(handler)


def chain_granian_signals() -> ShutdownToken | None:
    """Chain a granian worker's SIGTERM/SIGINT to a token for this worker's run.

    In a process where granian is loaded and the main thread's SIGTERM is dispatched by the
    running event loop (granian's worker), installs a handler that triggers a new token, a
    child of the process-wide default token, and leaves granian's own handling untouched. While
    the worker runs, that token is what :func:`~trio_sse.default_shutdown_token` returns, so
    responses without ``shutdown=`` get their cooperative phase and farewell on granian's
    SIGTERM. Returns the token, or ``None`` when this is not a granian worker (or not the main
    thread).

    Synchronous, never blocks, not a checkpoint; idempotent. Responses call it themselves
    unless :func:`~trio_sse.set_uvicorn_chaining` turned automatic chaining off.
    """
    if "granian" not in sys.modules or threading.current_thread() is not threading.main_thread():
        return None
    return chain_handlers(_is_loop_placeholder)
