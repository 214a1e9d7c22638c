"""``ShutdownToken``: a scoped, loop-agnostic cancellation token for graceful shutdown.

Triggering a token starts the *cooperative phase* of every stream bound to it (the
response sets its ``shutdown_event`` and the producer can see ``token.triggered``); each
response then cancels its producer when its own grace period ends (the *hard phase*) and
finishes the HTTP body cleanly.  The token itself holds no task and no loop: ``trigger``
only flips a flag and schedules wake-ups in the loops of whoever is waiting, which is why
it is safe from a signal handler, from another thread, and across ``anyio.run`` calls.
"""

from __future__ import annotations

import contextvars
import itertools
import threading
import weakref
from collections.abc import Callable

import anyio
import anyio.lowlevel

from ._asynclib import current_loop_caller
from ._streaminfo import CURRENT_STREAM

__all__ = ["ShutdownToken", "current_shutdown_token", "default_shutdown_token"]

_ids = itertools.count()


class ShutdownToken:
    """A cancellation token that streams (and your own code) can watch.

    * :meth:`trigger` is synchronous, idempotent, never blocks, and is safe to call from a
      signal handler or from any thread.
    * :attr:`triggered` and :attr:`reason` read the state without waiting.
    * ``await token.wait()`` returns once the token is triggered (a checkpoint; cancellable).
    * :meth:`child` makes a token that triggers with this one, or alone: drain one part of an
      app (one topic, one tenant) without touching the rest.
    """

    __slots__ = (
        "__weakref__",
        "_children",
        "_idle_watchers",
        "_parent",
        "_reason",
        "_streams",
        "_triggered",
        "_watchers",
    )

    def __init__(self) -> None:
        self._parent: ShutdownToken | None = None
        self._streams = 0  # streams bound to this token that are running now
        self._idle_watchers: dict[
            int, tuple[Callable[[Callable[[], None]], None], Callable[[], None]]
        ] = {}
        self._triggered = False
        self._reason: object = None
        # key -> (caller of the watcher's loop, callback). Mutated only by single dict
        # operations, which are atomic under the GIL, so a trigger from a signal handler
        # that interrupts a registration sees either the old or the new dict state.
        self._watchers: dict[
            int, tuple[Callable[[Callable[[], None]], None], Callable[[], None]]
        ] = {}
        self._children: weakref.WeakSet[ShutdownToken] = weakref.WeakSet()

    @property
    def triggered(self) -> bool:
        """Whether :meth:`trigger` was called (on this token or on an ancestor)."""
        return self._triggered

    @property
    def reason(self) -> object:
        """What the first :meth:`trigger` call was given (``None`` if nothing)."""
        return self._reason

    def trigger(self, reason: object = None) -> None:
        """Trigger the token: synchronous, idempotent, safe from signal handlers and threads.

        Watchers are woken in their own event loops soon after; children trigger too.
        Calls after the first do nothing (the first *reason* is kept).
        """
        if self._triggered:
            return
        self._reason = reason
        self._triggered = True
        for caller, callback in list(self._watchers.values()):
            caller(callback)
        for child in list(self._children):
            child.trigger(reason)

    def child(self) -> ShutdownToken:
        """A new token that is triggered when this one is (and may be triggered alone)."""
        token = ShutdownToken()
        token._parent = self
        self._children.add(token)
        if self._triggered:  # checked after adding: a concurrent trigger cannot be missed
            token.trigger(self._reason)
        return token

    async def wait(self) -> None:
        """Wait until the token is triggered. Always a checkpoint; cancellable."""
        if self._triggered:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        with self._watch(event.set):
            await event.wait()

    def _watch(self, callback: Callable[[], None]) -> _Watch:
        """Run *callback* in the current loop once the token triggers (or at once if it has).

        Internal API for the stream loop: one dict entry per stream instead of one task.
        Must be called from inside a running loop; use as a context manager (or call
        ``close()``) to stop watching.
        """
        return _Watch(self, current_loop_caller(), callback)

    def _add_watcher(self, callback: Callable[[], None]) -> int:
        """``_watch`` without the object: returns the key to give :meth:`_remove_watcher`
        (in a ``finally``). For the stream loop, which would keep a ``_Watch`` and its bound
        ``__exit__`` for the stream's whole life (GC-tracked objects, issue 18)."""
        return _register(self, current_loop_caller(), callback)

    def _remove_watcher(self, key: int) -> None:
        """Stop the watch that :meth:`_add_watcher` returned *key* for. Idempotent."""
        self._watchers.pop(key, None)

    # -- stream accounting, for servers that wait for streams to drain -------------------------

    def _stream_started(self) -> None:
        with _accounting:
            self._streams += 1

    def _stream_finished(self) -> None:
        with _accounting:
            self._streams -= 1
        token: ShutdownToken | None = self
        while token is not None:  # an ancestor's drain waits for its children's streams too
            for caller, callback in list(token._idle_watchers.values()):
                caller(callback)
            token = token._parent

    def _active_streams(self) -> int:
        """Streams running under this token and under its children."""
        return self._streams + sum(child._active_streams() for child in list(self._children))

    async def _wait_drained(self) -> None:
        """Wait until no stream runs under this token or its children. A checkpoint."""
        await anyio.lowlevel.checkpoint()
        while self._active_streams():
            event = anyio.Event()
            key = next(_ids)
            self._idle_watchers[key] = (current_loop_caller(), event.set)
            try:
                if self._active_streams():
                    await event.wait()
            finally:
                self._idle_watchers.pop(key, None)

    def __repr__(self) -> str:
        state = f"triggered, reason={self._reason!r}" if self._triggered else "not triggered"
        return f"<ShutdownToken {state}>"


