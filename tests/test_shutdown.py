"""ShutdownToken on its own, and responses bound to one: cooperative and forced phases."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import MutableMapping
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from anyio.streams.memory import MemoryObjectSendStream

from trio_sse import (
    EventSourceResponse,
    ServerSentEvent,
    ShutdownToken,
    current_shutdown_token,
    default_shutdown_token,
)
from trio_sse.testing import open_event_stream

from .helpers import sse_app

pytestmark = pytest.mark.anyio

Send = MemoryObjectSendStream[Any]


async def test_trigger_is_idempotent_and_keeps_the_first_reason() -> None:
    token = ShutdownToken()
    before = token.triggered
    token.trigger("first")
    token.trigger("second")
    assert (before, token.triggered) == (False, True)
    assert token.reason == "first"
    with anyio.fail_after(1):
        await token.wait()


async def test_wait_wakes_on_trigger_from_the_same_loop() -> None:
    token = ShutdownToken()
    woken = anyio.Event()

    async def waiter() -> None:
        await token.wait()
        woken.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await anyio.sleep(0.01)
            assert not woken.is_set()
            token.trigger()
    assert woken.is_set()


async def test_trigger_from_another_thread_wakes_waiters() -> None:
    token = ShutdownToken()

    def trigger_later() -> None:
        threading.Timer(0.05, token.trigger, args=("thread",)).start()

    with anyio.fail_after(5):
        trigger_later()
        await token.wait()
    assert token.reason == "thread"


async def test_trigger_from_a_signal_handler() -> None:
    token = ShutdownToken()
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: token.trigger(signum))
    try:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(token.wait)
                await anyio.sleep(0.01)
                os.kill(os.getpid(), signal.SIGUSR1)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert token.reason == signal.SIGUSR1


async def test_wait_is_cancellable_and_leaves_no_watcher() -> None:
    token = ShutdownToken()
    with anyio.move_on_after(0.01):
        await token.wait()
    assert not token._watchers


async def test_child_triggers_with_parent_or_alone() -> None:
    parent = ShutdownToken()
    first, second = parent.child(), parent.child()
    first.trigger("alone")
    states = (first.triggered, parent.triggered, second.triggered)
    assert states == (True, False, False)
    parent.trigger("all")
    assert (second.triggered, second.reason) == (True, "all")
    assert first.reason == "alone"
    late = parent.child()
    assert late.triggered and late.reason == "all"


async def test_default_token_and_current_token_outside_a_stream() -> None:
    assert isinstance(default_shutdown_token(), ShutdownToken)
    assert current_shutdown_token() is default_shutdown_token()


async def test_cooperative_phase_producer_says_goodbye() -> None:
    token = ShutdownToken()
    seen_tokens: list[ShutdownToken] = []
    shutdown_event = anyio.Event()

    async def producer(send: Send) -> None:
        seen_tokens.append(current_shutdown_token())
        async with send:
            await send.send("hello")
            await current_shutdown_token().wait()
            await send.send(ServerSentEvent("bye", event="shutdown"))

    app = sse_app(
        lambda: producer, shutdown=token, shutdown_event=shutdown_event, shutdown_grace_period=5
    )
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            await stream.read_events(1)
            token.trigger()
            rest = [event async for event in stream]
    assert rest == [ServerSentEvent("bye", event="shutdown")]
    assert stream.complete
    assert shutdown_event.is_set()
    assert seen_tokens == [token]


async def test_shutdown_event_with_async_generator_like_sse_starlette() -> None:
    token = ShutdownToken()
    shutdown_event = anyio.Event()

    async def ticks() -> Any:
        yield "tick"
        await shutdown_event.wait()
        yield {"event": "farewell", "data": "bye"}

    app = sse_app(ticks, shutdown=token, shutdown_event=shutdown_event, shutdown_grace_period=5)
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            await stream.read_events(1)
            token.trigger()
            rest = [event async for event in stream]
    assert rest == [ServerSentEvent("bye", event="farewell")]
    assert stream.complete


async def test_forced_phase_cancels_a_producer_that_ignores_the_token() -> None:
    token = ShutdownToken()
    cleaned_up = anyio.Event()

    async def producer(send: Send) -> None:
        try:
            async with send:
                await send.send("working")
                await anyio.sleep_forever()
        finally:
            cleaned_up.set()

    app = sse_app(lambda: producer, shutdown=token, shutdown_grace_period=0.1)
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            await stream.read_events(1)
            token.trigger()
            assert [event async for event in stream] == []
            assert stream.complete
            await cleaned_up.wait()


async def test_zero_grace_ends_at_once_even_while_events_keep_coming() -> None:
    token = ShutdownToken()

    async def producer(send: Send) -> None:
        async with send:
            while True:
                await send.send("busy")

    app = sse_app(lambda: producer, shutdown=token)
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            await stream.read_events(1)
            token.trigger()
            async for _ in stream:
                pass
    assert stream.complete


async def test_token_already_triggered_ends_new_streams_cleanly() -> None:
    token = ShutdownToken()
    token.trigger()

    async def producer(send: Send) -> None:
        async with send:
            await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: producer, shutdown=token)) as stream:
            assert [event async for event in stream] == []
    assert stream.complete


async def test_trigger_from_a_thread_ends_many_streams() -> None:
    token = ShutdownToken()
    cleaned = 0

    async def producer(send: Send) -> None:
        nonlocal cleaned
        try:
            async with send:
                await send.send("up")
                await anyio.sleep_forever()
        finally:
            cleaned += 1

    app = sse_app(lambda: producer, shutdown=token)
    completes: list[bool] = []

    async def client() -> None:
        async with open_event_stream(app) as stream:
            await stream.read_events(1)
            async for _ in stream:
                pass
        completes.append(stream.complete)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            for _ in range(20):
                group.start_soon(client)
            await anyio.sleep(0.05)
            await anyio.to_thread.run_sync(token.trigger)
    assert completes == [True] * 20
    assert cleaned == 20


async def test_child_token_drains_one_part_alone() -> None:
    parent = ShutdownToken()
    part = parent.child()

    async def producer(send: Send) -> None:
        async with send:
            await send.send("up")
            await anyio.sleep_forever()

    drained = sse_app(lambda: producer, shutdown=part)
    untouched = sse_app(lambda: producer, shutdown=parent)
    with anyio.fail_after(5):
        async with open_event_stream(drained) as first, open_event_stream(untouched) as second:
            await first.read_events(1)
            await second.read_events(1)
            part.trigger()
            assert [event async for event in first] == []
            assert first.complete
            assert not second.complete
            with anyio.move_on_after(0.05):
                await second.read_events(1)
            assert not second.ended


async def test_responses_default_to_the_process_wide_token(monkeypatch: pytest.MonkeyPatch) -> None:
    import trio_sse._shutdown as shutdown_module

    fresh = ShutdownToken()
    monkeypatch.setattr(shutdown_module, "_default_token", fresh)
    seen: list[ShutdownToken] = []

    async def producer(send: Send) -> None:
        seen.append(current_shutdown_token())
        async with send:
            await send.send("up")
            await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: producer)) as stream:
            await stream.read_events(1)
            default_shutdown_token().trigger()
            assert [event async for event in stream] == []
    assert stream.complete
    assert seen == [fresh]


def test_response_is_built_without_a_running_loop() -> None:
    response = EventSourceResponse(["x"], shutdown=ShutdownToken())
    assert response.shutdown is not None


async def test_farewell_is_sent_when_the_producer_ends_on_seeing_the_token() -> None:
    """The producer may close its channel before the token's wake-up reaches the stream."""
    farewell = ServerSentEvent("bye", event="shutdown")

    async def producer(send: Send) -> None:
        async with send:
            await send.send("up")
            while not current_shutdown_token().triggered:
                await anyio.lowlevel.checkpoint()

    with anyio.fail_after(10):
        for _ in range(30):
            token = ShutdownToken()
            app = sse_app(
                lambda: producer, shutdown=token, farewell=farewell, shutdown_grace_period=5
            )
            async with open_event_stream(app) as stream:
                await stream.read_events(1)
                token.trigger()
                rest = [event async for event in stream]
            assert rest == [farewell]


