"""The benchmarks' apps and client are correct (never how fast they are: see benchmarks/).

The three apps (trio_sse, sse-starlette, raw ASGI) run in-process through
``trio_sse.testing.open_event_stream`` with tiny counts and must stream exactly the events
the client will count; the lean client's HTTP/chunked parser and event counter are checked
on crafted byte streams, cut at every possible place.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
import pytest
from benchmarks import app_raw, app_trio_sse
from benchmarks._common import make_payload
from benchmarks.client import EventCounter, ResponseParser

from trio_sse import EventDecoder, ServerSentEvent
from trio_sse.backends import RedisBackend
from trio_sse.testing import open_event_stream

from .redis_server import RedisServer

pytestmark = pytest.mark.anyio

ASGIApp = Any


@pytest.fixture(scope="module")
def sse_starlette_app() -> ASGIApp:
    """The sse-starlette app, without leaving sse-starlette's uvicorn patch behind.

    Importing sse_starlette replaces ``uvicorn.main.Server.handle_exit`` for the whole
    process; other tests rely on uvicorn's own handler, so it is put back.
    """
    pytest.importorskip("sse_starlette")
    try:
        from uvicorn.server import Server
    except ImportError:  # pragma: no cover - uvicorn is in the test extra
        server_class: Any = None
    else:
        server_class = Server
        original = server_class.__dict__["handle_exit"]
    try:
        from benchmarks import app_sse_starlette
    finally:
        if server_class is not None:
            server_class.handle_exit = original
    return app_sse_starlette.app


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run the app's lifespan, if it has one (the trio_sse app's hub lives there)."""
    router = getattr(app, "router", None)
    if router is None:
        yield
        return
    async with router.lifespan_context(app):
        yield


async def get(app: ASGIApp, path: str) -> tuple[int, bytes]:
    async with open_event_stream(app, path) as response:
        body = b"".join([chunk async for chunk in response.iter_bytes()])
    return response.status_code, body


def apps(sse_starlette_app: ASGIApp) -> dict[str, ASGIApp]:
    return {"trio_sse": app_trio_sse.app, "sse-starlette": sse_starlette_app, "raw": app_raw.app}


# -- the apps ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["trio_sse", "trio_sse-gen", "sse-starlette", "raw"])
async def test_stream_route_sends_n_events_then_ends(name: str, sse_starlette_app: ASGIApp) -> None:
    app = apps(sse_starlette_app)[name.removesuffix("-gen")]
    path = "/stream-gen" if name.endswith("-gen") else "/stream"
    with anyio.fail_after(10):
        async with lifespan(app), open_event_stream(app, f"{path}?n=7&size=40") as stream:
            body = b"".join([chunk async for chunk in stream.iter_bytes()])
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.complete
    events = EventDecoder().feed(body)
    assert [(event.id, event.data) for event in events] == [
        (str(n), make_payload(40)) for n in range(7)
    ]
    # What the benchmark client counts: one CRLF blank line per event.
    counter = EventCounter()
    counter.feed(body)
    assert counter.events == 7


