"""Wake a task in its own event loop from anywhere: another thread, a signal handler.

``ShutdownToken.trigger`` may be called outside any event loop, and streams bound to one
token may live in several loops (one per thread, trio or asyncio).  Each waiter therefore
registers a *caller*: a function that runs a plain callback inside the waiter's loop, soon,
and is safe to call from any thread (trio's ``TrioToken.run_sync_soon``, asyncio's
``loop.call_soon_threadsafe``).  Nothing here keeps a reference to a loop after its waiter
is gone, so there is no global state bound to one loop.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

__all__ = ["LoopCaller", "current_loop_caller", "running_under_trio"]

LoopCaller = Callable[[Callable[[], None]], None]


def running_under_trio() -> bool:
    """True when called from inside ``trio.run`` (without importing trio if nobody did)."""
    trio = sys.modules.get("trio")
    return trio is not None and bool(trio.lowlevel.in_trio_run())


def current_loop_caller() -> LoopCaller:
    """Return a thread-safe "run this callback soon in the current loop" function.

    Must be called from inside a running trio or asyncio loop. The returned caller swallows
    the error raised when that loop has already finished: a wake-up for a loop that is gone
    has nobody to wake.
    """
    if running_under_trio():
        import trio

        run_sync_soon = trio.lowlevel.current_trio_token().run_sync_soon

        def call_trio(callback: Callable[[], None]) -> None:
            try:
                run_sync_soon(callback)
            except trio.RunFinishedError:
                pass

        return call_trio

    loop = asyncio.get_running_loop()
    call_soon_threadsafe = loop.call_soon_threadsafe

    def call_asyncio(callback: Callable[[], None]) -> None:
        try:
            call_soon_threadsafe(callback)
        except RuntimeError:  # the loop is closed
            pass

    return call_asyncio
