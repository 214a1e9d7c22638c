"""A stream's native asyncio task group (``_asyncio_group``, issue 18) behaves as anyio's.

Each group-level test runs with ``shields=True`` (anyio's group under asyncio) and
``shields=False`` (the native one under asyncio) on both loops, and asserts the same
outcome: the group's own cancellation, a cancellation from outside, a task's error, the
context its tasks see. The one difference, a shield inside a task, is pinned too, with the
streams that therefore keep anyio's group. Under trio both are the same nursery.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import warnings
from collections.abc import Callable, MutableMapping
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import pytest

from trio_sse import Broadcaster, EventSourceResponse, ServerSentEvent, ShutdownToken
from trio_sse._asyncio_group import AsyncioTaskGroup
from trio_sse._asynclib import current_asynclib
from trio_sse._stream import Connection
from trio_sse.testing import open_event_stream

from .helpers import app_for

SHIELDS = [True, False]
_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("test_asyncio_group", default="-")


def _cancelling(anyio_backend: str) -> int:
    """The current asyncio task's pending cancellation requests (0 under trio)."""
    if anyio_backend != "asyncio":
        return 0
    task = asyncio.current_task()
    assert task is not None
    return task.cancelling()


@pytest.mark.anyio
@pytest.mark.parametrize("shields", SHIELDS)
@pytest.mark.parametrize("who", ["body", "task"])
async def test_the_groups_own_cancellation_ends_the_body_and_the_tasks(
    anyio_backend: str, shields: bool, who: str
) -> None:
    ended: list[str] = []
    before = _cancelling(anyio_backend)

    async def sleeper(name: str) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            ended.append(name)

    async def canceller(group: Any) -> None:
        group.cancel_scope.cancel()

    with anyio.fail_after(5):
        async with current_asynclib().task_group(shields=shields) as group:
            group.start_soon(sleeper, "a")
            group.start_soon(sleeper, "b")
            await anyio.lowlevel.checkpoint()
            if who == "body":
                group.cancel_scope.cancel()
            else:
                group.start_soon(canceller, group)
            try:
                await anyio.sleep_forever()
            finally:
                ended.append("body")
    assert sorted(ended) == ["a", "b", "body"]
    assert group.cancel_scope.cancel_called
    assert _cancelling(anyio_backend) == before


@pytest.mark.anyio
@pytest.mark.parametrize("shields", SHIELDS)
async def test_a_deadline_from_outside_ends_everything_and_is_caught_outside(
    anyio_backend: str, shields: bool
) -> None:
    ended: list[str] = []
    caught: list[BaseException] = []
    before = _cancelling(anyio_backend)

    async def sleeper() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            ended.append("task")

    with anyio.fail_after(5):
        with anyio.move_on_after(0.02) as outer:
            try:
                async with current_asynclib().task_group(shields=shields) as group:
                    group.start_soon(sleeper)
                    await anyio.sleep_forever()
            except BaseException as exc:
                caught.append(exc)
                raise
    assert outer.cancelled_caught and ended == ["task"]
    assert [type(exc) for exc in caught] == [anyio.get_cancelled_exc_class()]  # bare
    assert _cancelling(anyio_backend) == before


@pytest.mark.anyio
@pytest.mark.parametrize("shields", SHIELDS)
async def test_a_server_cancelling_the_task_ends_everything(
    anyio_backend: str, shields: bool
) -> None:
    ended: list[str] = []
    caught: list[type[BaseException]] = []
    started = anyio.Event()

    async def call() -> None:  # the ASGI task
        async def sleeper() -> None:
            try:
                await anyio.sleep_forever()
            finally:
                ended.append("task")

        try:
            async with current_asynclib().task_group(shields=shields) as group:
                group.start_soon(sleeper)
                started.set()
                await anyio.sleep_forever()
        except BaseException as exc:
            caught.append(type(exc))
            raise

    with anyio.fail_after(5):
        if anyio_backend == "asyncio":  # as uvicorn does: ``Task.cancel()``
            async with asyncio.TaskGroup() as server:
                task = server.create_task(call())
                await started.wait()
                task.cancel()
            assert task.cancelled()
        else:
            async with anyio.create_task_group() as nursery:
                nursery.start_soon(call)
                await started.wait()
                nursery.cancel_scope.cancel()
    assert ended == ["task"]
    assert caught == [anyio.get_cancelled_exc_class()]


