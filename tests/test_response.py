"""EventSourceResponse through ASGI: content kinds, items, options, headers, pings, errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventSourceResponse, JSONServerSentEvent, ServerSentEvent
from trio_sse.testing import open_event_stream

from ._backends import requires_trio
from .helpers import sse_app

pytestmark = pytest.mark.anyio

Send = MemoryObjectSendStream[Any]


async def three_events(send: Send) -> None:
    async with send:
        for number in range(3):
            await send.send(ServerSentEvent(str(number), id=str(number), event="n"))


async def test_producer_function_streams_events_in_order() -> None:
    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: three_events)) as stream:
            events = [event async for event in stream]
    assert events == [ServerSentEvent(str(n), id=str(n), event="n") for n in range(3)]
    assert stream.complete
    assert stream.status_code == 200


async def test_headers() -> None:
    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: three_events)) as stream:
            pass
    assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert stream.headers["cache-control"] == "no-store"
    assert stream.headers["x-accel-buffering"] == "no"


async def test_caller_cache_control_and_extra_headers_kept() -> None:
    app = sse_app(
        lambda: three_events,
        headers={"Cache-Control": "public, max-age=1", "X-Custom": "yes"},
        status_code=201,
    )
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            pass
    assert stream.headers["cache-control"] == "public, max-age=1"
    assert stream.headers["x-custom"] == "yes"
    assert stream.status_code == 201


async def test_producer_receives_extra_positional_args() -> None:
    async def producer(send: Send, start: int, stop: int) -> None:
        async with send:
            for number in range(start, stop):
                await send.send(number)

    async def endpoint(request: Request) -> EventSourceResponse:
        return EventSourceResponse(producer, 5, 8)

    with anyio.fail_after(5):
        async with open_event_stream(Starlette(routes=[Route("/", endpoint)])) as stream:
            data = [event.data async for event in stream]
    assert data == ["5", "6", "7"]


async def test_anyio_receive_channel_is_streamed_and_closed() -> None:
    send, receive = anyio.create_memory_object_stream[Any](10)
    with send:
        send.send_nowait("a")
        send.send_nowait("b")
    app = sse_app(lambda: receive)
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            data = [event.data async for event in stream]
    assert data == ["a", "b"]
    assert stream.complete
    with pytest.raises(anyio.ClosedResourceError):
        receive.receive_nowait()


async def test_receive_channel_fed_by_a_background_task() -> None:
    send, receive = anyio.create_memory_object_stream[Any](0)

    async def feed() -> None:
        async with send:
            for number in range(5):
                await send.send(ServerSentEvent(number))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(feed)
            async with open_event_stream(sse_app(lambda: receive)) as stream:
                data = [event.data async for event in stream]
    assert data == ["0", "1", "2", "3", "4"]


@requires_trio  # the channel is trio's own, whatever the backend
async def test_trio_channel_streams_under_trio_and_is_refused_under_asyncio(
    anyio_backend: str,
) -> None:
    import trio

    send, receive = trio.open_memory_channel[Any](10)
    with send:
        send.send_nowait("x")
    app = sse_app(lambda: receive)
    with anyio.fail_after(5):
        if anyio_backend == "trio":
            async with open_event_stream(app) as stream:
                data = [event.data async for event in stream]
            assert data == ["x"]
        else:
            with pytest.raises(RuntimeError, match="only be streamed under trio"):
                async with open_event_stream(app) as stream:
                    [event async for event in stream]


@requires_trio  # the channel is trio's own, whatever the backend
async def test_trio_channel_under_asyncio_is_refused_before_the_response_starts(
    anyio_backend: str,
) -> None:
    """Refused before ``http.response.start``: the server answers 500, not a broken 200."""
    import trio

    send_end, receive_end = trio.open_memory_channel[Any](1)
    send_end.send_nowait("x")
    send_end.close()
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    response = EventSourceResponse(receive_end)
    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with anyio.fail_after(5):
        if anyio_backend == "trio":
            await response(scope, receive, send)
        else:
            with pytest.raises(RuntimeError, match="only be streamed under trio"):
                await response(scope, receive, send)
    if anyio_backend == "trio":
        assert sent[0]["type"] == "http.response.start"
        assert b"".join(message.get("body", b"") for message in sent) == b"data: x\r\n\r\n"
        assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    else:
        assert sent == []


async def test_async_generator_is_streamed() -> None:
    async def numbers() -> AsyncIterator[dict[str, Any]]:
        for number in range(3):
            yield {"data": number, "event": "tick"}

    with anyio.fail_after(5):
        async with open_event_stream(sse_app(numbers)) as stream:
            events = [event async for event in stream]
    assert events == [ServerSentEvent(str(n), event="tick") for n in range(3)]


async def test_sync_iterables_run_in_a_thread() -> None:
    import threading

    main_thread = threading.get_ident()
    threads: list[int] = []

    def numbers() -> Iterator[str]:
        for number in range(3):
            threads.append(threading.get_ident())
            yield f"n{number}"

    with anyio.fail_after(5):
        async with open_event_stream(sse_app(numbers)) as stream:
            data = [event.data async for event in stream]
        async with open_event_stream(sse_app(lambda: ["x", "y"])) as stream:
            listed = [event.data async for event in stream]
    assert data == ["n0", "n1", "n2"]
    assert listed == ["x", "y"]
    assert threads and main_thread not in threads


async def test_every_item_kind() -> None:
    item_dict = {"data": "from dict", "id": "7", "event": "d"}
    snapshot = dict(item_dict)

    async def producer(send: Send) -> None:
        async with send:
            await send.send(ServerSentEvent("plain"))
            await send.send(item_dict)
            await send.send("a str")
            await send.send(42)
            await send.send(b"data: raw bytes\n\n")
            await send.send(memoryview(b"data: a view\n\n"))
            await send.send(JSONServerSentEvent({"k": "ü", "n": [1, 2]}))
            await send.send("two\nlines")

    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: producer)) as stream:
            events = [event async for event in stream]
    assert [event.data for event in events] == [
        "plain",
        "from dict",
        "a str",
        "42",
        "raw bytes",
        "a view",
        '{"k":"ü","n":[1,2]}',
        "two\nlines",
    ]
    assert events[1] == ServerSentEvent("from dict", id="7", event="d")
    assert item_dict == snapshot


async def test_response_sep_applies_to_events_without_their_own() -> None:
    async def producer(send: Send) -> None:
        async with send:
            await send.send(ServerSentEvent("a"))
            await send.send(ServerSentEvent("b", sep="\r\n"))
            await send.send({"data": "c"})

    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: producer, sep="\n")) as stream:
            body = b"".join([chunk async for chunk in stream.iter_bytes()])
    assert body == b"data: a\n\ndata: b\r\n\r\ndata: c\n\n"


async def test_ready_events_are_coalesced_into_one_body_message() -> None:
    async def producer(send: Send) -> None:
        async with send:
            for number in range(100):
                send.send_nowait(ServerSentEvent(number, id=number))

    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: producer, max_buffer_size=100)) as stream:
            events = [event async for event in stream]
    assert [event.id for event in events] == [str(n) for n in range(100)]
    # 100 events already waiting: one body message for all, plus the final empty one.
    assert stream.body_messages == 2


async def test_lone_events_are_sent_without_waiting_for_more() -> None:
    proceed = anyio.Event()

    async def producer(send: Send) -> None:
        async with send:
            await send.send("first")
            await proceed.wait()
            await send.send("second")

    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: producer)) as stream:
            first = await stream.read_events(1)
            proceed.set()
            rest = [event async for event in stream]
    assert [event.data for event in first + rest] == ["first", "second"]


async def test_bad_dict_item_ends_stream_cleanly_with_log(caplog: pytest.LogCaptureFixture) -> None:
    finished = anyio.Event()

    async def producer(send: Send) -> None:
        try:
            async with send:
                await send.send("good")
                await send.send({"data": "x", "colour": "red"})
                await anyio.sleep_forever()
        finally:
            finished.set()

    caplog.set_level(logging.ERROR, logger="trio_sse")
    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: producer)) as stream:
            data = [event.data async for event in stream]
        await finished.wait()
    assert data == ["good"]
    assert stream.complete
    assert "could not be encoded" in caplog.text
    assert "colour" in caplog.text


async def test_producer_exception_ends_stream_cleanly_with_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def producer(send: Send) -> None:
        async with send:
            await send.send("before")
            await send.send(ServerSentEvent("x", id="bad\nid"))

    caplog.set_level(logging.ERROR, logger="trio_sse")
    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: producer)) as stream:
            data = [event.data async for event in stream]
    assert data == ["before"]
    assert stream.complete
    assert "producer raised" in caplog.text
    assert "id must not contain" in caplog.text


async def test_pings_are_sent_when_idle() -> None:
    async def producer(send: Send) -> None:
        async with send:
            await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: producer, ping=0.02), comments=True) as stream:
            pings = await stream.read_events(3)
    assert pings == [ServerSentEvent(comment="ping")] * 3


async def test_ping_message_factory() -> None:
    async def producer(send: Send) -> None:
        async with send:
            await anyio.sleep_forever()

    def factory() -> ServerSentEvent:
        return ServerSentEvent(comment="still here", event="keepalive", data="")

    app = sse_app(lambda: producer, ping=0.02, ping_message_factory=factory)
    with anyio.fail_after(5):
        async with open_event_stream(app, comments=True) as stream:
            received = await stream.read_events(2)
    assert received[0] == ServerSentEvent(comment="still here")
    assert received[1] == ServerSentEvent("", event="keepalive")


async def test_ping_zero_disables_pings() -> None:
    async def producer(send: Send) -> None:
        async with send:
            await anyio.sleep(0.2)
            await send.send("done")

    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: producer, ping=0), comments=True) as stream:
            events = [event async for event in stream]
    assert events == [ServerSentEvent("done")]


async def test_gzip_middleware_does_not_buffer_the_stream() -> None:
    proceed = anyio.Event()

    async def producer(send: Send) -> None:
        async with send:
            await send.send("x" * 1000)
            await proceed.wait()
            await send.send("y" * 1000)

    async def endpoint(request: Request) -> EventSourceResponse:
        return EventSourceResponse(producer)

    app = Starlette(
        routes=[Route("/", endpoint)], middleware=[Middleware(GZipMiddleware, minimum_size=10)]
    )
    with anyio.fail_after(5):
        async with open_event_stream(app, headers={"accept-encoding": "gzip"}) as stream:
            first = await stream.read_events(1)
            proceed.set()
            rest = [event async for event in stream]
    assert "content-encoding" not in stream.headers
    assert [event.data for event in first + rest] == ["x" * 1000, "y" * 1000]


async def test_fastapi_route_returning_the_response() -> None:
    from fastapi import FastAPI

    api = FastAPI()

    @api.get("/events")
    async def events() -> EventSourceResponse:
        return EventSourceResponse(three_events)

    with anyio.fail_after(5):
        async with open_event_stream(api, "/events") as stream:
            data = [event.data async for event in stream]
    assert data == ["0", "1", "2"]
    assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"


async def test_head_gets_headers_only_and_never_starts_the_producer() -> None:
    started = False

    async def producer(send: Send) -> None:
        nonlocal started
        started = True
        async with send:
            await send.send("x")

    with anyio.fail_after(5):
        async with open_event_stream(sse_app(lambda: producer), method="HEAD") as stream:
            body = [chunk async for chunk in stream.iter_bytes()]
    assert body == []
    assert stream.complete
    assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert not started


async def test_websocket_scope_is_denied() -> None:
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    send_end, receive_end = anyio.create_memory_object_stream[Any](1)
    send_end.close()
    response = EventSourceResponse(receive_end, status_code=403)
    with anyio.fail_after(5):
        await response({"type": "websocket", "path": "/", "headers": []}, receive, send)
    assert [message["type"] for message in sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert sent[0]["status"] == 403
    assert sent[1]["more_body"] is False


async def test_sends_are_never_concurrent() -> None:
    in_send = False
    overlaps = 0

    async def producer(send: Send) -> None:
        async with send:
            for number in range(50):
                await send.send(number)
                await anyio.sleep(0.001)

    response = EventSourceResponse(producer, ping=0.001)

    async def receive() -> MutableMapping[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def asgi_send(message: MutableMapping[str, Any]) -> None:
        nonlocal in_send, overlaps
        if in_send:
            overlaps += 1
        in_send = True
        await anyio.sleep(0.0005)
        in_send = False

    with anyio.fail_after(10):
        await response(
            {"type": "http", "method": "GET", "path": "/", "headers": []}, receive, asgi_send
        )
    assert overlaps == 0


async def test_background_task_runs_after_the_stream() -> None:
    from starlette.background import BackgroundTask

    ran: list[str] = []

    async def after() -> None:
        ran.append("background")

    app = sse_app(lambda: three_events, background=BackgroundTask(after))
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            [event async for event in stream]
    assert ran == ["background"]


async def test_data_sender_callable_runs_beside_the_stream_and_is_cancelled() -> None:
    send, receive = anyio.create_memory_object_stream[Any](10)
    cancelled = anyio.Event()

    async def data_sender() -> None:
        try:
            await send.send("pushed")
            await anyio.sleep_forever()
        finally:
            cancelled.set()
            send.close()

    app = sse_app(lambda: receive, data_sender_callable=data_sender)
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            first = await stream.read_events(1)
        await cancelled.wait()
    assert first == [ServerSentEvent("pushed")]


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"sep": "\t"}, ValueError, "sep must be one of"),
        ({"sep": 10}, TypeError, "sep must be one of .*got 10"),
        ({"ping": -1}, ValueError, "ping must be >= 0"),
        ({"ping": "15"}, TypeError, "ping must be a number of seconds, got '15'"),
        ({"ping": True}, TypeError, "ping must be a number"),
        ({"send_timeout": 0}, ValueError, "send_timeout must be > 0"),
        ({"send_timeout": "5"}, TypeError, "send_timeout must be a number of seconds or None"),
        ({"shutdown_grace_period": -0.5}, ValueError, "shutdown_grace_period must be >= 0"),
        ({"shutdown_grace_period": None}, TypeError, "shutdown_grace_period .*got None"),
        ({"cleanup_timeout": -1}, ValueError, "cleanup_timeout must be >= 0"),
        ({"cleanup_timeout": "1"}, TypeError, "cleanup_timeout"),
        ({"max_buffer_size": -1}, ValueError, "max_buffer_size must be >= 0, got -1"),
        # The wrong type is a TypeError, as in Broadcaster.subscribe() (issue 12).
        ({"max_buffer_size": "8"}, TypeError, "max_buffer_size must be an int, got '8'"),
        ({"max_buffer_size": 2.5}, TypeError, "max_buffer_size must be an int, got 2.5"),
        ({"max_buffer_size": True}, TypeError, "max_buffer_size must be an int, got True"),
        ({"shutdown": object()}, TypeError, "shutdown must be a ShutdownToken or None, got <obj"),
        ({"shutdown_event": 1}, TypeError, "shutdown_event must be an anyio.Event .*got 1"),
        ({"ping_message_factory": "x"}, TypeError, "ping_message_factory must be callable"),
        ({"data_sender_callable": 1}, TypeError, "data_sender_callable must be callable"),
        ({"client_close_handler_callable": 1}, TypeError, "client_close_handler_callable"),
        ({"stream_limit": 3}, TypeError, "stream_limit must be a trio_sse.StreamLimit .*got 3"),
    ],
)
async def test_invalid_options_are_refused(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        EventSourceResponse(three_events, **options)


async def test_invalid_content_is_refused() -> None:
    async def agen() -> AsyncIterator[str]:
        yield "x"

    with pytest.raises(TypeError, match="call it"):
        EventSourceResponse(agen)
    with pytest.raises(TypeError, match="not a single str"):
        EventSourceResponse("data")
    with pytest.raises(TypeError, match="producer function only"):
        EventSourceResponse(["x"], 1)
    with pytest.raises(TypeError, match="must be a producer function"):
        EventSourceResponse(42)


async def test_ping_none_means_the_default_fifteen_seconds() -> None:
    assert EventSourceResponse(three_events, ping=None).ping_interval == 15
    assert EventSourceResponse(three_events).ping_interval == 15
    assert EventSourceResponse(three_events, ping=0).ping_interval == 0


async def test_data_sender_callable_beside_an_async_generator() -> None:
    # Issue 12: the pump and the data sender entered the same cancel scope, so no event was
    # sent and the call ended in an ExceptionGroup.
    ran = anyio.Event()

    async def numbers() -> AsyncIterator[int]:
        for number in range(3):
            yield number

    async def data_sender() -> None:
        ran.set()

    app = sse_app(numbers, data_sender_callable=data_sender)
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            data = [event.data async for event in stream]
    assert data == ["0", "1", "2"]
    assert stream.complete
    assert ran.is_set()


@pytest.mark.parametrize("kind", ["channel", "generator", "producer"])
async def test_data_sender_is_cancelled_when_the_content_ends(kind: str) -> None:
    # Issue 12: content that ended while the data sender still ran completed the body, but the
    # ASGI call never returned. As in sse-starlette, the data sender is cancelled at the end.
    started = anyio.Event()
    cancelled = anyio.Event()

    async def data_sender() -> None:
        try:
            started.set()
            await anyio.sleep_forever()
        finally:
            cancelled.set()

    async def numbers() -> AsyncIterator[int]:
        await started.wait()
        for number in range(2):
            yield number

    async def producer(send: Send) -> None:
        async with send:
            await started.wait()
            await send.send(0)
            await send.send(1)

    def content() -> Any:
        if kind == "generator":
            return numbers()
        if kind == "producer":
            return producer
        send, receive = anyio.create_memory_object_stream[int](2)
        send.send_nowait(0)
        send.send_nowait(1)
        send.close()
        return receive

    response = EventSourceResponse(content(), data_sender_callable=data_sender)
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def asgi_send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    with anyio.fail_after(5):
        await response(
            {"type": "http", "method": "GET", "path": "/", "headers": []}, receive, asgi_send
        )
    assert cancelled.is_set()
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    body = b"".join(message.get("body", b"") for message in sent)
    assert body == b"data: 0\r\n\r\ndata: 1\r\n\r\n"


async def _pulled_against_a_stuck_client(content: Any, counter: list[int], **options: Any) -> int:
    """Stream *content* to a server that accepts the first body, then blocks every send.

    Returns how many items the stream took from *content* (``counter[0]``, counted by the
    iterable) beyond those in the body the server accepted, once no more are taken.
    """
    response = EventSourceResponse(content, ping=0, **options)
    accepted = 0
    blocked = anyio.Event()
    gone = anyio.Event()

    async def receive() -> MutableMapping[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def asgi_send(message: MutableMapping[str, Any]) -> None:
        nonlocal accepted
        if message["type"] != "http.response.body":
            return
        if accepted:
            blocked.set()
            await anyio.sleep_forever()  # a client that reads nothing more
        accepted = message["body"].count(b"data:")

    async def wait_until_settled() -> None:
        await blocked.wait()
        # Let the pump take all it will: it has no reason to wait for the (stuck) client.
        while True:
            before = counter[0]
            await anyio.sleep(0.05)
            if counter[0] == before:
                break
        gone.set()

    async with anyio.create_task_group() as group:
        group.start_soon(wait_until_settled)
        await response(
            {"type": "http", "method": "GET", "path": "/", "headers": []}, receive, asgi_send
        )
    assert accepted >= 1
    return counter[0] - accepted


def _counting_iterables(counter: list[int]) -> dict[str, Any]:
    async def agen() -> AsyncIterator[int]:
        while True:
            counter[0] += 1
            yield counter[0]

    def gen() -> Iterator[int]:
        while True:
            counter[0] += 1
            yield counter[0]

    return {"async": agen(), "sync": gen()}


@pytest.mark.parametrize("kind", ["async", "sync"])
@pytest.mark.parametrize("max_prefetch", [None, 1, 5])
async def test_an_iterable_is_pulled_at_most_max_prefetch_ahead_of_the_server(
    kind: str, max_prefetch: int | None
) -> None:
    # Issue 12: against a client that reads nothing, hundreds of items were taken from a
    # generator (and lost at the disconnect). Items taken = sent and accepted + at most
    # max_prefetch (default 16) in flight: the pump's, the channel's and the unsent batch.
    counter = [0]
    content = _counting_iterables(counter)[kind]
    options = {} if max_prefetch is None else {"max_prefetch": max_prefetch}
    with anyio.fail_after(10):
        ahead = await _pulled_against_a_stuck_client(content, counter, **options)
    # Exactly the bound: nothing in the loop waits for the client before that.
    assert ahead == (16 if max_prefetch is None else max_prefetch)


async def test_a_producer_function_keeps_its_bounded_channel() -> None:
    counter = [0]

    async def producer(send: Send) -> None:
        async with send:
            while True:
                counter[0] += 1
                await send.send(counter[0])

    with anyio.fail_after(10):
        ahead = await _pulled_against_a_stuck_client(
            producer, counter, max_buffer_size=40, max_prefetch=1
        )
    # The channel's 40, the item the producer holds and one batch: not bound by max_prefetch.
    assert ahead > 40


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-3, ValueError), ("16", TypeError), (True, TypeError)]
)
async def test_bad_max_prefetch_is_refused(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_prefetch"):
        EventSourceResponse(["x"], max_prefetch=value)
