"""Each middleware in front of a stream, in-process (``trio_sse.testing``), trio and asyncio.

For every middleware kind (``apps.KINDS``) on Starlette and FastAPI: events flow unbuffered
(the client reads event ``n`` while the producer waits for its ack before making ``n + 1``, so
a middleware that held events back would hang the read until the ``fail_after``), a disconnect
reaches the producer and the close handler, and a triggered shutdown token ends the body
cleanly after the farewell. Then what is particular to GZip (not compressed) and OTel (one
server span, ended with the stream).
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Iterator, MutableMapping
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp

from trio_sse import ServerSentEvent, ShutdownToken
from trio_sse.testing import EventStream, open_event_stream

from .apps import EVIDENCE, FAREWELL, FRAMEWORKS, KINDS, REQUEST_HEADERS, StreamState, build_app

pytestmark = pytest.mark.anyio

Message = MutableMapping[str, Any]

EVENTS = 3

# Starlette 0.46 (the floor, `nox -s lowest`) under trio: its BaseHTTPMiddleware leaves its
# Request.stream() generator for the garbage collector, which trio reports; upstream, gone in
# the starlette this suite is developed on (1.10). Nothing of trio_sse's.
_BASE_HTTP_UNCLOSED_STREAM = pytest.mark.filterwarnings(
    r"ignore:Exception ignored in. <async_generator object Request\.stream"
    ":pytest.PytestUnraisableExceptionWarning"
)
ALL_KINDS = [
    pytest.param(kind, marks=_BASE_HTTP_UNCLOSED_STREAM) if kind == "base_http" else kind
    for kind in KINDS
]


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    yield exporter
    exporter.shutdown()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def assert_middleware_ran(kind: str, stream: EventStream) -> None:
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    if kind in EVIDENCE:
        name, value = EVIDENCE[kind]
        assert stream.headers.get(name) == value, stream.headers


async def read_stepped(stream: EventStream, state: StreamState, count: int) -> None:
    """Read events 0..count-1, each before the producer has made the next, acking each."""
    for number in range(count):
        [event] = await stream.read_events(1)
        assert event.data == str(number)
        assert state.made == list(range(number + 1))  # n + 1 is not made before n is read
        state.ack(number)


async def read_unacked(stream: EventStream, number: int) -> None:
    """Read event *number* and leave it unacked: the producer is now waiting."""
    [event] = await stream.read_events(1)
    assert event.data == str(number)


def fields(event: ServerSentEvent) -> tuple[str | None, str | None]:
    """An event's data and type (a decoded event also carries the last event ID seen)."""
    return event.data, event.event


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_events_flow_unbuffered(kind: str, framework: str, provider: TracerProvider) -> None:
    app = build_app(kind, framework, tracer_provider=provider)
    state = app.state.registry.get("s")
    with anyio.fail_after(5):
        async with open_event_stream(app, "/sse?stream=s", headers=REQUEST_HEADERS) as stream:
            assert_middleware_ran(kind, stream)
            await read_stepped(stream, state, EVENTS)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_disconnect_is_seen(kind: str, framework: str, provider: TracerProvider) -> None:
    app = build_app(kind, framework, tracer_provider=provider)
    state = app.state.registry.get("s")
    with anyio.fail_after(5):
        async with open_event_stream(app, "/sse?stream=s", headers=REQUEST_HEADERS) as stream:
            await read_stepped(stream, state, 1)
            await read_unacked(stream, 1)
            stream.disconnect()
            await state.closed.wait()  # the producer was cancelled while waiting for an ack
    assert state.close_messages == [{"type": "http.disconnect"}]
    assert state.made == [0, 1]
    assert not stream.complete


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_shutdown_drains(kind: str, framework: str, provider: TracerProvider) -> None:
    token = ShutdownToken()
    app = build_app(kind, framework, shutdown=token, tracer_provider=provider)
    state = app.state.registry.get("s")
    with anyio.fail_after(5):
        async with open_event_stream(app, "/sse?stream=s", headers=REQUEST_HEADERS) as stream:
            await read_stepped(stream, state, 1)
            await read_unacked(stream, 1)
            token.trigger()
            rest = [fields(event) async for event in stream]
            assert stream.complete  # the body ended with more_body: False
    assert rest == [fields(FAREWELL)]
    assert state.made == [0, 1]
    assert state.closed.is_set()
    assert state.close_messages == []


# -- GZip: a stream is never compressed --------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_gzip_leaves_the_stream_uncompressed(framework: str) -> None:
    app = build_app("gzip", framework)
    state = app.state.registry.get("s")
    with anyio.fail_after(5):
        async with open_event_stream(app, "/sse?stream=s", headers=REQUEST_HEADERS) as stream:
            assert "content-encoding" not in stream.headers
            for number in range(EVENTS):
                chunk = await stream.receive_body()
                assert chunk == ServerSentEvent(number, id=number).encode()
                state.ack(number)


@pytest.mark.skipif(
    "exclude_content_types" not in inspect.signature(GZipMiddleware).parameters,
    reason="this starlette's GZipMiddleware has no exclude_content_types",
)
@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_gzip_forced_onto_a_stream_compresses_each_message_but_holds_none_back(
    framework: str,
) -> None:
    """``exclude_content_types=()`` takes text/event-stream off GZip's skip list: this
    starlette then compresses the stream, flushing every message (Z_SYNC_FLUSH), so events
    still arrive one by one, as gzip. (Starlette before 0.46 compressed streams without a
    flush: events sat in the compressor.)"""
    app = build_app("gzip", framework, options={"exclude_content_types": ()})
    state = app.state.registry.get("s")
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with anyio.fail_after(5):
        async with open_event_stream(app, "/sse?stream=s", headers=REQUEST_HEADERS) as stream:
            assert stream.headers.get("content-encoding") == "gzip"
            for number in range(EVENTS):
                chunk = await stream.receive_body()
                assert chunk is not None
                assert chunk != ServerSentEvent(number, id=number).encode()
                assert inflate.decompress(chunk) == ServerSentEvent(number, id=number).encode()
                state.ack(number)


