"""``trio_sse.testing``: what a test sees when the app under test fails; the app's lifespan.

Errors come out as themselves, never in an exception group (``pytest.raises(ValueError)`` does
not match a group holding one), on trio and on asyncio.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Receive, Send

from trio_sse import Broadcaster, EventSourceResponse
from trio_sse.testing import open_app, open_event_stream

from ._backends import requires_trio
from .processes import child_env

pytestmark = pytest.mark.anyio

Scope = MutableMapping[str, Any]


class AppError(Exception):
    pass


async def raises_before_responding(scope: Scope, receive: Any, send: Any) -> None:
    await receive()
    raise AppError("before the response")


async def raises_after_the_first_event(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"data: one\n\n", "more_body": True})
    raise AppError("mid-stream")


async def raising_endpoint(request: Any) -> PlainTextResponse:
    raise AppError("in the endpoint")


async def one_event(request: Any) -> EventSourceResponse:
    return EventSourceResponse(iter(["one"]))


starlette_app = Starlette(routes=[Route("/raise", raising_endpoint), Route("/one", one_event)])


async def test_an_error_before_the_response_is_raised_on_entering_unwrapped() -> None:
    entered = False
    with anyio.fail_after(5):
        with pytest.raises(AppError, match="before the response"):
            async with open_event_stream(raises_before_responding):
                entered = True
    assert not entered


async def test_a_starlette_endpoint_error_answers_500_then_is_raised_on_leaving() -> None:
    # Starlette's ServerErrorMiddleware sends a 500 response, then re-raises.
    with anyio.fail_after(5):
        with pytest.raises(AppError, match="in the endpoint") as info:
            async with open_event_stream(starlette_app, "/raise") as stream:
                assert stream.status_code == 500
    assert info.value.__context__ is None


async def test_the_app_error_wins_over_the_body_error_it_caused_and_keeps_it_as_context() -> None:
    with anyio.fail_after(5):
        with pytest.raises(AppError, match="in the endpoint") as info:
            async with open_event_stream(starlette_app, "/raise") as stream:
                await stream.read_events(1)  # EOFError: the 500 page has no events
    assert isinstance(info.value.__context__, EOFError)


async def test_an_error_after_the_response_started_is_raised_on_leaving_unwrapped() -> None:
    with anyio.fail_after(5):
        with pytest.raises(AppError, match="mid-stream"):
            async with open_event_stream(raises_after_the_first_event) as stream:
                assert [event.data async for event in stream] == ["one"]


async def test_an_error_of_the_body_propagates_unwrapped() -> None:
    async def read_then_fail() -> None:
        async with open_event_stream(starlette_app, "/one") as stream:
            assert (await stream.read_events(1))[0].data == "one"
            raise KeyError("from the test")

    with anyio.fail_after(5):
        with pytest.raises(KeyError, match="from the test"):
            await read_then_fail()


async def test_an_app_that_returns_without_responding_is_a_runtime_error() -> None:
    async def silent(scope: Scope, receive: Any, send: Any) -> None:
        pass

    with anyio.fail_after(5):
        with pytest.raises(RuntimeError, match=r"did not start a response \(first message: None\)"):
            async with open_event_stream(silent):
                pass


async def test_an_app_that_sends_a_body_first_is_stopped_and_a_runtime_error() -> None:
    stopped = anyio.Event()

    async def body_first(scope: Scope, receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.body", "body": b"", "more_body": True})
            await anyio.sleep_forever()
        finally:
            stopped.set()

    with anyio.fail_after(5):
        with pytest.raises(RuntimeError, match="did not start a response"):
            async with open_event_stream(body_first):
                pass
    assert stopped.is_set()


async def test_a_timeout_still_cancels_an_app_that_never_responds() -> None:
    async def never(scope: Scope, receive: Any, send: Any) -> None:
        await anyio.sleep_forever()

    async def open_with_a_deadline() -> None:
        with anyio.fail_after(0.05):
            async with open_event_stream(never):
                pass

    with pytest.raises(TimeoutError):
        await open_with_a_deadline()


# -- the app's lifespan: open_app --------------------------------------------------------------


def chat_app(log: list[str]) -> Starlette:
    """The README's "Broadcaster in the lifespan" pattern; *log* records startup and shutdown."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with Broadcaster(history=10) as hub:
            log.append("startup")
            try:
                yield {"hub": hub, "shared": []}
            finally:
                log.append("shutdown")

    async def events(request: Request) -> EventSourceResponse:
        hub = request.state.hub
        request.state.shared.append(request.path_params["room"])
        request.state.mine = "per request"
        return EventSourceResponse(hub.stream(request.path_params["room"], request))

    return Starlette(routes=[Route("/chat/{room}", events)], lifespan=lifespan)


