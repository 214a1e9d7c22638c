"""The one place that tells trio from asyncio.

Everything in trio_sse that must act differently under the two loops asks
:func:`current_asynclib` once, where it starts (a connection, a parked stream, a shutdown
watcher), and keeps the :class:`AsyncLib` it gets: the loop's clock, its cheapest scheduling
pass, a thread-safe "run this callback in this loop" function, and a way to park the current
task until something wakes it. Nothing else in the package asks "are we under trio?".

trio is never imported here, nor by anything this module hands out under asyncio: the
question is answered from ``sys.modules`` (a loop that runs under trio has imported it), so
an app served by an asyncio server never loads trio.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import sys
import types
from collections.abc import Awaitable, Callable, Generator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Protocol, cast

import anyio

from ._asyncio_group import AsyncioTaskGroup

__all__ = [
    "AsyncLib",
    "CancelScopeLike",
    "Cancellable",
    "LoopCaller",
    "Parker",
    "TaskGroupLike",
    "current_asynclib",
    "current_loop_caller",
    "is_trio_channel",
    "running_under_trio",
    "trio_channel_exceptions",
]

LoopCaller = Callable[[Callable[[], None]], None]
"""Runs a plain callback soon inside one loop; safe from any thread and signal handlers."""


def running_under_trio() -> bool:
    """True when called from inside ``trio.run`` (without importing trio if nobody did)."""
    trio = sys.modules.get("trio")
    return trio is not None and bool(trio.lowlevel.in_trio_run())


def is_trio_channel(content: object) -> bool:
    """Whether *content* is a trio ``MemoryReceiveChannel`` (never imports trio)."""
    trio = sys.modules.get("trio")
    return trio is not None and isinstance(content, trio.MemoryReceiveChannel)


def trio_channel_exceptions() -> tuple[type[BaseException], tuple[type[BaseException], ...]]:
    """trio's ``WouldBlock``, and what its receive channels raise at their end.

    Only for a channel that :func:`is_trio_channel` recognised: trio is imported already.
    """
    trio = sys.modules["trio"]
    return trio.WouldBlock, (trio.EndOfChannel, trio.ClosedResourceError)


class Parker(Protocol):
    """Parks one task at a time until :meth:`wake`; made by :meth:`AsyncLib.parker`.

    ``await parker.wait()`` (awaited at once by the task to park: it registers the caller)
    is a scheduling point, and where a cancellation is delivered. :meth:`wake` is sync,
    never blocks, and says whether a parked task was woken.
    """

    def wait(self) -> Awaitable[Any]: ...

    def wake(self) -> bool: ...


class CancelScopeLike(Protocol):
    """What a stream uses of a cancel scope: anyio's, or (under trio) trio's own."""

    deadline: float
    shield: bool

    @property
    def cancel_called(self) -> bool: ...

    def cancel(self) -> None: ...

    def __enter__(self) -> Any: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool | None: ...


class Cancellable(Protocol):
    """A task that can be cancelled: anyio's ``TaskHandle``, or an ``asyncio.Task``."""

    def cancel(self) -> object: ...


