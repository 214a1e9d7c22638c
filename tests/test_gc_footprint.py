"""What an open stream keeps alive, and what it shares (issue 18: GC-tracked objects).

A full garbage collection walks every live object; with a thousand streams open it is their
objects that make the pause. These tests pin the sharing that keeps that number down: one
asyncio kit per loop, one options object per distinct value, no watcher object and no
``json_dumps`` context of its own for a stream that changes nothing. They count objects of
our own types only, never time anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
import math
import threading
import types
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest
from anyio import TaskHandle

from trio_sse import (
    Broadcaster,
    EventSourceResponse,
    ServerSentEvent,
    ShutdownToken,
    _subscriber,
    current_shutdown_token,
)
from trio_sse._asynclib import current_asynclib
from trio_sse._channels import ParkingReceiveStream, parking_pair, producer_pair, producer_send_end
from trio_sse._json import stream_json_dumps
from trio_sse._shutdown import _Watch
from trio_sse._stream import Connection
from trio_sse._streaminfo import CURRENT_STREAM
from trio_sse._subscriber import Overflow, check_options
from trio_sse.testing import open_event_stream

from .helpers import app_for


def test_one_asyncio_kit_per_loop() -> None:
    async def kit() -> tuple[Any, Any, Any]:
        lib = current_asynclib()
        assert current_asynclib() is lib
        assert lib.loop_caller() is lib.loop_caller()
        return lib, lib.loop_caller(), asyncio.get_running_loop()

    first, caller, loop = asyncio.run(kit())
    found: list[Any] = []
    thread = threading.Thread(target=lambda: found.append(asyncio.run(kit())))
    thread.start()
    thread.join(10)
    other, other_caller, other_loop = found[0]
    assert other is not first and other_caller is not caller
    assert other._loop is other_loop and first._loop is loop
    again, _, _ = asyncio.run(kit())  # a new loop: a new kit
    assert again is not other


def test_options_are_shared_by_value(monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_options(8, "disconnect", None) is check_options(8, Overflow.DISCONNECT, None)
    assert check_options(8, "block", 2) is check_options(8, "block", 2.0)
    assert check_options(8, "block", 2) is not check_options(8, "block", 3)
    monkeypatch.setattr(_subscriber, "_MAX_SHARED_OPTIONS", len(_subscriber._SHARED_OPTIONS))
    first = check_options(987_654, "drop_oldest", None)
    second = check_options(987_654, "drop_oldest", None)
    assert first == second == (987_654, Overflow.DROP_OLDEST, 5.0)
    assert first is not second  # full: not kept


@pytest.mark.anyio
async def test_a_watcher_key_runs_the_callback_once_triggered() -> None:
    token = ShutdownToken()
    calls: list[str] = []
    key = token._add_watcher(lambda: calls.append("first"))
    removed = token._add_watcher(lambda: calls.append("removed"))
    token._remove_watcher(removed)
    token._remove_watcher(removed)  # idempotent
    token.trigger()
    with anyio.fail_after(5):
        while not calls:
            await anyio.lowlevel.checkpoint()
    late = token._add_watcher(lambda: calls.append("late"))  # after the trigger: at once
    with anyio.fail_after(5):
        while len(calls) < 2:
            await anyio.lowlevel.checkpoint()
    assert calls == ["first", "late"]
    token._remove_watcher(key)
    token._remove_watcher(late)
    assert not token._watchers


def _watches_and_json_contexts() -> tuple[int, int]:
    objects = gc.get_objects()
    watches = sum(1 for obj in objects if type(obj) is _Watch)
    contexts = sum(
        1
        for obj in objects
        if type(obj).__name__ == "_GeneratorContextManager"
        and getattr(getattr(obj, "gen", None), "__name__", "") == "using_json_dumps"
    )
    return watches, contexts


@pytest.mark.anyio
@pytest.mark.parametrize("dumps", [None, "custom"])
async def test_an_open_hub_stream_keeps_no_watch_and_a_json_context_only_if_set(
    dumps: str | None,
) -> None:
    seen: list[object] = []

    def custom(obj: object) -> str:
        return repr(obj)

    json_dumps = custom if dumps else None
    async with Broadcaster() as hub:

        def response() -> EventSourceResponse:
            return EventSourceResponse(hub.stream("t"), json_dumps=json_dumps, ping=0)

        before = _watches_and_json_contexts()
        with anyio.fail_after(10):
            async with open_event_stream(app_for(response), "/") as stream:
                # Subscribed before the headers (``hub.stream``): the stream is registered.
                assert hub.stats().total_subscribers == 1
                await hub.publish("t", ServerSentEvent("x"))
                assert [event.data for event in await stream.read_events(1)] == ["x"]
                during = _watches_and_json_contexts()
                seen.append(stream_json_dumps.get())
    assert during[0] == before[0]
    assert during[1] == before[1] + (1 if dumps else 0)
    assert seen == [None]  # the test's own context is untouched either way


def test_a_subscribers_channel_ends_keep_no_dict_of_their_own() -> None:
    # Made by their own classes' constructors on anyio's channel state, not re-classed: a
    # re-classed instance materialises a ``__dict__`` (one more object per end per stream).
    send, receive = parking_pair(2)
    with send, receive:
        for end in (send, receive):
            assert not any(type(obj) is dict for obj in gc.get_referents(end)), end
        assert receive.statistics().open_send_streams == 1
        assert receive.statistics().open_receive_streams == 1
        send.send_nowait("x")
        assert receive.receive_nowait() == "x"
    assert receive.statistics().open_send_streams == 0


@pytest.mark.anyio
async def test_the_writer_frame_keeps_no_bound_wait_or_content_tuple() -> None:
    async with Broadcaster() as hub:

        def response() -> EventSourceResponse:
            return EventSourceResponse(hub.stream("t"), ping=0)

        with anyio.fail_after(10):
            async with open_event_stream(app_for(response), "/") as stream:
                await hub.publish("t", ServerSentEvent("x"))
                assert [event.data for event in await stream.read_events(1)] == ["x"]
                gc.collect()
                kept = [
                    obj
                    for obj in gc.get_objects()
                    if isinstance(obj, types.MethodType)
                    and getattr(obj.__func__, "__name__", "") == "wait_ready"
                ]
                assert kept == []


@pytest.mark.anyio
async def test_an_open_stream_keeps_no_context_token_and_is_its_own_watcher() -> None:
    token = ShutdownToken()
    seen: list[ShutdownToken] = []

    async def producer(send: Any) -> None:
        seen.append(current_shutdown_token())
        async with send:
            await send.send(ServerSentEvent("x"))
            await anyio.sleep_forever()

    def ours() -> list[contextvars.Token[Any]]:
        gc.collect()
        return [
            obj
            for obj in gc.get_objects()
            if type(obj) is contextvars.Token and obj.var.name.startswith("trio_sse")
        ]

    def response() -> EventSourceResponse:
        return EventSourceResponse(producer, shutdown=token, ping=0)

    before = len(ours())
    with anyio.fail_after(10):
        async with open_event_stream(app_for(response), "/") as stream:
            assert [event.data for event in await stream.read_events(1)] == ["x"]
            during = len(ours())
            watchers = [callback for _, callback in token._watchers.values()]
    assert seen == [token]
    assert during == before  # the value found is put back, with no ``Token`` kept meanwhile
    assert CURRENT_STREAM.get() is None  # and it is put back
    assert [type(callback).__name__ for callback in watchers] == ["Connection"]


def _connections() -> list[Connection]:
    gc.collect()  # only the live ones
    return [obj for obj in gc.get_objects() if type(obj) is Connection]


@pytest.mark.anyio
@pytest.mark.parametrize("lifetime", [None, 60.0])
async def test_asyncio_keeps_the_ping_deadline_as_a_loop_timer_not_a_scope(
    anyio_backend: str, lifetime: float | None
) -> None:
    # Under asyncio the listener waits with no cancel scope (it is stopped through its task)
    # and the loop's timer wakes the writer for its pings; trio keeps a deadline scope.
    async with Broadcaster() as hub:

        def response() -> EventSourceResponse:
            return EventSourceResponse(hub.stream("t"), ping=0.05, max_duration=lifetime)

        with anyio.fail_after(10):
            async with open_event_stream(app_for(response), "/", comments=True) as stream:
                pings = await stream.read_events(2)
                (connection,) = _connections()
                waiting = connection._listener_wait
                timer = connection._timer
    assert [event.comment for event in pings] == ["ping", "ping"]
    if anyio_backend == "asyncio":  # a native group's task (no producer: no shield needed)
        assert type(waiting) is asyncio.Task and timer is not None
    else:  # trio's own scope, not anyio's wrapper around one
        import trio

        assert type(waiting) is trio.CancelScope and timer is None
    assert connection._timer is None  # cancelled when the stream ended


@pytest.mark.anyio
async def test_a_stream_without_deadlines_waits_for_disconnect_without_a_scope(
    anyio_backend: str,
) -> None:
    # asyncio: the listener is stopped through its task; trio: its nursery task has no
    # handle, so one scope with no deadline stops it (anyio's handle kept two scopes).
    async with Broadcaster() as hub:

        def response() -> EventSourceResponse:
            return EventSourceResponse(hub.stream("t"), ping=0)

        with anyio.fail_after(10):
            async with open_event_stream(app_for(response), "/") as stream:
                await hub.publish("t", ServerSentEvent("x"))
                assert [event.data for event in await stream.read_events(1)] == ["x"]
                (connection,) = _connections()
                waiting = connection._listener_wait
                if anyio_backend == "asyncio":
                    assert type(waiting) is asyncio.Task
                else:
                    import trio

                    assert type(waiting) is trio.CancelScope
                    assert waiting.deadline == math.inf
                assert connection._timer is None


@pytest.mark.anyio
async def test_the_loop_timer_ends_a_stream_at_its_max_duration() -> None:
    async with Broadcaster() as hub:

        def response() -> EventSourceResponse:
            return EventSourceResponse(hub.stream("t"), ping=0, max_duration=0.05)

        with anyio.fail_after(10):
            async with open_event_stream(app_for(response), "/") as stream:
                assert [event async for event in stream] == []


def test_one_trio_loop_caller_per_run() -> None:
    trio = pytest.importorskip("trio")

    async def callers() -> tuple[Any, Any]:
        lib = current_asynclib()
        return lib.loop_caller(), lib.loop_caller()

    first, again = trio.run(callers)
    assert first is again  # every stream of a run shares it
    other, _ = trio.run(callers)
    assert other is not first  # a new run: a new caller, for its own token
    found: list[bool] = []

    async def runs_the_callback() -> None:
        done = trio.Event()
        current_asynclib().loop_caller()(done.set)
        with trio.fail_after(5):
            await done.wait()
        found.append(True)

    trio.run(runs_the_callback)
    assert found == [True]


def _live(kind: str) -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj).__name__ == kind)


def _bound(name: str) -> int:
    gc.collect()
    return sum(
        1
        for obj in gc.get_objects()
        if isinstance(obj, types.MethodType) and getattr(obj.__func__, "__qualname__", "") == name
    )


@pytest.mark.anyio
async def test_a_hub_stream_keeps_no_exit_stack_and_no_bound_no_scope_exit() -> None:
    # ``hub.stream``'s channel is entered and left by hand (no ``AsyncExitStack`` with its
    # deque), and the writer's no-op wait scope has static methods (no bound ``__exit__``).
    async with Broadcaster() as hub:

        def response() -> EventSourceResponse:
            return EventSourceResponse(hub.stream("t"), ping=0)

        stacks, exits = _live("AsyncExitStack"), _bound("nullcontext.__exit__")
        with anyio.fail_after(10):
            async with open_event_stream(app_for(response), "/") as stream:
                await hub.publish("t", ServerSentEvent("x"))
                assert [event.data for event in await stream.read_events(1)] == ["x"]
                assert _live("AsyncExitStack") == stacks
                assert _bound("nullcontext.__exit__") == exits
                assert _bound("_NoScope.__exit__") == 0
                assert hub.stats().total_subscribers == 1
        with anyio.fail_after(5):
            while hub.stats().total_subscribers:  # left: unsubscribed
                await anyio.lowlevel.checkpoint()


@pytest.mark.anyio
async def test_under_trio_a_stream_keeps_no_anyio_task_group_or_task_handle(
    anyio_backend: str,
) -> None:
    # A trio nursery and trio's own scopes, not anyio's wrappers: no ``TaskHandle`` per task
    # (its scope and event), no anyio ``TaskGroup`` (its scope and ``__dict__``).
    async def producer(send: Any) -> None:
        async with send:
            await send.send(ServerSentEvent("x"))
            await anyio.sleep_forever()

    def response() -> EventSourceResponse:
        return EventSourceResponse(producer, ping=0.5)

    with anyio.fail_after(10):
        async with open_event_stream(app_for(response), "/") as stream:
            assert [event.data for event in await stream.read_events(1)] == ["x"]
            (connection,) = _connections()
            group: object = connection._group
            listener = connection._listener
            scope, waiting = connection._producer_scope, connection._listener_wait
    if anyio_backend == "trio":
        import trio

        assert not isinstance(group, anyio.abc.TaskGroup) and listener is None
        assert type(scope) is trio.CancelScope and type(waiting) is trio.CancelScope
    else:  # a producer may need shields: anyio's group; the listener stopped by its handle
        assert isinstance(group, anyio.abc.TaskGroup) and isinstance(listener, TaskHandle)
        assert isinstance(scope, anyio.CancelScope) and waiting is listener


def test_the_trio_parker_is_its_own_abort_function() -> None:
    trio = pytest.importorskip("trio")
    testing = pytest.importorskip("trio.testing")
    found: list[object] = []

    async def main() -> None:
        parker = current_asynclib().parker()

        async def park() -> None:
            await parker.wait()  # cancelled: aborted through the parker itself

        async with trio.open_nursery() as nursery:
            nursery.start_soon(park)
            await testing.wait_all_tasks_blocked()
            found.append(_bound("_TrioParker._abort"))  # none kept while parked
            nursery.cancel_scope.cancel()
        found.append(parker.wake())  # nobody to wake any more

    trio.run(main)
    assert found == [0, False]


@pytest.mark.anyio
async def test_a_producers_send_end_is_made_not_reclassed_and_keeps_no_dict() -> None:
    # Made by its own class's constructor on anyio's channel state, like a subscriber's
    # ends: a re-classed instance materialises a ``__dict__`` (issue 18).
    send, receive = producer_pair(2)
    scope = anyio.CancelScope()
    with receive:
        assert producer_send_end(send, (scope,)) is send
        assert not any(type(obj) is dict for obj in gc.get_referents(send))
        await send.send("x")  # the first send is a scheduling point, then a fast one
        assert send.offer("y")
        assert [receive.receive_nowait(), receive.receive_nowait()] == ["x", "y"]
        scope.cancel()
        assert not send.offer("z")  # a stream scope cancelled: not sent without a pass
        assert receive.statistics().open_send_streams == 1
        send.close()
        assert receive.statistics().open_send_streams == 0
        assert not isinstance(receive, ParkingReceiveStream)


def _task_machinery() -> dict[str, int]:
    """Live anyio task-group machinery, by type (anyio's asyncio backend and its handle)."""
    gc.collect()
    found = {"TaskHandle": 0, "TaskGroup": 0, "CancelScope": 0, "TaskState": 0}
    for obj in gc.get_objects():
        kind = type(obj)
        if kind.__name__ in found and kind.__module__.startswith("anyio"):
            found[kind.__name__] += 1
    return found


@pytest.mark.anyio
async def test_an_open_hub_stream_under_asyncio_keeps_no_task_handle_or_anyio_group(
    anyio_backend: str,
) -> None:
    # Its tasks (the listener alone) in a native ``asyncio.TaskGroup`` inside one anyio
    # scope: no ``TaskHandle`` (a scope, an event with its deque, a wrapper coroutine) and no
    # anyio ``TaskGroup`` per stream (issue 18: 14 objects and 2.2 KB fewer on uvicorn).
    async with Broadcaster() as hub:
        app = app_for(lambda: EventSourceResponse(hub.stream("t"), ping=0))
        counts: list[dict[str, int]] = []
        with anyio.fail_after(10):
            async with contextlib.AsyncExitStack() as streams:
                for opened in (1, 6):
                    while hub.stats().total_subscribers < opened:
                        await streams.enter_async_context(open_event_stream(app, "/"))
                    await hub.publish("t", ServerSentEvent("x"))
                    counts.append(_task_machinery())
    per_stream = {kind: (counts[1][kind] - counts[0][kind]) / 5 for kind in counts[0]}
    # The in-process client's own, per stream on both loops: one handle, one anyio group
    # and two scopes. The stream's under asyncio: its group's scope and its host task's
    # state (``main``: a handle, a group, four scopes and two states); under trio none.
    client = {"TaskHandle": 1, "TaskGroup": 1, "CancelScope": 2, "TaskState": 0}
    stream = {"CancelScope": 1, "TaskState": 1} if anyio_backend == "asyncio" else {}
    assert per_stream == {kind: client[kind] + stream.get(kind, 0) for kind in client}
