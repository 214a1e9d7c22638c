"""A real browser's ``EventSource`` against the library's server: Debian's chromium, headless.

The app (``tests/servers/client_app.py``) runs under hypercorn in the test's own event loop
(trio or asyncio); playwright's sync API drives chromium from a worker thread (its async API
needs asyncio, and the browser side does not depend on the server's backend). The page
records every message, by type, into ``window.received``; the server ends the first stream
once with ``retry: 500`` set and records when and with which ``Last-Event-ID`` the browser
comes back. chromium is installed by ``.ci/run`` (``apt-get install chromium``); without it the
test is skipped (failed under ``CI=true``). playwright comes from the test extras and is never
asked to download a browser of its own.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.to_thread
import pytest

from .browser import chromium
from .live import serving
from .servers.client_app import make_app

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.service("chromium")]

# The page's record of the first stream (see BROWSER_FIRST in the app) and of the second.
EXPECTED = [
    {"type": "message", "data": "hello", "lastEventId": "1"},
    {"type": "tick", "data": "tock", "lastEventId": "2"},
    {"type": "message", "data": "line one\nline two\n", "lastEventId": "3"},
    {"type": "message", "data": "", "lastEventId": "4"},
    {"type": "tick", "data": "  ünïcødé ✓ 🎉", "lastEventId": "5-ünï"},
    {"type": "message", "data": "no id here", "lastEventId": "5-ünï"},
    {"type": "done", "data": "resumed after 5-ünï", "lastEventId": "6"},
]


def drive_browser(url: str) -> dict[str, Any]:
    """Open the page in headless chromium until it has seen the ``done`` event (≤ 15 s)."""
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{url}/browser", timeout=10_000)
        page.wait_for_function("window.finished === true", timeout=15_000)
        result: dict[str, Any] = page.evaluate(
            "() => ({received: window.received, opens: window.opens})"
        )
        return result


async def test_chromium_eventsource_reads_the_stream_and_resumes_after_retry() -> None:
    app = make_app()
    with anyio.fail_after(40):
        async with serving(app) as url:
            result = await anyio.to_thread.run_sync(drive_browser, url, abandon_on_cancel=True)
            # The page closed its EventSource after "done": the server sees the second stream end.
            while len(app.state.ended) < 2:  # noqa: ASYNC110 (the app records into a plain list)
                await anyio.sleep(0.01)
    # Every event exactly: data with line ends and empty data, non-ASCII, lastEventId carried
    # over an event without id, named events only through addEventListener, comments ignored.
    assert result["received"] == EXPECTED
    assert result["opens"] == 2
    first, second = (r for r in app.state.requests if r["path"] == "/browser/stream")
    assert first["last_event_id"] is None
    # A non-ASCII id goes back as UTF-8 (the app decodes the header so), as our client sends it.
    assert second["last_event_id"] == "5-ünï"
    assert second["headers"]["cache-control"] == "no-cache"
    assert first["headers"]["accept"] == "text/event-stream"
    # The browser waited the server's retry: 500 ms (not its 3 s default) before coming back.
    (_, first_ended), _ = app.state.ended
    waited = second["time"] - first_ended
    assert 0.45 <= waited < 2.5, waited
    # close() stopped it for good: no third request.
    assert len([r for r in app.state.requests if r["path"] == "/browser/stream"]) == 2