async def subscribed(hub: Broadcaster, topic: str) -> None:
    """Until the stream has subscribed (it does once the response has started)."""
    while not hub.stats().subscribers.get(topic):
        await anyio.lowlevel.checkpoint()


async def test_without_open_app_the_lifespan_pattern_answers_500() -> None:
    with anyio.fail_after(5):
        with pytest.raises(AttributeError, match="hub"):
            async with open_event_stream(chat_app([]), "/chat/lobby") as stream:
                assert stream.status_code == 500


async def test_open_app_runs_startup_shares_the_state_and_awaits_shutdown() -> None:
    log: list[str] = []
    with anyio.fail_after(5):
        async with open_app(chat_app(log)) as running:
            assert log == ["startup"]
            hub = running.state["hub"]
            async with open_event_stream(running, "/chat/lobby") as stream:
                assert stream.status_code == 200
                await subscribed(hub, "lobby")
                event_id = await hub.publish("lobby", "hello")
                [event] = await stream.read_events(1)
                assert (event.id, event.data) == (event_id, "hello")
            assert log == ["startup"]
            # The state's values are shared; each request's state is its own shallow copy.
            assert running.state["shared"] == ["lobby"]
            assert "mine" not in running.state
        assert log == ["startup", "shutdown"]


async def test_shutdown_runs_when_the_block_raises_and_the_error_is_unwrapped() -> None:
    log: list[str] = []

    async def fail_inside() -> None:
        async with open_app(chat_app(log)):
            raise KeyError("from the test")

    with anyio.fail_after(5):
        with pytest.raises(KeyError, match="from the test"):
            await fail_inside()
    assert log == ["startup", "shutdown"]


async def test_the_running_app_refuses_requests_after_the_block() -> None:
    with anyio.fail_after(5):
        async with open_app(chat_app([])) as running:
            pass
        with pytest.raises(RuntimeError, match="lifespan has ended"):
            async with open_event_stream(running, "/chat/lobby"):
                pass


def lifespan_app(on_lifespan: Callable[[Receive, Send], Awaitable[None]]) -> Any:
    """A raw ASGI app: *on_lifespan* handles the lifespan scope, requests get "ok"."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await on_lifespan(receive, send)
            return
        await PlainTextResponse("ok")(scope, receive, send)

    return app


async def test_an_app_that_raises_on_the_lifespan_scope_raises_on_entering() -> None:
    async def unsupported(receive: Receive, send: Send) -> None:
        raise AssertionError("http only")

    with anyio.fail_after(5):
        with pytest.raises(AssertionError, match="http only"):
            async with open_app(lifespan_app(unsupported)):
                pass


async def test_an_app_that_returns_on_the_lifespan_scope_runs_without_one() -> None:
    async def ignored(receive: Receive, send: Send) -> None:
        pass

    with anyio.fail_after(5):
        async with open_app(lifespan_app(ignored)) as running:
            assert running.state == {}
            async with open_event_stream(running) as stream:
                assert stream.status_code == 200
                assert [chunk async for chunk in stream.iter_bytes()] == [b"ok"]


async def test_a_failing_startup_raises_the_app_error_unwrapped() -> None:
    problems = ["no database"]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if problems:  # always: an async generator that raises before its first yield
            raise AppError(problems[0])
        yield

    with anyio.fail_after(5):
        with pytest.raises(AppError, match="no database"):
            async with open_app(Starlette(lifespan=lifespan)):
                pass


@pytest.mark.parametrize("phase", ["startup", "shutdown"])
async def test_a_failed_message_without_an_exception_is_a_runtime_error(phase: str) -> None:
    async def fails(receive: Receive, send: Send) -> None:
        for name in ("startup", "shutdown"):
            assert (await receive())["type"] == f"lifespan.{name}"
            outcome = "failed" if name == phase else "complete"
            await send({"type": f"lifespan.{name}.{outcome}", "message": "broken"})
            if name == phase:
                return

    with anyio.fail_after(5):
        with pytest.raises(RuntimeError, match=f"lifespan {phase} failed: .*'broken'"):
            async with open_app(lifespan_app(fails)):
                pass


async def test_a_shutdown_error_is_raised_on_leaving_with_the_block_error_as_context() -> None:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        raise AppError("shutdown broke")

    async def fail_inside() -> None:
        async with open_app(Starlette(lifespan=lifespan)):
            raise KeyError("from the test")

    with anyio.fail_after(5):
        with pytest.raises(AppError, match="shutdown broke") as info:
            await fail_inside()
    assert isinstance(info.value.__context__, KeyError)


async def test_a_cancelled_block_cancels_the_lifespan_without_a_shutdown() -> None:
    received: list[str] = []
    cancelled: list[bool] = []

    async def records(receive: Receive, send: Send) -> None:
        received.append((await receive())["type"])
        await send({"type": "lifespan.startup.complete"})
        try:
            received.append((await receive())["type"])
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise

    with anyio.fail_after(5):
        with anyio.CancelScope() as scope:
            async with open_app(lifespan_app(records)):
                scope.cancel()
                await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert received == ["lifespan.startup"]
    assert cancelled == [True]


# -- the pytest plugin (trio_sse.testing._plugin), in a child pytest -------------------------

PLUGIN_TESTS = """
import anyio
import pytest
import trio
from contextlib import asynccontextmanager
from starlette.applications import Starlette
from starlette.routing import Route
from trio.testing import MockClock