# -- OpenTelemetry: one server span per request, ended when the stream ends ---------------------


def server_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind is SpanKind.SERVER]


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_otel_span_ends_with_the_stream(
    framework: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    token = ShutdownToken()
    app = build_app("otel", framework, shutdown=token, tracer_provider=provider)
    state = app.state.registry.get("s")
    with anyio.fail_after(5):
        async with open_event_stream(app, "/sse?stream=s", headers=REQUEST_HEADERS) as stream:
            await read_stepped(stream, state, EVENTS - 1)
            await read_unacked(stream, EVENTS - 1)
            assert server_spans(exporter) == []  # still streaming: the span is open
            token.trigger()
            assert [fields(event) async for event in stream] == [fields(FAREWELL)]
    [span] = server_spans(exporter)
    assert span.name == "GET /sse"
    assert span.attributes is not None
    assert span.attributes.get("http.status_code") == 200
    assert span.end_time is not None


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_otel_span_ends_at_a_disconnect(
    framework: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = build_app("otel", framework, tracer_provider=provider)
    state = app.state.registry.get("s")
    with anyio.fail_after(5):
        async with open_event_stream(app, "/sse?stream=s", headers=REQUEST_HEADERS) as stream:
            await read_unacked(stream, 0)
            assert server_spans(exporter) == []
            stream.disconnect()
            await state.closed.wait()
    # The body never ended: the middleware ends the span when the app returns.
    [span] = server_spans(exporter)
    assert span.name == "GET /sse"


@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_otel_by_default_adds_a_span_per_body_message(
    framework: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """OTel's default: an INTERNAL "http send" span for every ASGI send, so one per event."""
    token = ShutdownToken()
    app = build_app("otel", framework, shutdown=token, tracer_provider=provider)
    state = app.state.registry.get("s")
    with anyio.fail_after(5):
        async with open_event_stream(app, "/sse?stream=s", headers=REQUEST_HEADERS) as stream:
            await read_stepped(stream, state, EVENTS - 1)
            await read_unacked(stream, EVENTS - 1)
            token.trigger()
            assert [fields(event) async for event in stream] == [fields(FAREWELL)]
    sends = [span for span in exporter.get_finished_spans() if span.name == "GET /sse http send"]
    assert stream.body_messages == EVENTS + 1  # every event in its own message, then farewell
    assert len(sends) == 1 + stream.body_messages  # http.response.start and each body message


@pytest.mark.parametrize("end", ["shutdown", "disconnect"])
@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_otel_without_send_and_receive_spans_makes_one_span(
    framework: str, end: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """``exclude_spans=["send", "receive"]``: exactly one span per streamed request."""
    token = ShutdownToken()
    options = {"exclude_spans": ["send", "receive"]}
    app = build_app("otel", framework, shutdown=token, tracer_provider=provider, options=options)
    state = app.state.registry.get("s")
    with anyio.fail_after(5):
        async with open_event_stream(app, "/sse?stream=s", headers=REQUEST_HEADERS) as stream:
            await read_stepped(stream, state, EVENTS - 1)
            await read_unacked(stream, EVENTS - 1)
            assert exporter.get_finished_spans() == ()
            if end == "shutdown":
                token.trigger()
                assert [fields(event) async for event in stream] == [fields(FAREWELL)]
            else:
                stream.disconnect()
                await state.closed.wait()
    [span] = exporter.get_finished_spans()
    assert span.kind is SpanKind.SERVER
    assert span.name == "GET /sse"


# -- A server that cancels the request (hypercorn's graceful timeout) ---------------------------


async def messages_when_cancelled(app: ASGIApp) -> list[Message]:
    """Call *app* for the stepped stream as a server would, cancel the call once the first
    event is sent (as hypercorn does at its graceful timeout), and return what it sent."""
    sent: list[Message] = []
    first_event = anyio.Event()
    request_read = False

    async def receive() -> Message:
        nonlocal request_read
        if not request_read:
            request_read = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(dict(message))
        if message["type"] == "http.response.body" and message.get("body"):
            first_event.set()

    headers = [
        (b"host", b"testserver"),
        *((k.encode(), v.encode()) for k, v in REQUEST_HEADERS.items()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/sse",
        "raw_path": b"/sse",
        "query_string": b"stream=s",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }

    async def call() -> None:
        await app(scope, receive, send)

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        await first_event.wait()
        group.cancel_scope.cancel()
    return sent


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("kind", ALL_KINDS)
async def test_server_cancellation_still_ends_the_body(
    kind: str, framework: str, provider: TracerProvider
) -> None:
    """trio_sse sends the farewell and the end of body from a cancelled request, shielded:
    every middleware but BaseHTTPMiddleware passes them on. BaseHTTPMiddleware hands them to
    its own task, cancelled with the request: they are lost, the body is cut (and the
    cancelled call returns only when trio_sse's shielded send gives up, a second later)."""
    app = build_app(kind, framework, tracer_provider=provider)
    with anyio.fail_after(5):
        sent = await messages_when_cancelled(app)
    bodies = [message for message in sent if message["type"] == "http.response.body"]
    assert bodies[0]["body"] == ServerSentEvent(0, id=0).encode()
    if kind == "base_http":
        assert bodies == bodies[:1]
        assert bodies[0]["more_body"] is True
    else:
        assert len(bodies) == 2
        assert bodies[1]["body"].startswith(FAREWELL.encode())
        assert bodies[1]["more_body"] is False
