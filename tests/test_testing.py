"""``trio_sse.testing``: what a test sees when the app under test fails, and the app's lifespan.

Errors come out as themselves, never in an exception group (``pytest.raises(ValueError)`` does
not match a group holding one), on trio and on asyncio.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from trio_sse import EventSourceResponse
from trio_sse.testing import open_event_stream

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
