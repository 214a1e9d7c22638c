"""Per-stream hooks (issue 17 item 4): ``on_open``, ``on_close`` and ``StreamHooks`` objects.

Each way a stream ends is told to ``on_close`` with its reason, and with the events and bytes
the server accepted; a hook that raises or hangs is logged (once) and the stream goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import (
    Broadcaster,
    CloseReason,
    EventSourceResponse,
    SendTimeoutError,
    ServerSentEvent,
    ShutdownToken,
    StreamClosed,
    StreamHooks,
    StreamInfo,
)
from trio_sse import _hooks as hooks_module
from trio_sse.testing import open_event_stream

from .helpers import app_for, sse_app

pytestmark = pytest.mark.anyio

Sender = MemoryObjectSendStream[Any]


@pytest.fixture(autouse=True)
def _fresh_hook_log() -> Iterator[None]:
    hooks_module.HOOK_LOG.reset()
    yield
    hooks_module.HOOK_LOG.reset()


class Recorder(StreamHooks):
    """Every call, in order: ("open", info), ("close", info, closed), ("send", events, bytes)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.ended = anyio.Event()

    def on_open(self, info: StreamInfo) -> None:
        self.calls.append(("open", info))

    def on_close(self, info: StreamInfo, closed: StreamClosed) -> None:
        self.calls.append(("close", info, closed))
        self.ended.set()

    def on_send(self, info: StreamInfo, events: int, nbytes: int, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append(("send", events, nbytes))

    @property
    def closed(self) -> StreamClosed:
        [closed] = [call[2] for call in self.calls if call[0] == "close"]
        assert isinstance(closed, StreamClosed)
        return closed


def encoded(*data: str) -> int:
    return sum(len(ServerSentEvent(item).encode()) for item in data)


def numbers(count: int) -> Any:
    async def producer(send: Sender) -> None:
        async with send:
            for number in range(count):
                await send.send(str(number))

    return producer


async def test_a_completed_stream_is_told_its_events_and_bytes() -> None:
    recorder = Recorder()
    app = sse_app(lambda: numbers(5), ping=0, hooks=recorder)
    with anyio.fail_after(5):
        async with open_event_stream(app, client=("10.0.0.7", 4321)) as stream:
            assert [event.data async for event in stream] == ["0", "1", "2", "3", "4"]
    kinds = [call[0] for call in recorder.calls]
    assert kinds[0] == "open" and kinds[-1] == "close"
    info = recorder.calls[0][1]
    assert (info.route, info.path, info.client) == ("/", "/", "10.0.0.7:4321")
    assert info.scope["path"] == "/"
    assert recorder.calls[-1][1] is info
    closed = recorder.closed
    assert closed.reason is CloseReason.COMPLETED
    assert (closed.events, closed.bytes) == (5, encoded("0", "1", "2", "3", "4"))
    assert closed.duration >= 0
    sends = [call[1:] for call in recorder.calls if call[0] == "send"]
    assert sum(events for events, _ in sends) == 5  # per body message, not per event
    assert sum(nbytes for _, nbytes in sends) == closed.bytes


async def test_plain_callables_sync_and_async() -> None:
    seen: list[object] = []

    async def on_open(info: StreamInfo) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append(info.route)

    def on_close(info: StreamInfo, closed: StreamClosed) -> None:
        seen.append((closed.reason, closed.events))

    app = sse_app(lambda: numbers(3), ping=0, on_open=on_open, on_close=on_close)
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            assert len([event async for event in stream]) == 3
    assert seen == ["/", ("completed", 3)]


async def test_a_client_disconnect() -> None:
    recorder = Recorder()

    async def forever(send: Sender) -> None:
        async with send:
            await send.send("a")
            await send.send("b")
            await anyio.sleep_forever()

    app = sse_app(lambda: forever, ping=0, hooks=recorder)
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            await stream.read_events(2)
    closed = recorder.closed
    assert (closed.reason, closed.events, closed.bytes) == (
        CloseReason.CLIENT_DISCONNECT,
        2,
        encoded("a", "b"),
    )


async def test_a_send_timeout() -> None:
    recorder = Recorder()

    async def flood(send: Sender) -> None:
        async with send:
            while True:
                await send.send("x" * 1000)

    app = sse_app(lambda: flood, send_timeout=0.05, hooks=recorder)
    with anyio.fail_after(5):
        with pytest.raises(SendTimeoutError):
            async with open_event_stream(app, max_buffered_messages=1):
                await recorder.ended.wait()  # read nothing: a send times out
    assert recorder.closed.reason is CloseReason.SEND_TIMEOUT


async def test_shutdown() -> None:
    recorder = Recorder()
    token = ShutdownToken()

    async def until_shutdown(send: Sender) -> None:
        async with send:
            await send.send("hello")
            await token.wait()
            await send.send("bye")

    app = sse_app(
        lambda: until_shutdown, ping=0, shutdown=token, shutdown_grace_period=2, hooks=recorder
    )
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            await stream.read_events(1)
            token.trigger()
            assert [event.data async for event in stream] == ["bye"]
    closed = recorder.closed
    assert (closed.reason, closed.events) == (CloseReason.SHUTDOWN, 2)


async def test_max_duration() -> None:
    recorder = Recorder()

    async def forever(send: Sender) -> None:
        async with send:
            await send.send("a")
            await anyio.sleep_forever()

    app = sse_app(lambda: forever, ping=0, max_duration=0.05, hooks=recorder)
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            assert [event.data async for event in stream] == ["a"]
    assert recorder.closed.reason is CloseReason.MAX_DURATION
    assert recorder.closed.duration >= 0.05


async def test_a_producer_that_raises_is_an_error_and_its_log_names_route_and_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()

    async def broken(send: Sender) -> None:
        async with send:
            await send.send("a")
            raise RuntimeError("producer bug")

    async def endpoint(request: Request) -> EventSourceResponse:
        return EventSourceResponse(broken, ping=0, hooks=recorder)

    caplog.set_level(logging.ERROR, logger="trio_sse")
    app = Starlette(routes=[Route("/rooms/{room}", endpoint)])
    with anyio.fail_after(5):
        async with open_event_stream(app, "/rooms/7", client=("::1", 5000)) as stream:
            assert [event.data async for event in stream] == ["a"]
    assert recorder.closed.reason is CloseReason.ERROR
    info = recorder.calls[0][1]
    assert (info.route, info.path, info.client) == ("/rooms/{room}", "/rooms/7", "[::1]:5000")
    [record] = [r for r in caplog.records if "producer raised" in r.getMessage()]
    assert "(route /rooms/{room}, path /rooms/7, client [::1]:5000)" in record.getMessage()


async def test_a_bad_item_is_an_error(caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()

    async def bad(send: Sender) -> None:
        async with send:
            await send.send({"colour": "red"})  # not a field of an event
            await anyio.sleep_forever()

    caplog.set_level(logging.ERROR, logger="trio_sse")
    app = sse_app(lambda: bad, ping=0, hooks=recorder)
    with anyio.fail_after(5):
        async with open_event_stream(app, client=("127.0.0.1", 1234)) as stream:
            assert [event async for event in stream] == []
    assert recorder.closed.reason is CloseReason.ERROR
    assert "could not be encoded; ending the stream (route /, client 127.0.0.1:1234)" in (
        caplog.text
    )


async def test_a_subscription_that_cannot_open_is_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    async with Broadcaster() as hub:
        source = hub.stream("t")
    caplog.set_level(logging.ERROR, logger="trio_sse")
    app = app_for(lambda: EventSourceResponse(source, hooks=recorder))
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            assert [event async for event in stream] == []
    assert recorder.closed.reason is CloseReason.ERROR
    assert "ending the stream (route /, client 127.0.0.1:50000)" in caplog.text


async def test_a_stream_cancelled_by_its_server_is_a_shutdown() -> None:
    recorder = Recorder()
    sent = anyio.Event()

    async def forever(send: Sender) -> None:
        async with send:
            await send.send("a")
            await anyio.sleep_forever()

    async def receive() -> MutableMapping[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def asgi_send(message: MutableMapping[str, Any]) -> None:
        if message.get("body"):
            sent.set()

    response = EventSourceResponse(forever, ping=0, hooks=recorder)
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": []}
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(response, scope, receive, asgi_send)
            await sent.wait()
            group.cancel_scope.cancel()
    closed = recorder.closed
    assert (closed.reason, closed.events) == (CloseReason.SHUTDOWN, 1)
    assert recorder.calls[0][1].client is None


async def test_hooks_that_raise_are_logged_once_and_the_streams_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(StreamHooks):
        def on_open(self, info: StreamInfo) -> None:
            raise RuntimeError("open bug")

        async def on_close(self, info: StreamInfo, closed: StreamClosed) -> None:
            raise RuntimeError("close bug")

        def on_send(self, info: StreamInfo, events: int, nbytes: int, seconds: float) -> None:
            raise RuntimeError("send bug")

    caplog.set_level(logging.ERROR, logger="trio_sse")
    app = sse_app(lambda: numbers(3), ping=0, hooks=Broken())
    with anyio.fail_after(5):
        for _ in range(3):
            async with open_event_stream(app) as stream:
                assert [event.data async for event in stream] == ["0", "1", "2"]
                assert stream.complete
    messages = [r.getMessage() for r in caplog.records]
    for what in ("on_open", "on_close", "on_send"):
        [line] = [m for m in messages if f"'s {what} hook" in m]
        assert "the stream goes on (route /, client 127.0.0.1:50000)" in line
    assert any("close bug" in m for m in messages)


async def test_a_hanging_async_hook_is_cancelled_and_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hooks_module, "HOOK_TIMEOUT", 0.05)

    async def on_close(info: StreamInfo, closed: StreamClosed) -> None:
        await anyio.sleep_forever()

    caplog.set_level(logging.ERROR, logger="trio_sse")
    app = sse_app(lambda: numbers(1), ping=0, on_close=on_close)
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            assert [event.data async for event in stream] == ["0"]
    assert "on_close hook test_a_hanging_async_hook_is_cancelled_and_logged.<locals>" in (
        caplog.text
    )
    assert "timed out; the stream goes on" in caplog.text


async def test_a_subclass_default_observes_all_its_streams() -> None:
    recorder = Recorder()

    class Observed(EventSourceResponse):
        DEFAULT_HOOKS = recorder

    app = app_for(lambda: Observed(numbers(2), ping=0))
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            assert len([event async for event in stream]) == 2
    assert recorder.closed.events == 2


def test_the_options_are_checked() -> None:
    with pytest.raises(TypeError, match=r"hooks must be a trio_sse\.StreamHooks or None"):
        EventSourceResponse(numbers(1), hooks=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_close"):
        EventSourceResponse(numbers(1), on_close=3)  # type: ignore[arg-type]
    response = EventSourceResponse(numbers(1))
    assert (response.on_open, response.on_close, response.hooks) == (None, None, None)


def test_a_hooks_object_without_on_send_is_not_timed() -> None:
    observer = hooks_module.make_observer(None, None, StreamHooks())
    assert observer is not None and observer.on_send is None
    assert hooks_module.make_observer(None, None, None) is None
    assert str(CloseReason.CLIENT_DISCONNECT) == "client_disconnect"


async def test_the_readme_example_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    import re

    from .processes import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Observability", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```python\n(.*?)```", section, re.DOTALL)[:1]
    namespace: dict[str, Any] = {"producer": numbers(2)}
    exec(compile(block, "README.md (Observability)", "exec"), namespace)
    on_open, on_close = namespace["opened"], namespace["closed"]
    app = sse_app(lambda: numbers(2), ping=0, on_open=on_open, on_close=on_close)
    with anyio.fail_after(5):
        async with open_event_stream(app, client=("10.0.0.7", 1)) as stream:
            assert len([event async for event in stream]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "open / 10.0.0.7:1"
    assert lines[1].startswith(f"closed / completed 2 {encoded('0', '1')} ")


async def test_a_plain_stream_hooks_object_does_nothing_and_costs_no_timing() -> None:
    app = sse_app(lambda: numbers(2), ping=0, hooks=StreamHooks())
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            assert [event.data async for event in stream] == ["0", "1"]
            assert stream.complete


def test_where_outside_a_stream_and_describe_without_a_scope() -> None:
    from trio_sse._streaminfo import describe, route_of, where

    assert where() == ""
    assert describe(None) == ""
    assert describe({"path": "/a"}) == " (route /a, client unknown)"
    assert route_of({}) == "/"


async def test_a_mounted_route_is_named_by_its_whole_template() -> None:
    from starlette.routing import Mount

    recorder = Recorder()

    async def endpoint(request: Request) -> EventSourceResponse:
        return EventSourceResponse(numbers(1), ping=0, hooks=recorder)

    app = Starlette(routes=[Mount("/api", routes=[Route("/rooms/{room}", endpoint)])])
    with anyio.fail_after(5):
        async with open_event_stream(app, "/api/rooms/7") as stream:
            assert [event.data async for event in stream] == ["0"]
    info = recorder.calls[0][1]
    assert (info.route, info.path) == ("/api/rooms/{room}", "/api/rooms/7")


async def test_a_last_send_that_fails_after_shutdown_is_still_a_shutdown() -> None:
    """A server that closes its connections as it shuts down fails the stream's last send:
    the stream ended for the shutdown, which came first, not because its client left."""
    recorder = Recorder()
    token = ShutdownToken()

    async def forever(send: Sender) -> None:
        async with send:
            await send.send("a")
            await anyio.sleep_forever()

    async def receive() -> MutableMapping[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def asgi_send(message: MutableMapping[str, Any]) -> None:
        if message.get("body"):
            token.trigger()
        if message["type"] == "http.response.body" and not message["more_body"]:
            raise OSError("connection closed by the server's shutdown")

    response = EventSourceResponse(forever, ping=0, shutdown=token, hooks=recorder)
    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with anyio.fail_after(5):
        await response(scope, receive, asgi_send)
    assert (recorder.closed.reason, recorder.closed.events) == (CloseReason.SHUTDOWN, 1)


def test_an_async_on_send_is_refused() -> None:
    class AsyncSend(StreamHooks):
        async def on_send(  # type: ignore[override]
            self, info: StreamInfo, events: int, nbytes: int, seconds: float
        ) -> None:
            pass

    with pytest.raises(TypeError, match=r"hooks\.on_send must be a plain \(sync\) method"):
        EventSourceResponse(numbers(1), hooks=AsyncSend())


def test_the_observability_names_are_exported_documented_and_in_the_readme() -> None:
    import inspect

    import trio_sse
    import trio_sse.metrics

    from .processes import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in ("StreamInfo", "StreamClosed", "CloseReason", "StreamHooks"):
        assert inspect.getdoc(getattr(trio_sse, name)), name
        assert f"`{name}`" in readme, name
    for name in trio_sse.metrics.__all__:
        assert f"{name}" in readme, name
    assert inspect.getdoc(trio_sse.metrics.OpenTelemetryHooks)
    assert inspect.getdoc(trio_sse.metrics.OpenTelemetryHooks.observe)
    parameters = inspect.signature(trio_sse.EventSourceResponse).parameters
    assert {"on_open", "on_close", "hooks"} <= set(parameters)
    assert trio_sse.EventSourceResponse.DEFAULT_HOOKS is None
