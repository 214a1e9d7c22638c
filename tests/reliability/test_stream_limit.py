"""``StreamLimit``: a cap on concurrent streams that answers 503 + ``Retry-After`` when full.

In-process (``open_event_stream``, trio and asyncio): the N+1th stream is turned away before
any header of a stream is sent and its content is never started; a slot is given back however
the stream ended (end of content, client gone, producer error, send timeout, shutdown,
cancellation from outside); the middleware and the explicit option; ``on_full="retry"``.
On a real server: the N+1th client gets 503, and once one leaves a new one is admitted.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from trio_sse import (
    STREAM_LIMIT_SCOPE_KEY,
    EventDecoder,
    EventSourceResponse,
    SendTimeoutError,
    ServerSentEvent,
    ShutdownToken,
    StreamLimit,
    StreamLimitMiddleware,
)
from trio_sse.testing import EventStream, open_event_stream

from ._support import Server, read_head, reliability_server, request_bytes, until

pytestmark = pytest.mark.anyio

Send = MemoryObjectSendStream[Any]


class Started:
    count = 0


async def forever(send: Send) -> None:
    Started.count += 1
    async with send:
        await send.send(ServerSentEvent("admitted"))
        await anyio.sleep_forever()


def limited_app(**middleware: Any) -> Starlette:
    """``/``: a stream that sends "admitted" and stays; ``/plain``: not a stream."""

    async def events(request: Request) -> Response:
        return EventSourceResponse(forever)

    async def plain(request: Request) -> Response:
        return PlainTextResponse("not a stream")

    return Starlette(
        routes=[Route("/", events, methods=["GET", "HEAD"]), Route("/plain", plain)],
        middleware=[Middleware(StreamLimitMiddleware, **middleware)],
    )


async def read_body(stream: EventStream) -> bytes:
    return b"".join([chunk async for chunk in stream.iter_bytes()])


# -- the counter --------------------------------------------------------------------------------


def test_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="max_streams"):
        StreamLimit("10")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_streams"):
        StreamLimit(True)
    with pytest.raises(ValueError, match="max_streams"):
        StreamLimit(-1)
    with pytest.raises(ValueError, match="retry_after"):
        StreamLimit(1, retry_after=-1)
    # A wrong type is a TypeError, a bad value a ValueError, both named (issue 12).
    with pytest.raises(TypeError, match=r"retry_after must be an int .*got 1.5"):
        StreamLimit(1, retry_after=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_full must be one of 'reject', 'retry', got 'drop'"):
        StreamLimit(1, on_full="drop")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"on_full .*got None"):
        StreamLimit(1, on_full=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="limit must be a StreamLimit, got 3"):
        StreamLimitMiddleware(limited_app(max_streams=1), limit=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="max_streams= or limit="):
        StreamLimitMiddleware(limited_app(max_streams=1))
    with pytest.raises(TypeError, match="not both"):
        StreamLimitMiddleware(limited_app(max_streams=1), max_streams=1, limit=StreamLimit(1))
    with pytest.raises(TypeError, match="stream_limit"):
        EventSourceResponse(forever, stream_limit=3)  # type: ignore[arg-type]


def test_counter_and_release_past_zero() -> None:
    limit = StreamLimit(2, retry_after=None)
    assert (limit.try_acquire(), limit.try_acquire(), limit.try_acquire()) == (True, True, False)
    assert (limit.active, limit.rejected, limit.retry_after) == (2, 1, None)
    limit.release()
    assert limit.try_acquire()
    limit.release()
    limit.release()
    with pytest.raises(RuntimeError, match="more times"):
        limit.release()
    assert "0/2 active, 1 rejected" in repr(limit)
    assert not StreamLimit(0).try_acquire()


def test_counter_is_thread_safe() -> None:
    limit = StreamLimit(5)
    peak = 0
    errors: list[str] = []

    def hammer() -> None:
        nonlocal peak
        for _ in range(20_000):
            if limit.try_acquire():
                active = limit.active
                if active > 5:
                    errors.append(f"{active} active")
                peak = max(peak, active)
                limit.release()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert limit.active == 0
    assert 1 <= peak <= 5


# -- in-process ---------------------------------------------------------------------------------


async def test_the_next_stream_gets_503_until_one_leaves() -> None:
    limit = StreamLimit(2, retry_after=7)
    app = limited_app(limit=limit)
    Started.count = 0
    with anyio.fail_after(10):
        async with open_event_stream(app) as first:
            async with open_event_stream(app) as second:
                assert (await first.read_events(1))[0].data == "admitted"
                assert (await second.read_events(1))[0].data == "admitted"
                async with open_event_stream(app) as third:
                    assert third.status_code == 503
                    assert third.headers["retry-after"] == "7"
                    assert third.headers["content-type"] == "text/plain; charset=utf-8"
                    assert third.headers["cache-control"] == "no-store"
                    assert await read_body(third) == b"Too many event streams; retry later.\n"
                    assert third.complete
                async with open_event_stream(app, method="HEAD") as head:
                    assert head.status_code == 503
                    assert await read_body(head) == b""
                # Ordinary requests are never counted.
                async with open_event_stream(app, "/plain") as plain:
                    assert plain.status_code == 200
                assert (limit.active, limit.rejected, Started.count) == (2, 2, 2)
            assert limit.active == 1
            async with open_event_stream(app) as again:
                assert again.status_code == 200
                assert (await again.read_events(1))[0].data == "admitted"
                assert limit.active == 2
        assert limit.active == 0
        async with open_event_stream(app, method="HEAD") as head:
            assert head.status_code == 200
    assert limit.active == 0
    assert Started.count == 3


async def test_explicit_option_wins_over_the_middleware() -> None:
    own = StreamLimit(0, retry_after=1)

    async def events(request: Request) -> Response:
        return EventSourceResponse(forever, stream_limit=own)

    app = Starlette(
        routes=[Route("/", events)],
        middleware=[Middleware(StreamLimitMiddleware, max_streams=100)],
    )
    with anyio.fail_after(10):
        async with open_event_stream(app) as stream:
            assert stream.status_code == 503
            assert stream.headers["retry-after"] == "1"
    assert own.rejected == 1


async def test_middleware_copies_the_scope() -> None:
    seen: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope.get(STREAM_LIMIT_SCOPE_KEY))

    limit = StreamLimit(1)
    middleware = StreamLimitMiddleware(inner, limit=limit)
    scope: dict[str, Any] = {"type": "http"}

    async def nothing() -> Any:
        return {}

    async def ignore(message: Any) -> None:
        pass

    await middleware(scope, nothing, ignore)
    assert seen == [limit]
    assert STREAM_LIMIT_SCOPE_KEY not in scope
    await middleware({"type": "lifespan"}, nothing, ignore)  # passed through untouched
    assert seen == [limit, None]


async def test_retry_mode_lets_an_eventsource_come_back_by_itself() -> None:
    limit = StreamLimit(0, retry_after=2, on_full="retry")

    async def events(request: Request) -> Response:
        return EventSourceResponse(forever, stream_limit=limit)

    app = Starlette(routes=[Route("/", events)])
    with anyio.fail_after(10):
        async with open_event_stream(app) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert stream.headers["retry-after"] == "2"
            decoder = EventDecoder(comments=True)
            events_seen = decoder.feed(await read_body(stream))
            assert stream.complete
    assert [event.comment for event in events_seen] == ["too many event streams"]
    assert decoder.retry is not None and 2000 <= decoder.retry <= 3000


async def test_rejected_channel_content_is_closed() -> None:
    limit = StreamLimit(0)
    send, receive = anyio.create_memory_object_stream[object](1)

    async def events(request: Request) -> Response:
        return EventSourceResponse(receive, stream_limit=limit)

    with anyio.fail_after(10):
        async with open_event_stream(Starlette(routes=[Route("/", events)])) as stream:
            assert stream.status_code == 503
    with pytest.raises(anyio.BrokenResourceError):
        send.send_nowait("nobody listens")
    send.close()


# -- the slot is given back, however the stream ends -------------------------------------------


async def _ends_by_itself(send: Send) -> None:
    async with send:
        await send.send("one")


async def _raises(send: Send) -> None:
    async with send:
        await send.send("one")
        raise RuntimeError("the producer failed (expected by the test)")


async def _floods(send: Send) -> None:
    async with send:
        while True:
            await send.send("x" * 1000)


@pytest.mark.parametrize("ending", ["content-ends", "producer-raises", "client-leaves"])
async def test_slot_is_released_when_the_stream_ends(
    ending: str, caplog: pytest.LogCaptureFixture
) -> None:
    limit = StreamLimit(1)
    producer = {"content-ends": _ends_by_itself, "producer-raises": _raises}.get(ending, forever)

    async def events(request: Request) -> Response:
        return EventSourceResponse(producer, stream_limit=limit)

    app = Starlette(routes=[Route("/", events)])
    with anyio.fail_after(10):
        async with open_event_stream(app) as stream:
            assert limit.active == 1
            await stream.read_events(1)
            if ending != "client-leaves":
                assert [event async for event in stream] == []
                assert stream.complete
        assert limit.active == 0
        async with open_event_stream(app) as stream:
            assert stream.status_code == 200
    assert limit.active == 0


async def test_slot_is_released_after_a_send_timeout() -> None:
    limit = StreamLimit(1)

    async def events(request: Request) -> Response:
        return EventSourceResponse(_floods, stream_limit=limit, send_timeout=0.2)

    with anyio.fail_after(10), pytest.raises(SendTimeoutError):
        async with open_event_stream(
            Starlette(routes=[Route("/", events)]), max_buffered_messages=1
        ):
            await anyio.sleep(1)  # never reads: the app's send blocks, then times out
    assert limit.active == 0


async def test_slot_is_released_at_shutdown() -> None:
    limit = StreamLimit(1)
    token = ShutdownToken()

    async def events(request: Request) -> Response:
        return EventSourceResponse(forever, stream_limit=limit, shutdown=token)

    with anyio.fail_after(10):
        async with open_event_stream(Starlette(routes=[Route("/", events)])) as stream:
            await stream.read_events(1)
            token.trigger()
            assert [event async for event in stream] == []
            assert stream.complete
    assert limit.active == 0


async def test_slot_is_released_when_cancelled_from_outside() -> None:
    limit = StreamLimit(1)
    response = EventSourceResponse(forever, stream_limit=limit)
    scope = {"type": "http", "method": "GET", "headers": [], "path": "/"}
    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: Any) -> None:
        sent.append(message["type"])

    with anyio.fail_after(10):
        with anyio.move_on_after(0.3):
            await response(scope, receive, send)
        assert limit.active == 0
        assert sent[0] == "http.response.start"


# -- on a real server ---------------------------------------------------------------------------


async def head_status(port: int, path: str) -> int:
    """The status of a GET, reading only the response head (an admitted stream never ends)."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request_bytes("GET", path))
        status, _, _ = await read_head(stream)
        return status


