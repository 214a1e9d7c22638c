"""Content that is never streamed is closed at once, not left to the garbage collector.

A ``HEAD`` request, and a client turned away by a full ``StreamLimit``, get their answer
without the stream starting: the response closes its content then (``aclose()`` for an async
iterable, ``close()`` for a sync one), so that the resources behind it (a database cursor, a
subscription) are released at once. And a turned-away client is told nothing about when to
come back when the limit has ``retry_after=None``.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import anyio
import pytest

from trio_sse import EventSourceResponse, ServerSentEvent, StreamLimit
from trio_sse.testing import open_event_stream

from .helpers import app_for

pytestmark = pytest.mark.anyio


class AsyncContent:
    """An async iterable with ``aclose``, as a database cursor or a subscription is."""

    def __init__(self) -> None:
        self.pulled = 0
        self.closed = False

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        self.pulled += 1
        return "item"

    async def aclose(self) -> None:
        self.closed = True


class SyncContent:
    """A sync iterable with ``close``."""

    def __init__(self) -> None:
        self.pulled = 0
        self.closed = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        self.pulled += 1
        return "item"

    def close(self) -> None:
        self.closed = True


CONTENT = [AsyncContent, SyncContent]

FULL = {
    "reject": lambda: StreamLimit(0, retry_after=None),
    "retry": lambda: StreamLimit(0, retry_after=None, on_full="retry"),
}


@pytest.mark.parametrize("make_content", CONTENT, ids=["async", "sync"])
async def test_head_closes_the_content_without_pulling_from_it(make_content: Any) -> None:
    content = make_content()
    with anyio.fail_after(5):
        async with open_event_stream(
            app_for(lambda: EventSourceResponse(content)), method="HEAD"
        ) as stream:
            body = b"".join([chunk async for chunk in stream.iter_bytes()])
    assert (stream.status_code, body, stream.complete) == (200, b"", True)
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert (content.pulled, content.closed) == (0, True)


async def test_head_closes_a_generator_so_it_can_never_run() -> None:
    started = False

    def numbers() -> Generator[int, None, None]:
        nonlocal started
        started = True
        yield 1

    generator = numbers()
    with anyio.fail_after(5):
        async with open_event_stream(
            app_for(lambda: EventSourceResponse(generator)), method="HEAD"
        ) as stream:
            assert [event async for event in stream] == []
    assert inspect.getgeneratorstate(generator) == inspect.GEN_CLOSED
    with pytest.raises(StopIteration):
        next(generator)
    assert not started


@pytest.mark.parametrize("on_full", ["reject", "retry"])
@pytest.mark.parametrize("make_content", CONTENT, ids=["async", "sync"])
async def test_a_turned_away_client_closes_the_content(make_content: Any, on_full: str) -> None:
    content = make_content()
    limit = FULL[on_full]()
    with anyio.fail_after(5):
        async with open_event_stream(
            app_for(lambda: EventSourceResponse(content, stream_limit=limit)), comments=True
        ) as stream:
            events = [event async for event in stream]
    assert (content.pulled, content.closed) == (0, True)
    assert limit.rejected == 1
    # retry_after=None: no hint of when to come back, in the headers or in the stream.
    assert "retry-after" not in stream.headers
    if on_full == "retry":
        assert stream.status_code == 200
        assert events == [ServerSentEvent(comment="too many event streams")]
        assert stream.retry is None
    else:
        assert stream.status_code == 503
        assert stream.headers["content-type"] == "text/plain; charset=utf-8"
