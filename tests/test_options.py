"""EventSourceResponse's options after construction: read, set, checked, and used (issue 12).

sse-starlette apps set options on the response object before returning it
(``response.ping_interval = 5``); each test here builds a response with the defaults, sets one
option, and checks that the stream obeys the new value.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.background import BackgroundTask

from trio_sse import (
    EventSourceResponse,
    SendTimeoutError,
    ServerSentEvent,
    ShutdownToken,
    StreamLimit,
)
from trio_sse.testing import open_event_stream

from .helpers import app_for

Send = MemoryObjectSendStream[Any]


def set_after(content_factory: Callable[[], Any], **settings: Any) -> Starlette:
    """An app whose response is built with the defaults, then has *settings* set on it."""

    def make() -> EventSourceResponse:
        response = EventSourceResponse(content_factory())
        for name, value in settings.items():
            setattr(response, name, value)
        return response

    return app_for(make)


async def forever(send: Send) -> None:
    async with send:
        await anyio.sleep_forever()


# -- the class attributes ----------------------------------------------------------------------

# Read in a child interpreter: importing sse_starlette patches uvicorn's Server.handle_exit for
# the whole process, which would change how later tests' uvicorn servers shut down.
_SSE_STARLETTE_FACTS = """
import json
from sse_starlette import EventSourceResponse as R
instance = R(iter([]))
print(json.dumps({
    "defaults": [R.DEFAULT_PING_INTERVAL, R.DEFAULT_SEPARATOR, R.DEFAULT_CLEANUP_TIMEOUT],
    "public": sorted(name for name in dir(instance) if not name.startswith("_")),
}))
"""


@pytest.fixture(scope="module")
def sse_starlette_facts() -> dict[str, Any]:
    command = [sys.executable, "-c", _SSE_STARLETTE_FACTS]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    facts: dict[str, Any] = json.loads(result.stdout)
    return facts


def test_default_class_attributes_match_sse_starlette(sse_starlette_facts: dict[str, Any]) -> None:
    ours = [
        EventSourceResponse.DEFAULT_PING_INTERVAL,
        EventSourceResponse.DEFAULT_SEPARATOR,
        EventSourceResponse.DEFAULT_CLEANUP_TIMEOUT,
    ]
    assert ours == sse_starlette_facts["defaults"] == [15, "\r\n", 30.0]
    assert EventSourceResponse.DEFAULT_MAX_BUFFER_SIZE == 256


def test_a_subclass_changes_the_defaults_as_in_sse_starlette() -> None:
    class Quick(EventSourceResponse):
        DEFAULT_PING_INTERVAL = 3
        DEFAULT_SEPARATOR = "\n"

    response = Quick(forever)
    assert (response.ping_interval, response.sep) == (3, "\n")
    assert Quick(forever, ping=7, sep="\r").ping_interval == 7


def test_sse_starlette_public_attributes_exist(sse_starlette_facts: dict[str, Any]) -> None:
    """Every public attribute of sse-starlette's response exists here too, but three.

    ``body_iterator`` and ``active`` are the state of sse-starlette's own loop (trio_sse's
    content may be a producer or a channel, not an iterator); ``enable_compression`` only
    raises ``NotImplementedError`` there. The README's migration table names them.
    """
    ours = EventSourceResponse([])
    missing = {name for name in sse_starlette_facts["public"] if not hasattr(ours, name)}
    assert missing == {"body_iterator", "active", "enable_compression"}


# -- read back ---------------------------------------------------------------------------------


def test_options_read_back_as_given_or_normalised() -> None:
    token = ShutdownToken()
    limit = StreamLimit(3)
    response = EventSourceResponse(
        forever,
        ping=2,
        sep="\n",
        send_timeout=1,
        shutdown=token,
        shutdown_grace_period=4,
        max_buffer_size=8,
        cleanup_timeout=None,
        farewell="bye",
        farewell_retry=(1, 2),
        stream_limit=limit,
    )
    assert response.ping_interval == 2.0 and type(response.ping_interval) is float
    assert (response.sep, response.send_timeout, response.shutdown) == ("\n", 1.0, token)
    assert (response.shutdown_grace_period, response.max_buffer_size) == (4.0, 8)
    assert (response.cleanup_timeout, response.farewell) == (None, "bye")
    assert (response.farewell_retry, response.stream_limit) == ((1, 2), limit)
    response.sep = None  # None is the default, as in the constructor
    assert response.sep == "\r\n"
    with pytest.raises(AttributeError, match="cannot be deleted"):
        del response.ping_interval


# -- a bad value on set ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "error", "match"),
    [
        ("ping_interval", "5", TypeError, "ping_interval must be a number of seconds, got '5'"),
        ("ping_interval", None, TypeError, "ping_interval must be a number of seconds, got None"),
        ("ping_interval", -1, ValueError, r"ping_interval must be >= 0 \(seconds\), got -1"),
        ("sep", "\t", ValueError, "sep must be one of"),
        ("sep", 1, TypeError, "sep must be one of .*got 1"),
        ("send_timeout", 0, ValueError, "send_timeout must be > 0"),
        ("send_timeout", "1", TypeError, "send_timeout must be a number of seconds or None"),
        ("shutdown_grace_period", -1, ValueError, "shutdown_grace_period must be >= 0"),
        ("shutdown_grace_period", True, TypeError, "shutdown_grace_period .*got True"),
        ("cleanup_timeout", math.nan, ValueError, "cleanup_timeout must be >= 0"),
        ("max_buffer_size", -1, ValueError, "max_buffer_size must be >= 0, got -1"),
        ("max_buffer_size", 1.5, TypeError, "max_buffer_size must be an int, got 1.5"),
        ("ping_message_factory", 1, TypeError, "ping_message_factory must be callable"),
        ("data_sender_callable", "f", TypeError, "data_sender_callable must be callable"),
        ("client_close_handler_callable", 1, TypeError, "client_close_handler_callable must"),
        ("shutdown", "now", TypeError, "shutdown must be a ShutdownToken or None, got 'now'"),
        ("shutdown_event", 1, TypeError, "shutdown_event must be an anyio.Event"),
        ("farewell", 1.5, TypeError, "farewell must be .*got 1.5"),
        ("farewell_retry", -1, ValueError, "farewell_retry must be >= 0, got -1"),
        ("farewell_retry", (2, 1), ValueError, "farewell_retry must be a range"),
        ("farewell_retry", "1", TypeError, "farewell_retry must be milliseconds"),
        ("stream_limit", 5, TypeError, "stream_limit must be a trio_sse.StreamLimit or None"),
        ("max_prefetch", 0, ValueError, "max_prefetch must be >= 1, got 0"),
        ("max_prefetch", "16", TypeError, "max_prefetch must be an int, got '16'"),
    ],
)
def test_a_bad_value_set_after_construction_is_refused_and_not_kept(
    name: str, value: object, error: type[Exception], match: str
) -> None:
    response = EventSourceResponse(forever)
    before = getattr(response, name)
    with pytest.raises(error, match=match):
        setattr(response, name, value)
    assert getattr(response, name) == before


# -- a value set after construction takes effect -----------------------------------------------


@pytest.mark.anyio
async def test_ping_interval_set_after_construction() -> None:
    with anyio.fail_after(5):
        async with open_event_stream(
            set_after(lambda: forever, ping_interval=0.02), comments=True
        ) as stream:
            pings = await stream.read_events(2)
    assert pings == [ServerSentEvent(comment="ping")] * 2


@pytest.mark.anyio
async def test_ping_message_factory_set_after_construction() -> None:
    def factory() -> ServerSentEvent:
        return ServerSentEvent(comment="still here")

    app = set_after(lambda: forever, ping_interval=0.02, ping_message_factory=factory)
    with anyio.fail_after(5):
        async with open_event_stream(app, comments=True) as stream:
            assert await stream.read_events(1) == [ServerSentEvent(comment="still here")]


@pytest.mark.anyio
async def test_sep_set_after_construction() -> None:
    with anyio.fail_after(5):
        async with open_event_stream(set_after(lambda: ["a", "b"], sep="\n")) as stream:
            body = b"".join([chunk async for chunk in stream.iter_bytes()])
    assert body == b"data: a\n\ndata: b\n\n"


@pytest.mark.anyio
async def test_send_timeout_set_after_construction() -> None:
    cleaned_up = anyio.Event()

    async def producer(send: Send) -> None:
        try:
            async with send:
                while True:
                    await send.send("x" * 1000)
        finally:
            cleaned_up.set()

    app = set_after(lambda: producer, send_timeout=0.05)
    with anyio.fail_after(5):
        with pytest.raises(SendTimeoutError):
            async with open_event_stream(app, max_buffered_messages=1):
                await cleaned_up.wait()  # read nothing: the app's send blocks


@pytest.mark.anyio
async def test_data_sender_and_client_close_handler_set_after_construction() -> None:
    send, receive = anyio.create_memory_object_stream[Any](10)
    closed: list[dict[str, Any]] = []

    async def data_sender() -> None:
        await send.send("pushed")

    async def on_close(message: dict[str, Any]) -> None:
        closed.append(message)

    app = set_after(
        lambda: receive, data_sender_callable=data_sender, client_close_handler_callable=on_close
    )
    with send, anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            assert await stream.read_events(1) == [ServerSentEvent("pushed")]
    assert closed == [{"type": "http.disconnect"}]


@pytest.mark.anyio
async def test_shutdown_options_set_after_construction() -> None:
    """shutdown, shutdown_event, shutdown_grace_period, farewell and farewell_retry."""
    token = ShutdownToken()
    shutdown_event = anyio.Event()

    async def producer(send: Send) -> None:
        async with send:
            await send.send("hello")
            await shutdown_event.wait()
            await anyio.sleep(0.01)  # within the grace period set below (the default is 0)
            await send.send("last")

    app = set_after(
        lambda: producer,
        shutdown=token,
        shutdown_event=shutdown_event,
        shutdown_grace_period=5,
        farewell=ServerSentEvent("bye", event="shutdown"),
        farewell_retry=1500,
    )
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            assert await stream.read_events(1) == [ServerSentEvent("hello")]
            token.trigger()
            rest = [event async for event in stream]
    assert shutdown_event.is_set()
    assert rest == [ServerSentEvent("last"), ServerSentEvent("bye", event="shutdown")]
    assert stream.retry == 1500
    assert stream.complete


@pytest.mark.anyio
async def test_max_buffer_size_set_after_construction() -> None:
    seen: list[float] = []

    async def producer(send: Send) -> None:
        async with send:
            seen.append(send.statistics().max_buffer_size)

    with anyio.fail_after(5):
        async with open_event_stream(set_after(lambda: producer, max_buffer_size=3)) as stream:
            assert [event async for event in stream] == []
    assert seen == [3]


@pytest.mark.anyio
async def test_cleanup_timeout_set_after_construction() -> None:
    cut_short = anyio.Event()

    async def endless() -> AsyncIterator[str]:
        try:
            while True:
                yield "x" * 1000
        finally:
            try:
                await anyio.sleep(30)  # the default cleanup_timeout would wait as long
            except anyio.get_cancelled_exc_class():
                cut_short.set()
                raise

    app = set_after(endless, cleanup_timeout=0.01)
    with anyio.fail_after(5):
        async with open_event_stream(app, max_buffered_messages=1) as stream:
            # Read nothing: once every task is blocked the generator sits at a ``yield``
            # (the pump's send waits), so only ``aclose()``, bounded by the timeout, ends it.
            await anyio.wait_all_tasks_blocked()
            stream.disconnect()
    assert cut_short.is_set()


@pytest.mark.anyio
async def test_max_prefetch_set_after_construction() -> None:
    pulled = 0
    accepted = 0
    gone = anyio.Event()

    async def numbers() -> AsyncIterator[int]:
        nonlocal pulled
        while True:
            pulled += 1
            yield pulled

    async def receive() -> MutableMapping[str, Any]:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        nonlocal accepted
        if message["type"] == "http.response.body":
            if accepted:
                await anyio.sleep_forever()  # a client that reads nothing more
            accepted = message["body"].count(b"data:")

    async def disconnect_once_settled() -> None:
        await anyio.wait_all_tasks_blocked()  # the pump took all it will
        gone.set()

    response = EventSourceResponse(numbers(), ping=0)
    response.max_prefetch = 2  # the default is 16
    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(disconnect_once_settled)
            await response(scope, receive, send)
    assert accepted >= 1
    assert pulled - accepted == 2


@pytest.mark.anyio
async def test_stream_limit_set_after_construction() -> None:
    with anyio.fail_after(5):
        async with open_event_stream(set_after(lambda: forever, stream_limit=StreamLimit(0))) as s:
            assert s.status_code == 503


@pytest.mark.anyio
async def test_starlette_attributes_set_after_construction() -> None:
    """status_code, headers and background, as on any Starlette response."""
    ran: list[str] = []

    async def note() -> None:
        ran.append("background")

    def make() -> EventSourceResponse:
        response = EventSourceResponse(["a"])
        response.status_code = 201
        response.headers["X-Stream"] = "yes"
        response.background = BackgroundTask(note)
        return response

    with anyio.fail_after(5):
        async with open_event_stream(app_for(make)) as stream:
            assert [event.data async for event in stream] == ["a"]
    assert (stream.status_code, stream.headers["x-stream"]) == (201, "yes")
    assert ran == ["background"]


def test_a_subclass_changes_every_class_default() -> None:
    class Quick(EventSourceResponse):
        DEFAULT_PING_INTERVAL = 2
        DEFAULT_MAX_BUFFER_SIZE = 3
        DEFAULT_CLEANUP_TIMEOUT = 4.0
        DEFAULT_DISCONNECT_GRACE_PERIOD = 0.5

    response = Quick([])
    assert (
        response.ping_interval,
        response.max_buffer_size,
        response.cleanup_timeout,
        response.disconnect_grace_period,
    ) == (2, 3, 4.0, 0.5)
    # Given explicitly, an argument wins; cleanup_timeout=None still means "no limit".
    explicit = Quick([], ping=1, max_buffer_size=5, cleanup_timeout=None)
    assert (explicit.ping_interval, explicit.max_buffer_size, explicit.cleanup_timeout) == (
        1,
        5,
        None,
    )
    assert EventSourceResponse([]).max_buffer_size == 256
    assert EventSourceResponse([]).cleanup_timeout == 30.0