from trio_sse import Broadcaster, EventSourceResponse

pytestmark = pytest.mark.anyio
log = []


@asynccontextmanager
async def lifespan(app):
    async with Broadcaster() as hub:
        log.append("startup")
        yield {"hub": hub}
    log.append("shutdown")


async def chat(request):
    return EventSourceResponse(request.state.hub.stream("lobby", request))


async def quiet(request):
    async def producer(send):
        async with send:
            await anyio.sleep_forever()

    return EventSourceResponse(producer, ping=15)


@pytest.fixture
def sse_app():
    return Starlette(routes=[Route("/chat", chat), Route("/quiet", quiet)], lifespan=lifespan)


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request):
    return request.param


async def test_streams_with_the_lifespan_on_the_backend(sse_stream, sse_running_app, anyio_backend):
    assert log[-1:] == ["startup"]
    hub = sse_running_app.state["hub"]
    with anyio.fail_after(5):
        async with sse_stream("/chat", headers={"x-test": "1"}) as stream:
            assert stream.status_code == 200
            while not hub.stats().subscribers.get("lobby"):
                await anyio.sleep(0)
            await hub.publish("lobby", "hi")
            [event] = await stream.read_events(1)
    assert event.data == "hi"
    assert anyio_backend == ("trio" if trio.lowlevel.in_trio_run() else "asyncio")


def test_the_lifespan_was_shut_down_after_each_test():
    assert log == ["startup", "shutdown"] * 2


class TestMockClock:
    @pytest.fixture
    def anyio_backend(self):
        return ("trio", {"clock": MockClock(autojump_threshold=0)})

    async def test_pings_in_virtual_time(self, sse_stream):
        with anyio.fail_after(100):  # virtual seconds
            async with sse_stream("/quiet", comments=True) as stream:
                start = trio.current_time()
                pings = await stream.read_events(2)
                assert trio.current_time() - start == pytest.approx(30)
        assert [event.comment for event in pings] == ["ping", "ping"]
"""

NO_APP_TEST = """
import pytest


@pytest.mark.anyio
async def test_needs_an_app(sse_stream):
    pass
"""


def run_plugin_tests(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_plugin_use.py").write_text(source)
    # Plugins are named explicitly (autoload off), so the run is the same before and after the
    # package registers its entry point.
    env = child_env({"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    command = [sys.executable, "-m", "pytest", "-p", "anyio", "-p", "trio_sse.testing._plugin"]
    command += ["-W", "error", "-p", "no:cacheprovider", "-q", "-rA", "test_plugin_use.py"]
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@requires_trio  # the child tests run on trio too, one with trio's MockClock
def test_the_plugin_streams_an_app_with_its_lifespan_on_each_backend(tmp_path: Path) -> None:
    result = run_plugin_tests(tmp_path, PLUGIN_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout, result.stdout


def test_the_plugin_says_when_the_app_fixture_is_missing(tmp_path: Path) -> None:
    result = run_plugin_tests(tmp_path, NO_APP_TEST)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "define a fixture named 'sse_app' that returns it" in result.stdout, result.stdout
