"""Why the runner serves HTTP/2 (issue 17 item 2): Debian's chromium opens 20 ``EventSource``s
on one origin served by ``trio_sse.serve`` over TLS, and every one gets its event, all on
HTTP/2; over HTTP/1.1 the same page gets 6 and the 7th waits for a connection until one of
the 6 is closed (the browser's limit of 6 connections per origin).

The server runs in the test's loop (trio or asyncio); playwright's sync API drives chromium
from a worker thread. The context trusts nothing: ``ignore_https_errors`` accepts the
``trustme`` certificate made for the run.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from trio_sse import EventSourceResponse, ServerSentEvent, ShutdownToken, serve

from .browser import chromium
from .tls import make_certificates

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.service("chromium")]

PAGE = """<!doctype html><meta charset="utf-8"><title>streams</title><script>
window.got = [];
window.sources = [];
function openStreams(count) {
  for (let i = 0; i < count; i++) {
    const source = new EventSource("/stream?i=" + i);
    source.onmessage = () => { if (!window.got.includes(i)) window.got.push(i); };
    window.sources.push(source);
  }
}
</script>"""


def make_app() -> Starlette:
    """``/`` is the page; ``/stream`` sends one event and stays open, recording the request's
    HTTP version in ``app.state.versions``."""
    versions: list[str] = []

    async def one_then_wait(send: MemoryObjectSendStream[Any]) -> None:
        async with send:
            await send.send(ServerSentEvent("hello"))
            await anyio.sleep_forever()

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async def stream(request: Request) -> EventSourceResponse:
        versions.append(request.scope["http_version"])
        return EventSourceResponse(one_then_wait)

    app = Starlette(routes=[Route("/", page), Route("/stream", stream)])
    app.state.versions = versions
    return app


def twenty_streams(url: str) -> list[int]:
    with chromium() as browser:
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.goto(url, timeout=10_000)
        page.evaluate("openStreams(20)")
        page.wait_for_function("window.got.length === 20", timeout=15_000)
        got: list[int] = page.evaluate("window.got")
        return got


def seven_streams(url: str) -> tuple[list[int], list[int]]:
    """Open 7; when 6 have their event, wait a while, then close one: the 7th gets its turn."""
    with chromium() as browser:
        page = browser.new_page()
        page.goto(url, timeout=10_000)
        page.evaluate("openStreams(7)")
        page.wait_for_function("window.got.length >= 6", timeout=15_000)
        page.wait_for_timeout(1_500)  # room for a 7th, if the browser had a connection for it
        before: list[int] = page.evaluate("window.got.slice()")
        page.evaluate("window.sources[0].close()")
        page.wait_for_function("window.got.includes(6)", timeout=15_000)
        after: list[int] = page.evaluate("window.got")
        return before, after


async def test_twenty_eventsources_on_one_origin_over_http2(tmp_path: Path) -> None:
    certificates = make_certificates(tmp_path)
    app, token = make_app(), ShutdownToken()
    with anyio.fail_after(45):
        async with anyio.create_task_group() as group:
            urls = await group.start(
                functools.partial(
                    serve, app, port=0, shutdown=token, handle_signals=False,
                    shutdown_grace_period=0.5, certfile=certificates.server_cert,
                    keyfile=certificates.server_key,
                )
            )  # fmt: skip
            got = await anyio.to_thread.run_sync(twenty_streams, urls[0] + "/")
            token.trigger("test over")
    assert sorted(got) == list(range(20))
    assert app.state.versions == ["2"] * 20  # every stream on HTTP/2


async def test_the_seventh_eventsource_waits_over_http11() -> None:
    app, token = make_app(), ShutdownToken()
    with anyio.fail_after(45):
        async with anyio.create_task_group() as group:
            urls = await group.start(
                functools.partial(
                    serve, app, port=0, shutdown=token, handle_signals=False,
                    shutdown_grace_period=0.5,
                )
            )  # fmt: skip
            before, after = await anyio.to_thread.run_sync(seven_streams, urls[0] + "/")
            token.trigger("test over")
    assert sorted(before) == list(range(6))  # six connections, six streams; the 7th queued
    assert sorted(after) == list(range(7))  # a closed one made room for it
    assert app.state.versions == ["1.1"] * 7