@pytest.mark.anyio
@pytest.mark.parametrize("shields", SHIELDS)
@pytest.mark.parametrize("when", ["in the body", "while leaving"])
async def test_a_tasks_error_cancels_the_rest_and_comes_out_as_from_anyio(
    anyio_backend: str, shields: bool, when: str
) -> None:
    ended: list[str] = []
    before = _cancelling(anyio_backend)
    leaving = anyio.Event()

    async def fails() -> None:
        if when == "while leaving":
            await leaving.wait()
            await anyio.lowlevel.checkpoint()  # the body has left by now
        raise ValueError("boom")

    async def sleeper() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            ended.append("task")

    async def run() -> None:
        async with current_asynclib().task_group(shields=shields) as group:
            group.start_soon(sleeper)
            group.start_soon(fails)
            if when == "while leaving":
                leaving.set()
                return
            try:
                await anyio.sleep_forever()
            finally:
                ended.append("body")

    with anyio.fail_after(5), pytest.raises(BaseExceptionGroup) as info:
        await run()
    group = info.value
    assert type(group) is ExceptionGroup
    if anyio_backend == "asyncio":  # anyio's words and the native group's (trio: its own)
        assert group.message == "unhandled errors in a TaskGroup"
    assert [type(exc) for exc in group.exceptions] == [ValueError]
    assert sorted(ended) == (["task"] if when == "while leaving" else ["body", "task"])
    assert _cancelling(anyio_backend) == before  # (CPython 3.11 would leave it at 1)
    await anyio.lowlevel.checkpoint()  # and it is not cancelled afterwards


@pytest.mark.anyio
@pytest.mark.parametrize("shields", SHIELDS)
async def test_a_shield_in_a_task_holds_in_anyios_group_only(
    anyio_backend: str, shields: bool
) -> None:
    # Why a stream whose tasks run user code (or the producer's grace shield) keeps
    # anyio's group: the native group cancels with ``Task.cancel()``, past any shield.
    done: list[str] = []

    async def shielded() -> None:
        with anyio.CancelScope(shield=True):
            await anyio.sleep(0.05)
            done.append("cleanup")

    with anyio.fail_after(5):
        async with current_asynclib().task_group(shields=shields) as group:
            group.start_soon(shielded)
            await anyio.lowlevel.checkpoint()
            group.cancel_scope.cancel()
    native = anyio_backend == "asyncio" and not shields
    assert done == ([] if native else ["cleanup"])


@pytest.mark.anyio
@pytest.mark.parametrize("shields", SHIELDS)
async def test_tasks_run_in_a_copy_of_the_callers_context(shields: bool) -> None:
    seen: list[str] = []

    async def task() -> None:
        seen.append(_VAR.get())
        _VAR.set("child")

    reset = _VAR.set("caller")
    try:
        async with current_asynclib().task_group(shields=shields) as group:
            group.start_soon(task)
            _VAR.set("later")  # after the start: not seen
    finally:
        assert _VAR.get() == "later"
        _VAR.reset(reset)
    assert seen == ["caller"]


@pytest.mark.anyio
async def test_a_task_started_once_the_native_group_is_left_is_refused_quietly() -> None:
    async with current_asynclib().task_group(shields=False) as group:
        pass
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError):
            group.start_soon(anyio.sleep_forever)
        gc.collect()
    assert [str(warning.message) for warning in caught] == []  # no unawaited coroutine