class _Watch:
    __slots__ = ("_key", "_token")

    def __init__(
        self,
        token: ShutdownToken,
        caller: Callable[[Callable[[], None]], None],
        callback: Callable[[], None],
    ) -> None:
        self._token = token
        self._key = _register(token, caller, callback)

    def close(self) -> None:
        self._token._watchers.pop(self._key, None)

    def __enter__(self) -> _Watch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _register(
    token: ShutdownToken,
    caller: Callable[[Callable[[], None]], None],
    callback: Callable[[], None],
) -> int:
    """Register *callback* to run through *caller* once *token* triggers; return its key."""
    key = next(_ids)
    token._watchers[key] = (caller, callback)
    if token._triggered:
        # Registered after a trigger, or raced with one: waking twice is harmless for
        # our callbacks (they are idempotent), missing the wake-up would not be.
        caller(callback)
    return key


# Guards the stream counters, which streams in several threads may update at once. Never
# taken by trigger(), so a signal handler can never deadlock on it.
_accounting = threading.Lock()

# The process-wide token: never replaced, and never triggered by a server of ours. Every
# server run gets a child of it (``_run_token_for_server``), so triggering it by hand ends
# every run's streams, and a run that drained leaves nothing spent for the next one.
_default_token = ShutdownToken()

# The token of the server run (uvicorn, a granian worker, daphne) whose signals
# ``_uvicorn.chain_handlers`` chained last (set there only). It stays after that run ended, until another run is chained.
_run_token: ShutdownToken | None = None

# Set by trio_sse.serve for every task of the server it runs (tasks inherit the context).
_server_token: contextvars.ContextVar[ShutdownToken | None] = contextvars.ContextVar(
    "trio_sse_server_shutdown", default=None
)


def default_shutdown_token() -> ShutdownToken:
    """The token that responses created without ``shutdown=`` are bound to.

    Inside an app served by ``trio_sse.serve``/``run``, the token of that server (the one it
    triggers on SIGINT/SIGTERM); under uvicorn, once its signals are chained (see
    :func:`~trio_sse.chain_uvicorn_signals`), the token of that uvicorn run; elsewhere the
    process-wide token. Each server run's token is a child of the process-wide one, which is
    never replaced: triggering that one by hand ends the streams of every run. An app may
    also trigger the token returned here by hand. Read it where it is used, not once at
    import: a run's token is made when the run starts.
    """
    return _server_token.get(None) or _run_token or _default_token


def _run_token_for_server() -> ShutdownToken:
    """A new token for one server run: a child of the process-wide default token."""
    return _default_token.child()


def current_shutdown_token() -> ShutdownToken:
    """The token the current stream is bound to, from inside its producer or iterator.

    Outside a stream, the process-wide default token. Lets a producer notice the cooperative
    phase (``token.triggered``, ``await token.wait()``) without being passed the token.
    """
    current = CURRENT_STREAM.get()  # the stream loop's connection (``_streaminfo``)
    token = None if current is None else current.shutdown_token
    return token if token is not None else default_shutdown_token()
