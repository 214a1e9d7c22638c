"""While Redis is down, streams that cannot start are logged once per kind, not once each.

Issue 15 item 5: 47 streams attempted in 2 s used to leave 72 tracebacks. Here a hub starts
against a real ``redis-server``, Redis is stopped, and many ``hub.stream()`` responses start:
each ends its body at once (the client's ``EventSource`` retries), and the log holds one line
for the failure, without a traceback.
"""

from __future__ import annotations

import logging
import uuid

import anyio
import anyio.to_thread
import pytest

from trio_sse import Broadcaster, EventSourceResponse
from trio_sse.backends import RedisBackend
from trio_sse.testing import open_event_stream

from .helpers import app_for
from .redis_server import RedisServer

pytestmark = [pytest.mark.anyio, pytest.mark.service("redis-server")]

STREAMS = 40


async def test_streams_that_cannot_start_log_one_line_per_failure_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = RedisServer()
    await anyio.to_thread.run_sync(server.start)
    caplog.set_level(logging.DEBUG)  # every logger, every level: coredis' own records too
    try:
        backend = RedisBackend(
            server.url, prefix=f"down-{uuid.uuid4().hex[:8]}:", connect_timeout=1
        )
        with anyio.fail_after(30):
            async with Broadcaster(backend) as hub:
                await anyio.to_thread.run_sync(server.stop)
                app = app_for(lambda: EventSourceResponse(hub.stream("t")))
                for _ in range(STREAMS):
                    async with open_event_stream(app) as stream:
                        assert [event async for event in stream] == []
                    assert stream.complete  # a clean end of body: the client reconnects
    finally:
        await anyio.to_thread.run_sync(server.stop)
    unopened = [r for r in caplog.records if "channel could not be opened" in r.getMessage()]
    assert len(unopened) == 1, [r.getMessage() for r in unopened]
    assert "RedisConnectionError" in unopened[0].getMessage()
    assert unopened[0].exc_info is None
    assert "Traceback" not in caplog.text
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(noisy) <= 3, [r.getMessage() for r in noisy]