async def no_active_slot(server: Server) -> bool:
    return bool((await server.debug())["limit_active"] == 0)


@asynccontextmanager
async def admitted_stream(
    port: int, *, retry_while_full: bool = False
) -> AsyncIterator[anyio.abc.SocketStream]:
    """A stream of the limited route, once its first event arrived.

    With *retry_while_full*, a 503 is retried (a new connection every 50 ms) until admitted:
    the slot of a client that left comes back once the server has noticed that it left.
    """
    while True:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(request_bytes("GET", "/limited/events"))
            status, _, body = await read_head(stream)
            if status == 200 or not retry_while_full:
                assert status == 200
                while b"admitted" not in body:
                    body += await stream.receive()
                yield stream
                return
        await anyio.sleep(0.05)


@pytest.mark.slow
async def test_real_server_answers_503_then_admits_again(
    anyio_backend: str, tmp_path: Path
) -> None:
    env = {"RELIABILITY_MAX_STREAMS": "3"}
    async with reliability_server(anyio_backend, tmp_path, env=env) as server:
        port = server.port
        with anyio.fail_after(30):
            async with admitted_stream(port), admitted_stream(port), admitted_stream(port) as third:
                response = await server.get("/limited/events")
                assert response.status == 503
                assert response.headers["retry-after"] == "2"
                assert response.body == b"Too many event streams; retry later.\n"
                assert (await server.get("/plain")).status == 200  # other routes still serve
                await third.aclose()
                async with admitted_stream(port, retry_while_full=True):
                    assert await head_status(port, "/limited/events") == 503
                    state = await server.debug()
                    assert state["limit_active"] == 3
                    assert state["limit_rejected"] >= 2
            await until(lambda: no_active_slot(server))
        server.assert_running()
        server.assert_clean_log()
