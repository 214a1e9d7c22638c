"""A stream's task group under asyncio without anyio's ``TaskHandle`` per task (issue 18).

anyio's ``TaskGroup`` (4.14 and later) wraps every task it starts in a ``TaskHandle``: a
cancel scope of its own (with two sets), an anyio ``Event`` around an ``asyncio.Event`` (with
its deque) and a wrapper coroutine, about 18 GC-tracked objects and 3.7 KB per task that an
open stream keeps for its whole life. :class:`AsyncioTaskGroup` is a native
``asyncio.TaskGroup`` inside an anyio ``CancelScope``, which is the group's ``cancel_scope``:

* ``cancel_scope.cancel()`` (or a cancellation from outside) cancels the body as anyio does;
  the body's ``CancelledError`` makes the native group cancel its tasks (``Task.cancel()``)
  and wait for them; the scope, leaving, takes its own cancellation and lets any other go on;
* a task's error cancels the body and the other tasks, and comes out in a
  ``BaseExceptionGroup``, as from anyio's group;
* a task is cancelled with ``Task.cancel()``, which an anyio shield inside it does not stop:
  only for tasks that need no shield (``AsyncLib.task_group(shields=False)``);
* ``start_soon`` returns the ``asyncio.Task`` (its ``cancel()`` is what cancelling anyio's
  handle did in effect); the task runs in a copy of the caller's context, as anyio's do
  (both create it with ``loop.create_task``). It keeps asyncio's default name
  (``Task-N``), not anyio's (the function's module and qualified name): a string fewer
  per task, seen only in task dumps.

``start_soon`` is not a checkpoint; leaving waits for every task.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, cast

import anyio

__all__ = ["AsyncioTaskGroup"]


class AsyncioTaskGroup:
    """A native ``asyncio.TaskGroup`` in an anyio ``CancelScope`` (see the module)."""

    __slots__ = ("_group", "cancel_scope")

    def __init__(self) -> None:
        self.cancel_scope = anyio.CancelScope()
        self._group = asyncio.TaskGroup()

    async def __aenter__(self) -> AsyncioTaskGroup:
        self.cancel_scope.__enter__()
        await self._group.__aenter__()  # (not a checkpoint)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        asked_before = _host_cancel_asked(self._group)
        try:
            try:
                await self._group.__aexit__(exc_type, exc, tb)
            except BaseException as error:
                if self.cancel_scope.__exit__(type(error), error, error.__traceback__):
                    return True
                raise
            # No error, or the group swallowed the body's (its own cancellation of the host).
            self.cancel_scope.__exit__(None, None, None)
            return True
        finally:
            if _MISSES_UNCANCEL and not asked_before and _host_cancel_asked(self._group):
                # A task failed while the host waited in the native group's ``__aexit__``:
                # CPython 3.11 cancels the host then and never takes it back (fixed in 3.12),
                # which would leave its ``Task.cancelling()`` one too high.
                host = asyncio.current_task()
                if host is not None:  # pragma: no branch (inside a task)
                    host.uncancel()

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> asyncio.Task[Any]:
        coro = cast("Coroutine[Any, Any, Any]", func(*args))
        try:
            return self._group.create_task(coro)
        except BaseException:  # the group is left: asyncio's own error says so
            coro.close()  # never awaited: no warning about it
            raise


_MISSES_UNCANCEL = sys.version_info < (3, 12)


def _host_cancel_asked(group: asyncio.TaskGroup) -> bool:
    """Whether the native *group* cancelled its host because a task failed."""
    return bool(getattr(group, "_parent_cancel_requested", False))
