"""Zero-configuration shutdown for servers that own the signals: uvicorn.

uvicorn installs its own SIGINT/SIGTERM handlers (``Server.handle_exit``, with
``signal.signal``) and, on a signal, stops accepting and then waits for every running
request, including endless event streams, to finish. Nothing tells the app.

When a stream starts in the main thread and the installed SIGTERM handler is a uvicorn
server's bound ``handle_exit``, we chain it: our handler triggers the process-wide default
:class:`~trio_sse.ShutdownToken` and then calls uvicorn's. Nothing is patched at import time,
nothing polls, and the chain disappears when uvicorn restores the previous handlers as it
exits. (``trio_sse.serve`` installs its own handlers and needs none of this.)
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from ._shutdown import _fresh_default_shutdown_token

__all__ = ["install_server_hooks"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _ChainedHandler:
    """Trigger the default token, then run the server's own handler."""

    __slots__ = ("original",)

    def __init__(self, original: Callable[[int, FrameType | None], Any]) -> None:
        self.original = original

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        from ._shutdown import default_shutdown_token

        default_shutdown_token().trigger(signal.Signals(signum))
        self.original(signum, frame)


def _uvicorn_server_of(handler: object) -> object | None:
    server: object = getattr(handler, "__self__", None)
    if server is None or getattr(handler, "__name__", None) != "handle_exit":
        return None
    if not type(server).__module__.startswith("uvicorn."):
        return None
    return server


def install_server_hooks() -> None:
    """Chain uvicorn's signal handlers to the default token, once per uvicorn server.

    Cheap when there is nothing to do (one ``signal.getsignal`` call); a no-op outside the
    main thread, where signal handlers cannot be installed and uvicorn installs none.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if isinstance(current, _ChainedHandler) or _uvicorn_server_of(current) is None:
        return
    # A server that starts after an earlier one drained gets a fresh default token.
    _fresh_default_shutdown_token()
    for signum in _SIGNALS:
        handler = signal.getsignal(signum)
        if _uvicorn_server_of(handler) is not None:
            signal.signal(signum, _ChainedHandler(handler))  # type: ignore[arg-type]
