"""Client disconnects and slow clients: cleanup runs, nothing outlives the response."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectSendStream

from trio_sse import EventSourceResponse, SendTimeoutError
from trio_sse.testing import open_event_stream

from .helpers import sse_app

pytestmark = pytest.mark.anyio

Send = MemoryObjectSendStream[Any]


async def test_disconnect_cancels_a_producer_that_never_sent() -> None:
    started = anyio.Event()
    cleaned_up = anyio.Event()

    async def producer(send: Send) -> None:
        async with send:
            try:
                started.set()
                await anyio.sleep_forever()
            finally:
                cleaned_up.set()

    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: producer)) as stream:
            await started.wait()
            stream.disconnect()
            await cleaned_up.wait()
            assert [event async for event in stream] == []
    assert not stream.complete  # a disconnected client is not sent the end of the body


async def test_disconnect_mid_stream_runs_cleanup_and_the_close_handler() -> None:
    cleaned_up = anyio.Event()
    handled: list[dict[str, Any]] = []

    async def producer(send: Send) -> None:
        try:
            async with send:
                number = 0
                while True:
                    await send.send(number)
                    number += 1
                    await anyio.sleep(0.001)
        finally:
            cleaned_up.set()

    async def on_close(message: dict[str, Any]) -> None:
        handled.append(message)

    app = sse_app(lambda: producer, client_close_handler_callable=on_close)
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            received = await stream.read_events(5)
        # Leaving the block disconnected and waited for the app: cleanup has run by now.
        assert cleaned_up.is_set()
    assert [event.data for event in received] == ["0", "1", "2", "3", "4"]
    assert handled == [{"type": "http.disconnect"}]


async def test_disconnect_closes_an_async_generator() -> None:
    closed = anyio.Event()

    async def numbers() -> AsyncIterator[int]:
        try:
            number = 0
            while True:
                yield number
                number += 1
        finally:
            closed.set()

    with anyio.fail_after(5):
        async with open_event_stream(sse_app(numbers, max_buffer_size=1)) as stream:
            await stream.read_events(3)
        assert closed.is_set()


async def test_disconnect_closes_a_sync_generator() -> None:
    import threading

    closed = threading.Event()

    def numbers() -> Iterator[int]:
        try:
            number = 0
            while True:
                yield number
                number += 1
        finally:
            closed.set()

    with anyio.fail_after(5):
        async with open_event_stream(sse_app(numbers, max_buffer_size=1)) as stream:
            await stream.read_events(3)
    assert closed.is_set()


async def test_no_task_outlives_the_response(anyio_backend: str) -> None:
    """After the ASGI call returns, the only tasks left are the test's own."""

    def task_count() -> int:
        if anyio_backend == "trio":
            import trio

            root = trio.lowlevel.current_root_task()
            assert root is not None

            def count(task: trio.lowlevel.Task) -> int:
                return 1 + sum(
                    count(child)
                    for nursery in task.child_nurseries
                    for child in nursery.child_tasks
                )

            return count(root)
        import asyncio

        return len(asyncio.all_tasks())

    async def producer(send: Send) -> None:
        async with send:
            while True:
                await send.send("tick")
                await anyio.sleep(0.001)

    before = task_count()
    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: producer, ping=0.001)) as stream:
            await stream.read_events(3)
            assert task_count() > before
    assert task_count() == before


async def test_send_timeout_against_a_client_that_stops_reading() -> None:
    cleaned_up = anyio.Event()

    async def producer(send: Send) -> None:
        try:
            async with send:
                while True:
                    await send.send("x" * 1000)
        finally:
            cleaned_up.set()

    app = sse_app(lambda: producer, send_timeout=0.05)
    with anyio.fail_after(5):
        with pytest.raises(SendTimeoutError):
            async with open_event_stream(app, max_buffered_messages=1):
                # Read nothing: the app's sends block once one message is buffered.
                await cleaned_up.wait()
    assert cleaned_up.is_set()


async def test_send_timeout_direct_asgi_raises_plain_exception() -> None:
    """The error leaves the ASGI call unwrapped (no exception group)."""

    async def producer(send: Send) -> None:
        async with send:
            await send.send("x")

    async def receive() -> MutableMapping[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    messages: list[str] = []

    async def stuck_send(message: MutableMapping[str, Any]) -> None:
        messages.append(message["type"])
        if message["type"] == "http.response.body":
            await anyio.sleep_forever()

    response = EventSourceResponse(producer, send_timeout=0.05)
    with anyio.fail_after(5):
        with pytest.raises(SendTimeoutError) as caught:
            await response(
                {"type": "http", "method": "GET", "path": "/", "headers": []}, receive, stuck_send
            )
    assert type(caught.value) is SendTimeoutError
    assert messages == ["http.response.start", "http.response.body"]


async def test_send_raising_oserror_is_a_disconnect() -> None:
    """ASGI 2.4 servers raise OSError from send once the client is gone."""
    cleaned_up = anyio.Event()

    async def producer(send: Send) -> None:
        try:
            async with send:
                while True:
                    await send.send("x")
        finally:
            cleaned_up.set()

    async def receive() -> MutableMapping[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    bodies = 0

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal bodies
        if message["type"] == "http.response.body":
            bodies += 1
            if bodies == 3:
                raise OSError("connection reset")

    response = EventSourceResponse(producer)
    with anyio.fail_after(5):
        await response({"type": "http", "method": "GET", "path": "/", "headers": []}, receive, send)
    assert cleaned_up.is_set()
    assert bodies == 3
