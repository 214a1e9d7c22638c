"""A ``DirectSource``'s channel (``hub.stream``) is left as ``async with`` would leave it.

The response enters and leaves it by hand (issue 18: no ``AsyncExitStack`` kept per open
stream); these tests pin that leaving it is told what ended the stream: a cancellation from
outside still reaches the caller (and unsubscribes), and a context manager that handles the
stream's error is obeyed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream

from trio_sse import Broadcaster, EventSourceResponse, SendTimeoutError
from trio_sse._channels import DirectSource

pytestmark = pytest.mark.anyio

_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
    "headers": [],
}


async def _never() -> dict[str, Any]:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")  # pragma: no cover


async def test_a_cancelled_hub_stream_unsubscribes_and_the_cancellation_goes_on() -> None:
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    reached_the_end: list[bool] = []
    async with Broadcaster() as hub:
        response = EventSourceResponse(hub.stream("t"), ping=0)

        async def serve() -> None:
            await response(_SCOPE, _never, send)
            reached_the_end.append(True)  # pragma: no cover (cancelled: never)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(serve)
                while hub.stats().total_subscribers == 0 or not sent:
                    await anyio.lowlevel.checkpoint()
                group.cancel_scope.cancel()
            assert hub.stats().total_subscribers == 0
    assert reached_the_end == []
    assert sent[0]["type"] == "http.response.start"
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_a_channel_manager_that_handles_the_streams_error_is_obeyed() -> None:
    handled: list[BaseException] = []

    @contextlib.asynccontextmanager
    async def open_channel() -> AsyncIterator[MemoryObjectReceiveStream[Any]]:
        send_end, receive_end = anyio.create_memory_object_stream[Any](4)
        with send_end, receive_end:
            send_end.send_nowait("x")
            try:
                yield receive_end
            except SendTimeoutError as exc:  # handled here: the response returns normally
                handled.append(exc)

    async def stuck_send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            await anyio.sleep_forever()

    response = EventSourceResponse(DirectSource(open_channel), ping=0, send_timeout=0.05)
    with anyio.fail_after(10):
        await response(_SCOPE, _never, stuck_send)
    assert [type(exc) for exc in handled] == [SendTimeoutError]