@pytest.mark.parametrize("fan_out", ["broadcaster", "local"])
async def test_trio_sse_fan_out_delivers_each_event_to_every_subscriber(
    fan_out: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if fan_out == "local":
        monkeypatch.setenv("TRIO_SSE_BENCH_FANOUT", "local")
    elif app_trio_sse.broadcaster_class() is None:
        pytest.skip("this trio_sse has no Broadcaster")
    await check_fan_out(app_trio_sse.app)


@pytest.mark.service("redis-server")
async def test_trio_sse_fan_out_through_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    # The redis scenario's servers: the same app, its hub on TRIO_SSE_BENCH_REDIS_URL.
    server = RedisServer()
    await anyio.to_thread.run_sync(server.start)
    try:
        monkeypatch.setenv("TRIO_SSE_BENCH_REDIS_URL", server.url)
        monkeypatch.setenv("TRIO_SSE_BENCH_REDIS_PREFIX", f"smoke-{uuid.uuid4().hex[:8]}:")
        backend = app_trio_sse._backend()
        assert isinstance(backend, RedisBackend)
        assert backend.address == server.url
        await check_fan_out(app_trio_sse.app)
    finally:
        await anyio.to_thread.run_sync(server.stop)


def test_without_the_variable_the_hub_is_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIO_SSE_BENCH_REDIS_URL", raising=False)
    assert app_trio_sse._backend() is None


async def test_sse_starlette_fan_out(sse_starlette_app: ASGIApp) -> None:
    await check_fan_out(sse_starlette_app)


async def test_raw_fan_out() -> None:
    await check_fan_out(app_raw.app)


async def check_fan_out(app: ASGIApp) -> None:
    topic = "smoke"
    with anyio.fail_after(10):
        async with lifespan(app):
            async with (
                open_event_stream(app, f"/subscribe?topic={topic}") as first,
                open_event_stream(app, f"/subscribe?topic={topic}") as second,
            ):
                status, body = await get(app, f"/publish?topic={topic}&n=3&rate=0&seq=5")
                assert status == 200
                assert int(body) in (2, -1)  # -1: the hub does not say
                for stream in (first, second):
                    events = await stream.read_events(3)
                    fields = [(event.data or "").split(" ") for event in events]
                    assert [seq for seq, _ in fields] == ["5", "6", "7"]
                    assert all(int(stamp) > 0 for _, stamp in fields)
            status, body = await get(app, "/stats")
            assert status == 200
            assert b"impl" in body


async def test_trio_sse_endless_stops_at_shutdown() -> None:
    from trio_sse import ShutdownToken

    token = ShutdownToken()
    # The app's /endless is bound to the default token; check the producer itself instead.
    send, receive = anyio.create_memory_object_stream[ServerSentEvent](10)
    from trio_sse import _streaminfo

    class Current:
        asgi_scope = None
        shutdown_token = token

    context = _streaminfo.CURRENT_STREAM.set(Current())
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(app_trio_sse._endless, send, 0.01)
                async with receive:
                    first = await receive.receive()
                    token.trigger()
                    rest = [event async for event in receive]
    finally:
        _streaminfo.CURRENT_STREAM.reset(context)
    assert first.id == "0"
    assert len(rest) <= 2


# -- the client's parser ----------------------------------------------------------------------


def chunked(*pieces: bytes) -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    return body + b"0\r\n\r\n"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"

EVENTS = [
    b"id: 1\r\ndata: one\r\n\r\n",
    b": ping\r\n\r\n",
    b"id: 2\r\ndata: a\r\ndata: b\r\n\r\n",
    b"data: \r\n\r\n",
]


def splits(data: bytes, size: int) -> Iterator[list[bytes]]:
    """*data* cut into pieces at every combination of up to two cut points (and in *size*s)."""
    yield [data]
    yield [data[i : i + size] for i in range(0, len(data), size)]
    for a, b in itertools.combinations(range(1, len(data)), 2):
        yield [data[:a], data[a:b], data[b:]]


def test_parser_counts_events_across_chunks_and_reads() -> None:
    # One event split over two chunks, two events in one chunk, a terminator cut in half.
    stream = HEAD + chunked(
        EVENTS[0][:9],
        EVENTS[0][9:] + EVENTS[1],
        EVENTS[2][:-2],
        EVENTS[2][-2:] + EVENTS[3],
    )
    for pieces in splits(stream, 3):
        parser = ResponseParser()
        for piece in pieces:
            parser.feed(piece)
        assert parser.status == 200
        assert parser.chunked
        assert parser.complete
        assert parser.chunks == 4
        assert parser.events == 4


def test_parser_incomplete_body_is_not_complete() -> None:
    parser = ResponseParser()
    parser.feed(HEAD + chunked(EVENTS[0])[:-5])
    assert parser.events == 1
    assert not parser.complete


def test_parser_with_chunk_extensions_and_uppercase_hex() -> None:
    data = EVENTS[0] * 20  # 0x17c bytes
    stream = HEAD + b"%X;name=value\r\n%s\r\n0\r\n\r\n" % (len(data), data)
    parser = ResponseParser()
    parser.feed(stream)
    assert (parser.events, parser.complete) == (20, True)


def test_parser_sized_body() -> None:
    for pieces in splits(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n123", 2):
        parser = ResponseParser(keep_body=True)
        for piece in pieces:
            parser.feed(piece)
        assert (parser.complete, parser.body, parser.chunked) == (True, b"123", False)


def test_event_counter_hands_out_events() -> None:
    seen: list[bytes] = []
    stream = b"".join(EVENTS)
    for pieces in splits(stream, 5):
        seen.clear()
        counter = EventCounter(on_event=seen.append)
        for piece in pieces:
            counter.feed(piece)
        assert counter.events == 4
        assert seen == [event[:-4] for event in EVENTS]


def test_event_counter_other_terminator() -> None:
    counter = EventCounter(b"\n\n")
    for piece in (b"data: a\n", b"\ndata: b\n\n", b"data", b": c\n", b"\n"):
        counter.feed(piece)
    assert counter.events == 3