class TaskGroupLike(Protocol):
    """What a stream uses of its task group (:meth:`AsyncLib.task_group`)."""

    @property
    def cancel_scope(self) -> CancelScopeLike: ...

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Start ``func(*args)`` in the group. Returns a :class:`Cancellable` under asyncio
        (anyio's ``TaskHandle``, or a native group's ``asyncio.Task``), ``None`` under trio."""


class Timer(Protocol):
    """A timed loop callback (:meth:`AsyncLib.call_at`)."""

    def cancel(self) -> None: ...


class AsyncLib:
    """The running loop's primitives, looked up once by :func:`current_asynclib`.

    * ``name``: ``"trio"`` or ``"asyncio"``;
    * ``clock()``: the loop's clock (the one anyio's ``current_time`` reads);
    * ``schedule_pass()``: the cheapest awaitable that lets every ready task run once (a
      checkpoint);
    * ``quiet_passes``: how many passes that bring nothing mean "nothing more is coming".
      trio runs each batch of ready tasks in a random order, so a busy task can look idle
      for one pass; asyncio's ready queue is first-in first-out, so one quiet pass is enough;
    * :meth:`loop_caller` and :meth:`parker`: see there.

    Without anyio's per-call backend lookup: the stream loop calls these once per batch.
    """

    __slots__ = ("clock", "name", "quiet_passes", "schedule_pass")

    name: str
    clock: Callable[[], float]
    schedule_pass: Callable[[], Awaitable[None]]
    quiet_passes: int

    def loop_caller(self) -> LoopCaller:
        """A thread-safe "run this callback soon in this loop" function.

        The caller swallows the error raised once the loop has finished: a wake-up for a loop
        that is gone has nobody to wake. It keeps the loop referenced only while it is kept
        (asyncio's is made once per loop and kept by its kit: see :func:`current_asynclib`;
        trio's once per run, kept by the trio kit until another run asks).
        """
        raise NotImplementedError

    def parker(self) -> Parker:
        """A new :class:`Parker` for tasks of this loop."""
        raise NotImplementedError

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer | None:
        """Run *callback* in this loop at *when* (its ``clock``): a loop callback, not a task,
        run with no context variables set. Never blocks. ``None``: this loop has no timed
        callbacks (trio), and the caller keeps its deadline in a task's cancel scope."""
        return None

    def task_group(self, *, shields: bool = True) -> AbstractAsyncContextManager[TaskGroupLike]:
        """A new task group (``async with``): a trio nursery under trio; under asyncio anyio's,
        or, when ``shields`` is false, a native one (``_asyncio_group.AsyncioTaskGroup``).

        ``shields=False`` promises that its tasks run no anyio cancel scope or shield that
        must hold against the group's cancellation (none of the caller's own, none of user
        code): a native group cancels its tasks with ``Task.cancel()``, which a shield does
        not stop. (Under a custom task factory, an eager one say, anyio's group is used
        anyway: a native group's task would start inside ``start_soon``.)
        """
        raise NotImplementedError

    def cancel_scope(self, deadline: float = math.inf) -> CancelScopeLike:
        """A new cancel scope: anyio's under asyncio, trio's own under trio."""
        raise NotImplementedError


class _TrioLib(AsyncLib):
    __slots__ = ("_caller", "_trio")

    def __init__(self, trio: Any) -> None:
        self._trio = trio
        # The last run's token and its caller: every stream of a run shares one (issue 18),
        # as asyncio's kit shares its loop's. One attribute, read and replaced whole, so
        # runs in several threads at once never mix a token with another run's caller.
        self._caller: tuple[Any, LoopCaller] | None = None
        self.name = "trio"
        self.clock = trio.current_time
        self.schedule_pass = trio.lowlevel.checkpoint
        self.quiet_passes = 2

    def loop_caller(self) -> LoopCaller:
        token = self._trio.lowlevel.current_trio_token()
        cached = self._caller
        if cached is not None and cached[0] is token:
            return cached[1]
        run_sync_soon = token.run_sync_soon
        finished = self._trio.RunFinishedError

        def call_trio(callback: Callable[[], None]) -> None:
            try:
                run_sync_soon(callback)
            except finished:
                pass

        self._caller = (token, call_trio)
        return call_trio

    def parker(self) -> Parker:
        return _TrioParker(self._trio.lowlevel)

    def task_group(self, *, shields: bool = True) -> AbstractAsyncContextManager[TaskGroupLike]:
        return _TrioTaskGroup(self._trio)

    def cancel_scope(self, deadline: float = math.inf) -> CancelScopeLike:
        # trio's scope itself, without anyio's wrapper around it: one object fewer per scope
        # (issue 18); it has every member a stream uses (``CancelScopeLike``).
        scope: CancelScopeLike = self._trio.CancelScope(deadline=deadline)
        return scope


class _TrioTaskGroup:
    """A trio nursery as a stream's task group, without anyio's ``TaskGroup`` around it.

    anyio's (4.14 and later) makes a ``TaskHandle`` for every task it starts, with a cancel
    scope (anyio's and trio's, its status and sets) and an ``Event`` (anyio's and trio's,
    its parking lot): about a dozen objects per task that an open stream keeps for its
    whole life, and the group itself keeps a wrapper scope and a ``__dict__`` (issue 18).
    Here a task is the nursery's own. Behaviour is anyio's: leaving raises what the nursery
    raises, except that a group of nothing but ``Cancelled`` (a cancellation from outside
    met the body and the tasks) is raised as one bare ``Cancelled``, as anyio does, so that
    ``except Cancelled`` around it still sees it. ``start_soon`` is not a checkpoint;
    leaving waits for every task (a checkpoint).
    """

    __slots__ = ("_cancelled", "_manager", "_nursery", "cancel_scope")

    def __init__(self, trio: Any) -> None:
        # Strict, as anyio's: the same groups whatever the run's own default.
        self._manager = trio.open_nursery(strict_exception_groups=True)
        self._cancelled: type[BaseException] = trio.Cancelled
        self._nursery: Any = None
        self.cancel_scope: CancelScopeLike

    async def __aenter__(self) -> _TrioTaskGroup:
        nursery = self._nursery = await self._manager.__aenter__()
        self.cancel_scope = nursery.cancel_scope
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            return bool(await self._manager.__aexit__(exc_type, exc, tb))
        except BaseExceptionGroup as group:
            cancelled, rest = group.split(self._cancelled)
            if rest is not None or cancelled is None:
                raise
            raise _first_leaf(cancelled) from group

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        self._nursery.start_soon(func, *args)  # (once left, trio's own error says so)


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception of *group* that is not itself a group."""
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


class _AsyncioLib(AsyncLib):
    """One per loop (see :func:`current_asynclib`): what it hands out is shared by every
    stream of that loop, not made again for each (GC-tracked objects per stream, issue 18)."""

    __slots__ = ("_caller", "_context", "_create_future", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.name = "asyncio"
        self.clock = loop.time
        self.schedule_pass = _ASYNCIO_PASS
        self.quiet_passes = 1
        self._create_future = loop.create_future
        self._caller: LoopCaller | None = None
        # The context of every timer: shared, so a timer copies no context of its own.
        self._context = contextvars.Context()

    def loop_caller(self) -> LoopCaller:
        caller = self._caller
        if caller is None:
            call_soon_threadsafe = self._loop.call_soon_threadsafe

            def call_asyncio(callback: Callable[[], None]) -> None:
                try:
                    call_soon_threadsafe(callback)
                except RuntimeError:  # the loop is closed
                    pass

            caller = self._caller = call_asyncio
        return caller

    def parker(self) -> Parker:
        return _AsyncioParker(self._create_future)

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        return self._loop.call_at(when, callback, context=self._context)

    def task_group(self, *, shields: bool = True) -> AbstractAsyncContextManager[TaskGroupLike]:
        if not shields and self._loop.get_task_factory() is None:
            return AsyncioTaskGroup()
        # (anyio's ``start_soon`` is typed with ``Unpack``, which the protocol cannot spell.)
        return cast("AbstractAsyncContextManager[TaskGroupLike]", anyio.create_task_group())

    def cancel_scope(self, deadline: float = math.inf) -> CancelScopeLike:
        scope: CancelScopeLike = anyio.CancelScope(deadline=deadline)
        return scope


@types.coroutine
def _asyncio_pass() -> Generator[None, None, None]:
    """What ``asyncio.sleep(0)`` does (a bare yield: the task is rescheduled at the end of
    the ready queue; a cancellation is delivered here), without its coroutine (issue 18)."""
    yield


_ASYNCIO_PASS: Callable[[], Awaitable[None]] = _asyncio_pass


class _TrioParker:
    """Parks with trio's ``wait_task_rescheduled``; woken by ``reschedule``."""

    __slots__ = ("_abort_succeeded", "_current_task", "_reschedule", "_task", "_wait")

    def __init__(self, lowlevel: Any) -> None:
        self._task: Any = None
        self._current_task = lowlevel.current_task
        self._wait = lowlevel.wait_task_rescheduled
        self._reschedule = lowlevel.reschedule
        self._abort_succeeded = lowlevel.Abort.SUCCEEDED

    def wait(self) -> Awaitable[Any]:
        self._task = self._current_task()
        # The parker is its own abort function: no bound method kept while parked (issue 18).
        return self._wait(self)  # type: ignore[no-any-return]

    def wake(self) -> bool:
        task = self._task
        if task is None:
            return False
        self._task = None
        self._reschedule(task)
        return True

    def _abort(self, _: object) -> Any:
        self._task = None  # cancelled: nobody to wake any more
        return self._abort_succeeded

    __call__ = _abort


class _AsyncioParker:
    """Parks on a fresh future; woken by resolving it."""

    __slots__ = ("_create_future", "_future")

    def __init__(self, create_future: Callable[[], asyncio.Future[None]]) -> None:
        self._future: asyncio.Future[None] | None = None
        self._create_future = create_future  # the loop's, shared by its parkers

    def wait(self) -> Awaitable[Any]:
        future = self._future = self._create_future()
        return future

    def wake(self) -> bool:
        future = self._future
        if future is None:
            return False
        self._future = None
        if future.done():  # cancelled while parked: nobody to wake any more
            return False
        future.set_result(None)
        return True


_trio_lib: _TrioLib | None = None
# The asyncio loop looked up last, and its kit: a server's streams all run in one loop, so
# they share one. (It keeps that loop referenced until another loop asks: a closed loop, at
# worst, once its run is over.) Threads with loops of their own each get the right kit.
_asyncio_lib: _AsyncioLib | None = None


def current_asynclib() -> AsyncLib:
    """The :class:`AsyncLib` of the running loop. Must be called inside trio or asyncio.

    Raises ``RuntimeError`` outside both. Keep the result for as long as the work that asked
    lives in that loop (one connection, one stream): each call looks the loop up again.
    """
    global _trio_lib, _asyncio_lib
    if running_under_trio():
        if _trio_lib is None:
            _trio_lib = _TrioLib(sys.modules["trio"])
        return _trio_lib
    loop = asyncio.get_running_loop()
    lib = _asyncio_lib
    if lib is None or lib._loop is not loop:
        lib = _asyncio_lib = _AsyncioLib(loop)
    return lib


def current_loop_caller() -> LoopCaller:
    """Shorthand for ``current_asynclib().loop_caller()``."""
    return current_asynclib().loop_caller()