async def test_disconnect_after_the_token_triggered_is_shutdown_not_the_client_leaving() -> None:
    # Issue 12: uvicorn 0.43-0.44 deliver http.disconnect to running responses at shutdown.
    # One that arrives after the token triggered starts the cooperative phase and the stream
    # ends with its farewell, instead of being cut as if the client had left.
    token = ShutdownToken()
    farewell = ServerSentEvent("bye", event="shutdown")
    first_body = anyio.Event()
    disconnect = anyio.Event()
    producer_cancelled = anyio.Event()
    closed: list[dict[str, Any]] = []
    receive_calls = 0

    async def producer(send: Send) -> None:
        async with send:
            await send.send("up")
            try:
                await anyio.sleep_forever()  # ignores the token: cancelled after the grace
            finally:
                producer_cancelled.set()

    async def on_close(message: dict[str, Any]) -> None:
        closed.append(message)

    response = EventSourceResponse(
        producer,
        shutdown=token,
        shutdown_grace_period=0.2,
        farewell=farewell,
        farewell_retry=3000,
        client_close_handler_callable=on_close,
    )
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        nonlocal receive_calls
        receive_calls += 1
        await disconnect.wait()
        return {"type": "http.disconnect"}  # as uvicorn: again at every later call

    async def asgi_send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message.get("body"):
            first_body.set()

    async def server_shutdown() -> None:
        await first_body.wait()
        token.trigger("server stopping")
        disconnect.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(server_shutdown)
            await response(
                {"type": "http", "method": "GET", "path": "/", "headers": []}, receive, asgi_send
            )
    bodies = [message["body"] for message in sent[1:]]
    assert bodies[0] == b"data: up\r\n\r\n"
    assert bodies[-1] == farewell.encode() + b"retry: 3000\r\n\r\n"
    assert sent[-1]["more_body"] is False
    assert producer_cancelled.is_set()
    assert closed == []  # not a client leaving
    assert receive_calls == 1  # no second receive: it would return the disconnect at once


async def test_pings_go_on_after_a_shutdown_disconnect_during_the_grace_period() -> None:
    # The listener stops receiving after a disconnect that means shutdown, but keeps the ping
    # timer: a long grace period is not silent.
    token = ShutdownToken()
    disconnect = anyio.Event()

    async def producer(send: Send) -> None:
        async with send:
            await send.send("up")
            await anyio.sleep_forever()

    response = EventSourceResponse(producer, shutdown=token, shutdown_grace_period=0.5, ping=0.05)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        await disconnect.wait()
        return {"type": "http.disconnect"}

    async def asgi_send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message.get("body") == b"data: up\r\n\r\n":
            token.trigger()
            disconnect.set()

    with anyio.fail_after(5):
        await response(
            {"type": "http", "method": "GET", "path": "/", "headers": []}, receive, asgi_send
        )
    bodies = [message["body"] for message in sent[1:]]
    assert bodies[0] == b"data: up\r\n\r\n"
    assert b": ping\r\n\r\n" in bodies[1:-1]
    assert sent[-1]["more_body"] is False
