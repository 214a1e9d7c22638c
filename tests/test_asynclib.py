"""The one place that tells trio from asyncio (``trio_sse._asynclib``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from trio_sse._asynclib import (
    current_asynclib,
    current_loop_caller,
    is_trio_channel,
    running_under_trio,
    trio_channel_exceptions,
)

from ._backends import BACKENDS
from .processes import child_env


@pytest.mark.anyio
async def test_the_kit_matches_the_running_loop(anyio_backend: str) -> None:
    lib = current_asynclib()
    assert lib.name == anyio_backend
    assert running_under_trio() == (anyio_backend == "trio")
    assert lib.quiet_passes == (2 if anyio_backend == "trio" else 1)
    before = anyio.current_time()
    now = lib.clock()
    assert before <= now <= anyio.current_time()  # the clock anyio reads


@pytest.mark.anyio
async def test_the_scheduling_pass_is_a_checkpoint() -> None:
    lib = current_asynclib()
    ran = False

    async def other() -> None:
        nonlocal ran
        ran = True

    async with anyio.create_task_group() as group:
        group.start_soon(other)
        # trio runs a batch in random order: the task may run after this one, in the same
        # batch; after ``quiet_passes`` passes it has run on either loop.
        for _ in range(lib.quiet_passes):
            await lib.schedule_pass()
        assert ran
    with anyio.CancelScope() as scope:
        scope.cancel()
        await lib.schedule_pass()
        pytest.fail("the pass did not deliver the cancellation")  # pragma: no cover
    assert scope.cancelled_caught


@pytest.mark.anyio
async def test_the_loop_caller_runs_a_callback_in_its_loop_from_another_thread() -> None:
    caller = current_loop_caller()
    loop_thread = threading.get_ident()
    ran_in: list[int] = []
    done = anyio.Event()

    def callback() -> None:
        ran_in.append(threading.get_ident())
        done.set()

    thread = threading.Thread(target=caller, args=(callback,))
    with anyio.fail_after(5):
        thread.start()
        await done.wait()
    thread.join(5)
    assert ran_in == [loop_thread]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_loop_caller_of_a_finished_loop_does_nothing(backend: str) -> None:
    async def get_caller() -> Any:
        return current_loop_caller()

    caller = anyio.run(get_caller, backend=backend)
    called: list[int] = []
    caller(lambda: called.append(1))  # the loop is gone: no error, nothing runs
    assert called == []


def test_outside_a_loop_there_is_no_kit() -> None:
    with pytest.raises(RuntimeError):
        current_asynclib()


# -- park / unpark -------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_wake_resumes_the_parked_task() -> None:
    parker = current_asynclib().parker()
    assert parker.wake() is False  # nobody parked yet
    woken = False

    async def sleeper() -> None:
        nonlocal woken
        await parker.wait()
        woken = True

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(sleeper)
            await anyio.wait_all_tasks_blocked()
            assert not woken
            assert parker.wake() is True
    assert woken
    assert parker.wake() is False  # woken once; nobody parked now


@pytest.mark.anyio
async def test_a_parked_task_is_cancellable_and_then_not_woken() -> None:
    parker = current_asynclib().parker()
    with anyio.fail_after(5):
        with anyio.move_on_after(0.01) as scope:
            await parker.wait()
    assert scope.cancelled_caught
    assert parker.wake() is False  # the cancelled task is not parked any more


@pytest.mark.anyio
async def test_parking_is_a_scheduling_point() -> None:
    parker = current_asynclib().parker()
    ran = False

    async def other() -> None:
        nonlocal ran
        ran = True
        parker.wake()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(other)
            await parker.wait()
    assert ran


# -- trio channels, recognised without importing trio ---------------------------------------------


@pytest.mark.anyio
async def test_trio_channels_are_recognised(anyio_backend: str) -> None:
    send, receive = anyio.create_memory_object_stream[int](1)
    with send, receive:
        assert not is_trio_channel(receive)
    if anyio_backend != "trio":
        return
    import trio

    trio_send, trio_receive = trio.open_memory_channel[int](1)
    with trio_send, trio_receive:
        assert is_trio_channel(trio_receive)
        assert not is_trio_channel(trio_send)
    would_block, ends = trio_channel_exceptions()
    assert would_block is trio.WouldBlock
    assert ends == (trio.EndOfChannel, trio.ClosedResourceError)


_NO_TRIO_SCRIPT = textwrap.dedent(
    """
    import asyncio
    import sys

    import anyio
    from starlette.applications import Starlette
    from starlette.routing import Route

    from trio_sse import Broadcaster, EventSourceResponse, ShutdownToken
    from trio_sse.testing import open_event_stream


    async def main() -> None:
        token = ShutdownToken()
        async with Broadcaster() as hub:

            async def producer(send):
                async with send:
                    await send.send("up")
                    await token.wait()  # a watcher: the token's loop caller

            async def produced(request):
                return EventSourceResponse(producer, shutdown=token)

            async def subscribed(request):
                return EventSourceResponse(hub.stream("t"))  # a parked subscriber

            app = Starlette(routes=[Route("/", produced), Route("/sub", subscribed)])
            with anyio.fail_after(10):
                async with open_event_stream(app) as first, open_event_stream(app, "/sub") as sub:
                    await first.read_events(1)
                    await anyio.wait_all_tasks_blocked()
                    await hub.publish("t", "x")
                    assert [event.data for event in await sub.read_events(1)] == ["x"]
                    token.trigger()
                    assert [event async for event in first] == []
        print(sorted(name for name in sys.modules if name.partition(".")[0] == "trio"))


    asyncio.run(main())
    """
)


def test_an_asyncio_app_never_imports_trio() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _NO_TRIO_SCRIPT],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=child_env(),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
