"""A stream's error paths that no other test reached (found by branch coverage).

Each failure of user code is logged on the ``trio_sse`` logger and the stream still ends
cleanly (``more_body: False``), never with a cut body or an exception out of the ASGI call:
a ping factory that raises, a farewell that cannot be encoded, a client-close handler that
raises, an item that cannot be encoded arriving while the writer waits, and an async
iterator whose ``aclose()`` outlives ``cleanup_timeout``.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectSendStream

from trio_sse import ServerSentEvent, ShutdownToken
from trio_sse.testing import open_event_stream

from .helpers import sse_app

pytestmark = pytest.mark.anyio

Sender = MemoryObjectSendStream[Any]


async def test_a_ping_factory_that_raises_ends_the_stream_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cancelled = anyio.Event()

    async def quiet(send: Sender) -> None:
        async with send:
            await send.send("before")
            try:
                await anyio.sleep_forever()
            finally:
                cancelled.set()

    def broken_ping() -> ServerSentEvent:
        raise RuntimeError("no ping today")

    caplog.set_level(logging.ERROR, logger="trio_sse")
    app = sse_app(lambda: quiet, ping=0.05, ping_message_factory=broken_ping)
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            events = [event.data async for event in stream]
            assert stream.complete
    assert events == ["before"]
    assert cancelled.is_set()  # the producer was cancelled, not left running
    assert "ping_message_factory failed" in caplog.text
    assert "no ping today" in caplog.text


async def test_a_farewell_that_cannot_be_encoded_is_logged_and_the_retry_hint_still_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = ShutdownToken()

    async def producer(send: Sender) -> None:
        async with send:
            await send.send("hello")
            await token.wait()

    caplog.set_level(logging.ERROR, logger="trio_sse")
    app = sse_app(
        lambda: producer,
        ping=0,
        shutdown=token,
        farewell={"event": "bye\nnow", "data": "x"},  # CR/LF in the event type: refused
        farewell_retry=1500,
    )
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            [hello] = await stream.read_events(1)
            token.trigger()
            rest = [event async for event in stream]
            assert stream.complete
    assert hello.data == "hello"
    assert rest == []  # no half-written farewell
    assert stream.retry == 1500
    assert "the shutdown farewell could not be encoded" in caplog.text


async def test_a_client_close_handler_that_raises_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    async def forever(send: Sender) -> None:
        async with send:
            await send.send("hi")
            await anyio.sleep_forever()

    async def handler(message: dict[str, Any]) -> None:
        seen.append(message["type"])
        raise RuntimeError("handler bug")

    caplog.set_level(logging.ERROR, logger="trio_sse")
    app = sse_app(lambda: forever, ping=0, client_close_handler_callable=handler)
    with anyio.fail_after(5):
        # Leaving disconnects: the handler runs, raises, and the ASGI call still returns.
        async with open_event_stream(app) as stream:
            assert [event.data for event in await stream.read_events(1)] == ["hi"]
    assert seen == ["http.disconnect"]
    assert "client_close_handler_callable raised" in caplog.text
    assert "handler bug" in caplog.text


async def test_a_bad_item_arriving_while_the_writer_waits_ends_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    go = anyio.Event()
    cancelled = anyio.Event()

    async def producer(send: Sender) -> None:
        async with send:
            await send.send("fine")
            await go.wait()  # the writer sent "fine" and waits for the next item
            await send.send({"colour": "red"})  # not a ServerSentEvent field
            try:
                await anyio.sleep_forever()
            finally:
                cancelled.set()

    caplog.set_level(logging.ERROR, logger="trio_sse")
    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: producer, ping=0)) as stream:
            [fine] = await stream.read_events(1)
            go.set()
            rest = [event async for event in stream]
            assert stream.complete
    assert (fine.data, rest) == ("fine", [])
    assert cancelled.is_set()
    assert "a stream item could not be encoded" in caplog.text


class SlowToClose:
    """An async iterator (a cursor, say) that yields one item, then waits, and whose
    ``aclose()`` would take 30 s."""

    def __init__(self) -> None:
        self.items = ["first"]
        self.closing = False

    def __aiter__(self) -> SlowToClose:
        return self

    async def __anext__(self) -> str:
        if self.items:
            return self.items.pop()
        await anyio.sleep_forever()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closing = True
        await anyio.sleep(30)


async def test_an_iterator_slow_to_close_is_abandoned_after_cleanup_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    content = SlowToClose()
    caplog.set_level(logging.WARNING, logger="trio_sse")
    app = sse_app(lambda: content, ping=0, cleanup_timeout=0.1)
    with anyio.fail_after(10):  # well under the 30 s aclose(): cleanup_timeout cut it short
        async with open_event_stream(app) as stream:
            [first] = await stream.read_events(1)
    assert first.data == "first"
    assert content.closing
    assert "closing the stream's async iterator timed out" in caplog.text