@pytest.mark.anyio
async def test_the_kit_gives_a_native_group_only_without_a_task_factory(
    anyio_backend: str,
) -> None:
    lib = current_asynclib()
    native = lib.task_group(shields=False)
    assert isinstance(native, AsyncioTaskGroup) == (anyio_backend == "asyncio")
    assert not isinstance(lib.task_group(), AsyncioTaskGroup)
    if anyio_backend != "asyncio":
        return
    loop = asyncio.get_running_loop()

    def factory(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
        return asyncio.Task(coro, loop=loop)

    loop.set_task_factory(factory)  # (an eager one would start a task inside start_soon)
    try:
        assert isinstance(lib.task_group(shields=False), anyio.abc.TaskGroup)
    finally:
        loop.set_task_factory(None)


def _connections() -> list[Connection]:
    gc.collect()
    return [obj for obj in gc.get_objects() if type(obj) is Connection]


async def _producer(send: Any) -> None:
    async with send:
        await send.send(ServerSentEvent("x"))
        await anyio.sleep_forever()


async def _data_sender() -> None:
    await anyio.sleep_forever()


async def _on_close(message: object) -> None:
    pass


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["hub", "producer", "data_sender", "close_handler"])
async def test_only_a_stream_whose_tasks_run_no_user_code_gets_the_native_group(
    anyio_backend: str, kind: str
) -> None:
    async with Broadcaster() as hub:

        def response() -> EventSourceResponse:
            content = _producer if kind == "producer" else hub.stream("t")
            options: dict[str, Any] = {}
            if kind == "data_sender":
                options["data_sender_callable"] = _data_sender
            if kind == "close_handler":
                options["client_close_handler_callable"] = _on_close
            return EventSourceResponse(content, ping=0, **options)

        with anyio.fail_after(10):
            async with open_event_stream(app_for(response), "/") as stream:
                if kind != "producer":
                    await hub.publish("t", ServerSentEvent("x"))
                assert [event.data for event in await stream.read_events(1)] == ["x"]
                (connection,) = _connections()
                group = connection._group
    if anyio_backend == "trio":
        assert type(group).__name__ == "_TrioTaskGroup"
    elif kind == "hub":
        assert type(group) is AsyncioTaskGroup
    else:
        assert isinstance(group, anyio.abc.TaskGroup)


Message = MutableMapping[str, Any]


async def _call(
    response: EventSourceResponse, receive: Callable[[], Any], sent: list[Message]
) -> None:
    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await response(scope, receive, send)


@pytest.mark.anyio
async def test_a_deadline_from_outside_still_finishes_a_native_groups_body(
    anyio_backend: str,
) -> None:
    # The server's own timer, as hypercorn's: the body is finished, then it is cancelled.
    send_end, receive_end = anyio.create_memory_object_stream[Any](4)
    send_end.send_nowait(ServerSentEvent("x"))
    sent: list[Message] = []
    before = _cancelling(anyio_backend)

    async def receive() -> Message:
        await anyio.sleep_forever()
        raise AssertionError

    with anyio.fail_after(5):
        with anyio.move_on_after(0.05) as outer:
            await _call(EventSourceResponse(receive_end, ping=0), receive, sent)
    send_end.close()
    assert outer.cancelled_caught
    assert b"data: x" in b"".join(message.get("body", b"") for message in sent)
    assert sent[-1]["more_body"] is False
    assert _cancelling(anyio_backend) == before


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["disconnect", "end", "shutdown"])
async def test_no_task_outlives_the_streams(anyio_backend: str, how: str) -> None:
    before = asyncio.all_tasks() if anyio_backend == "asyncio" else set()
    token = ShutdownToken()
    async with Broadcaster() as hub:

        def response() -> EventSourceResponse:
            if how == "end":  # a channel that ends by itself
                send_end, receive_end = anyio.create_memory_object_stream[Any](1)
                with send_end:
                    send_end.send_nowait(ServerSentEvent("x"))
                return EventSourceResponse(receive_end, ping=0.01)
            return EventSourceResponse(
                hub.stream("t"), ping=0.01, shutdown=token, shutdown_grace_period=0
            )

        with anyio.fail_after(10):
            async with anyio.create_task_group() as streams:
                for _ in range(3):
                    streams.start_soon(_one_stream, app_for(response), hub, how, token)
    with anyio.fail_after(5):
        while _connections():
            await anyio.lowlevel.checkpoint()
    if anyio_backend == "asyncio":
        assert asyncio.all_tasks() == before


async def _one_stream(app: Any, hub: Broadcaster, how: str, token: ShutdownToken) -> None:
    async with open_event_stream(app, "/") as stream:
        if how != "end":
            while not hub.stats().total_subscribers:
                await anyio.lowlevel.checkpoint()
            await hub.publish("t", ServerSentEvent("x"))
        assert [event.data for event in await stream.read_events(1)] == ["x"]
        if how == "shutdown":
            token.trigger()
        if how != "disconnect":
            async for event in stream:  # it ends by itself (the others' events before)
                assert event.data == "x"
