"""trio_sse.client against the library's own server on real sockets, under trio and asyncio.

The server is ``tests/servers/client_app.py``, run by ``trio_sse.serve`` in the test's own
event loop (so ``app.state`` shows what the server saw), or as a subprocess where the test
kills it and starts it again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from trio_sse import ServerSentEvent
from trio_sse.client import (
    EventSource,
    SSEConnectionError,
    SSEContentTypeError,
    SSEStatusError,
    connect,
)
from trio_sse.client._backoff import reconnect_delay
from trio_sse.client._cli import format_event

from .live import (
    REPO,
    free_port,
    kill_process_group,
    serving,
    start_server_process,
    subprocess_env,
)
from .servers.client_app import make_app

pytestmark = pytest.mark.anyio

FAST: dict[str, Any] = {"backoff": 0.01, "jitter": 0.0}


@pytest.fixture(params=["httpx", "httpx2"])
def http_lib(request: pytest.FixtureRequest) -> Any:
    """The HTTP library a test's client comes from: the client takes both (same API)."""
    return pytest.importorskip(request.param, reason=f"{request.param} is not installed")


def state(source: EventSource) -> str:
    """``source.state``, read afresh (a property that changes under mypy's narrowing)."""
    return source.state


def requests_to(app: Any, path: str) -> list[dict[str, Any]]:
    return [request for request in app.state.requests if request["path"] == path]


@asynccontextmanager
async def stream_from(
    app: Any, path: str, *, library: Any = httpx, **options: Any
) -> AsyncIterator[EventSource]:
    """Serve *app*, connect to *path* with *options* (a client of *library*): the source."""
    async with (
        serving(app) as url,
        library.AsyncClient() as http,
        connect(http, f"{url}{path}", **options) as source,
    ):
        yield source


async def collect(source: EventSource, count: int | None = None) -> list[ServerSentEvent]:
    events = []
    async for event in source:
        events.append(event)
        if count is not None and len(events) == count:
            break
    return events


# -- a stream, its headers, its events -------------------------------------------------


async def test_events_arrive_with_their_fields(http_lib: Any) -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with serving(app) as url, http_lib.AsyncClient() as http:
            async with connect(http, f"{url}/stream?count=3", reconnect=False) as source:
                assert state(source) == "open"
                assert source.response is not None
                assert source.response.status_code == 200
                events = await collect(source)
            assert state(source) == "closed"
    assert [event.id for event in events] == ["1", "2", "3"]
    assert [event.json()["n"] for event in events] == [1, 2, 3]
    assert all(event.event is None and event.retry is None for event in events)
    assert (source.connections, source.attempts, source.last_event_id) == (1, 1, "3")
    (request,) = requests_to(app, "/stream")
    assert request["headers"]["accept"] == "text/event-stream"
    assert request["headers"]["cache-control"] == "no-cache"
    assert request["last_event_id"] is None


async def test_reconnects_after_a_clean_end_honouring_retry_and_sending_last_event_id() -> None:
    app = make_app()
    with anyio.fail_after(10):
        # The default wait is 30 s here: only the server's retry: 200 explains a quick return.
        async with stream_from(app, "/stream?count=2&retry=200", backoff=30, jitter=0) as source:
            events = await collect(source, 4)
            assert source.retry == 200
            assert source.connections == 2
    assert [event.id for event in events] == ["1", "2", "3", "4"]
    assert [event.retry for event in events] == [200, None, 200, None]
    first, second = requests_to(app, "/stream")
    assert first["last_event_id"] is None
    assert second["last_event_id"] == "2"
    assert events[2].json()["last_event_id"] == "2"
    (_, ended_at), *_ = app.state.ended
    waited = second["time"] - ended_at
    assert 0.19 <= waited < 5, waited


async def test_initial_last_event_id_is_sent_and_carried_like_a_browser() -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with serving(app) as url, httpx.AsyncClient() as http:
            async with connect(
                http, f"{url}/stream?count=1", last_event_id="41", reconnect=False
            ) as source:
                (resumed,) = await collect(source)
            async with connect(
                http, f"{url}/echo", headers={"Last-Event-ID": "7"}, reconnect=False
            ) as source:
                (echoed,) = await collect(source)
    assert resumed.json() == {"n": 42, "last_event_id": "41", "connection": 1}
    assert echoed.json()["last_event_id"] == "7"
    # The echo event has no id field: its id is the last event ID, as a browser's lastEventId.
    assert echoed.id == "7"
    assert echoed.event == "echo"


async def test_a_non_ascii_last_event_id_goes_back_as_utf8() -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with stream_from(app, "/unicode", **FAST) as source:
            events = await collect(source)
    assert [(event.event, event.data, event.id) for event in events] == [
        (None, "first", "ünï✓-1"),
        ("seen", "ünï✓-1", "ünï✓-1"),
    ]
    assert source.state == "closed"  # the third answer was 204


async def test_extra_request_options_are_sent_on_every_connection() -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with stream_from(
            app,
            "/echo",
            method="POST",
            json={"query": "ünï"},
            params={"page": "2"},
            headers={"X-Token": "secret", "Accept": "text/event-stream, */*"},
            **FAST,
        ) as source:
            events = await collect(source, 2)
    first, second = (event.json() for event in events)
    for seen in (first, second):
        assert seen["method"] == "POST"
        assert json.loads(seen["body"]) == {"query": "ünï"}
        assert seen["query"] == {"page": "2"}
        assert seen["headers"]["x-token"] == "secret"
        assert seen["headers"]["accept"] == "text/event-stream, */*"


async def test_redirects_are_followed_and_reconnection_uses_the_original_url() -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with stream_from(app, "/moved", **FAST) as source:
            events = await collect(source)
    assert [event.id for event in events] == ["1"]
    paths = [(request["path"], request["last_event_id"]) for request in app.state.requests]
    assert paths == [("/moved", None), ("/stream", None), ("/moved", "1"), ("/stream", "1")]


# -- statuses and content types ---------------------------------------------------------


async def test_204_at_once_means_no_stream_and_no_reconnection() -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with stream_from(app, "/status/204", **FAST) as source:
            assert source.state == "closed"
            assert await collect(source) == []
    assert (source.connections, source.attempts) == (0, 1)
    assert len(requests_to(app, "/status/204")) == 1


async def test_204_on_reconnection_ends_the_iteration() -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with stream_from(app, "/stream?count=2&then=204", **FAST) as source:
            events = await collect(source)
    assert [event.id for event in events] == ["1", "2"]
    assert [request["last_event_id"] for request in requests_to(app, "/stream")] == [None, "2"]
    assert (source.state, source.connections) == ("closed", 1)


async def test_an_error_status_on_reconnection_ends_the_iteration_with_the_error() -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with stream_from(app, "/stream?count=2&then=500", **FAST) as source:
            received = []

            async def read_all() -> None:
                async for event in source:
                    received.append(event.id)

            with pytest.raises(SSEStatusError) as caught:
                await read_all()
            assert state(source) == "closed"
    assert received == ["1", "2"]
    assert caught.value.status_code == 500


async def test_a_listed_status_without_reconnect_is_a_status_error() -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with serving(app) as url, httpx.AsyncClient() as http:
            with pytest.raises(SSEStatusError):
                async with connect(
                    http, f"{url}/flaky?fail=1&code=503", retry_statuses={503}, reconnect=False
                ):
                    pytest.fail("a failed connection must not be entered")
    assert len(requests_to(app, "/flaky")) == 1


@pytest.mark.parametrize("code", [500, 503, 404, 401, 301])
async def test_an_error_status_fails_the_connection_without_retrying(code: int) -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with serving(app) as url, httpx.AsyncClient() as http:
            with pytest.raises(SSEStatusError) as caught:
                async with connect(http, f"{url}/status/{code}", follow_redirects=False, **FAST):
                    pytest.fail("a failed connection must not be entered")
    assert caught.value.status_code == code
    assert str(code) in str(caught.value)
    assert caught.value.response.is_closed
    assert len(requests_to(app, f"/status/{code}")) == 1


async def test_a_wrong_content_type_fails_the_connection() -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with serving(app) as url, httpx.AsyncClient() as http:
            with pytest.raises(SSEContentTypeError) as caught:
                async with connect(http, f"{url}/wrong-type", **FAST):
                    pytest.fail("a failed connection must not be entered")
    assert caught.value.content_type == "text/plain; charset=utf-8"
    assert "text/plain" in str(caught.value)
    assert len(requests_to(app, "/wrong-type")) == 1


async def test_statuses_listed_in_retry_statuses_are_retried() -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with stream_from(
            app, "/flaky?fail=2&code=503", retry_statuses={503}, **FAST
        ) as source:
            assert (source.attempts, source.failures) == (3, 2)
            (event,) = await collect(source, 1)
            assert source.failures == 0  # the stream delivered: the count starts again
    assert (event.data, event.id) == ("finally", "flaky")


# -- failures and backoff ----------------------------------------------------------------


async def test_gives_up_after_max_attempts_against_a_closed_port(http_lib: Any) -> None:
    port = free_port()
    sent: list[Any] = []

    async def count(request: Any) -> None:
        sent.append(request)

    with anyio.fail_after(10):
        async with http_lib.AsyncClient(event_hooks={"request": [count]}) as http:
            source = connect(
                http, f"http://127.0.0.1:{port}/stream", max_attempts=3, backoff=0.02, jitter=0
            )
            started = time.monotonic()
            with pytest.raises(SSEConnectionError) as caught:
                async with source:
                    pytest.fail("nothing listens there")
            elapsed = time.monotonic() - started
    assert caught.value.attempts == 3
    assert isinstance(caught.value.__cause__, http_lib.ConnectError)
    assert "3 consecutive failed attempts" in str(caught.value)
    assert len(sent) == 3
    assert source.state == "closed"
    # Waits of 0.02 s then 0.04 s (backoff_factor 2) between the three attempts.
    assert elapsed >= 0.06


async def test_without_reconnect_a_refused_connection_raises_at_once(http_lib: Any) -> None:
    port = free_port()
    with anyio.fail_after(10):
        async with http_lib.AsyncClient() as http:
            with pytest.raises(SSEConnectionError) as caught:
                async with connect(http, f"http://127.0.0.1:{port}/", reconnect=False):
                    pytest.fail("nothing listens there")
    assert caught.value.attempts == 1


async def test_a_stream_that_ends_before_sending_anything_counts_as_a_failure() -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with stream_from(app, "/empty", max_attempts=3, **FAST) as source:
            with pytest.raises(SSEConnectionError) as caught:
                await collect(source)
    assert caught.value.attempts == 3
    assert "without sending anything" in str(caught.value)
    assert len(requests_to(app, "/empty")) == 3


async def test_reconnects_after_a_dropped_connection(http_lib: Any) -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with stream_from(app, "/broken", library=http_lib, **FAST) as source:
            events = await collect(source, 2)
    assert [(event.data, event.id) for event in events] == [("before", "b1"), ("after", "b2")]
    assert [request["last_event_id"] for request in requests_to(app, "/broken")] == [None, "b1"]


async def test_without_reconnect_a_dropped_connection_raises(http_lib: Any) -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with stream_from(app, "/broken", library=http_lib, reconnect=False) as source:
            received = []

            async def read_all() -> None:
                async for event in source:
                    received.append(event.data)

            with pytest.raises(SSEConnectionError) as caught:
                await read_all()
    assert received == ["before"]
    assert isinstance(caught.value.__cause__, http_lib.RemoteProtocolError)
    assert source.state == "closed"


async def test_a_quiet_stream_is_not_cut_by_the_clients_read_timeout(http_lib: Any) -> None:
    app = make_app()
    path = "/stream?count=2&interval=0.4&ping=0"
    with anyio.fail_after(10):
        async with (
            serving(app) as url,
            http_lib.AsyncClient(timeout=http_lib.Timeout(5, read=0.15)) as http,
        ):
            async with connect(http, f"{url}{path}", reconnect=False) as source:
                assert len(await collect(source)) == 2
            assert source.connections == 1
            # An explicit timeout is the caller's: it applies, and a timeout is a network error.
            timeout = http_lib.Timeout(5, read=0.15)
            async with connect(http, f"{url}{path}", reconnect=False, timeout=timeout) as source:
                with pytest.raises(SSEConnectionError) as caught:
                    await collect(source)
    assert isinstance(caught.value.__cause__, http_lib.ReadTimeout)


def test_reconnect_delay_grows_caps_and_only_adds_jitter() -> None:
    def delays(**options: Any) -> list[float]:
        return [reconnect_delay(failures, **options) for failures in range(7)]

    assert delays(base=1, factor=2, cap=10, jitter=0) == [1, 1, 2, 4, 8, 10, 10]
    # A server's retry above the cap wins: the client waits at least the reconnection time.
    assert delays(base=20, factor=2, cap=10, jitter=0) == [20] * 7
    assert delays(base=0.5, factor=1, cap=10, jitter=0) == [0.5] * 7
    assert reconnect_delay(3, base=1, factor=2, cap=10, jitter=0.25, rand=lambda: 1.0) == 5.0
    assert reconnect_delay(3, base=1, factor=2, cap=10, jitter=0.25, rand=lambda: 0.0) == 4.0
    assert reconnect_delay(10**6, base=1, factor=10, cap=30, jitter=0) == 30


# -- cancellation and misuse -------------------------------------------------------------


async def test_cancellation_closes_the_response_and_the_server_sees_the_disconnect() -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with serving(app) as url, httpx.AsyncClient() as http:
            source = connect(http, f"{url}/stream?interval=0.02")
            received = []
            with anyio.CancelScope() as scope:
                async with source:
                    async for event in source:
                        received.append(event.id)
                        if len(received) == 3:
                            scope.cancel()
            assert scope.cancelled_caught
            assert (source.state, source.response) == ("closed", None)
            # The connection was really closed: the server notices and ends the producer.
            while not app.state.ended:  # noqa: ASYNC110 (the app records it in a plain list)
                await anyio.sleep(0.01)
    assert received == ["1", "2", "3"]


async def test_cancellation_while_waiting_to_reconnect_is_prompt() -> None:
    port = free_port()
    with anyio.fail_after(5):
        async with httpx.AsyncClient() as http:
            source = connect(http, f"http://127.0.0.1:{port}/", backoff=60)
            with anyio.move_on_after(0.2) as scope:
                async with source:
                    pytest.fail("nothing listens there")
    assert scope.cancelled_caught
    assert (source.state, source.attempts) == ("closed", 1)


async def test_one_task_at_a_time_and_one_use_per_source() -> None:
    app = make_app()
    with anyio.fail_after(10):
        async with serving(app) as url, httpx.AsyncClient() as http:
            source = connect(http, f"{url}/stream?count=1&hold=30")
            with pytest.raises(RuntimeError, match="async with"):
                await source.__anext__()
            async with source, anyio.create_task_group() as group:
                await source.__anext__()  # and no other event comes
                group.start_soon(source.__anext__)
                await anyio.sleep(0.05)
                with pytest.raises(RuntimeError, match="another task"):
                    await source.__anext__()
                group.cancel_scope.cancel()
            with pytest.raises(RuntimeError, match="already used"):
                async with source:
                    pass


async def test_options_are_checked_when_connecting(http_lib: Any) -> None:
    async with http_lib.AsyncClient() as http:
        url = "http://127.0.0.1:9/"
        with pytest.raises(ValueError, match="max_attempts must be >= 1, got 0"):
            connect(http, url, max_attempts=0)
        # A wrong type is a TypeError (issue 12), as for the other options.
        with pytest.raises(TypeError, match=r"max_attempts must be an int or None, got 1.5"):
            connect(http, url, max_attempts=1.5)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="max_attempts must be an int or None, got True"):
            connect(http, url, max_attempts=True)
        with pytest.raises(ValueError, match="jitter"):
            connect(http, url, jitter=2)
        with pytest.raises(ValueError, match="backoff"):
            connect(http, url, backoff=-1)
        with pytest.raises(ValueError, match="backoff_factor"):
            connect(http, url, backoff_factor=0.5)
        with pytest.raises(ValueError, match="last_event_id"):
            connect(http, url, last_event_id="a\nb")
        with pytest.raises(ValueError, match="retry_statuses"):
            connect(http, url, retry_statuses={204})
    expected = "client must be an httpx.AsyncClient or an httpx2.AsyncClient, got "
    with pytest.raises(TypeError, match=expected + http_lib.__name__), http_lib.Client() as sync:
        connect(sync, "http://127.0.0.1:9/")
    with pytest.raises(TypeError, match=expected + "builtins.str"):
        connect("http://127.0.0.1:9/", "http://127.0.0.1:9/")  # type: ignore[arg-type]


# -- a real server process, killed and started again -------------------------------------


async def test_reconnects_after_the_server_process_is_killed_and_restarted(
    anyio_backend: str, tmp_path: Path
) -> None:
    port = free_port()
    target = "tests.servers.client_app:app"
    log = tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}/stream?interval=0.05"
    server = await start_server_process(target, port, backend=anyio_backend, log=log)
    restarted = None
    try:
        with anyio.fail_after(30):
            # The first attempts may find nothing listening yet: that is what retries are for.
            async with (
                httpx.AsyncClient() as http,
                connect(
                    http, url, backoff=0.1, max_backoff=0.5, max_attempts=100, jitter=0.1
                ) as source,
            ):
                before = await collect(source, 3)
                await kill_process_group(server)
                restarted = await start_server_process(target, port, backend=anyio_backend, log=log)
                after = await collect(source, 2)
                connections = source.connections
    finally:
        await kill_process_group(server)
        if restarted is not None:
            await kill_process_group(restarted)
    # Events already received before the kill are not lost or repeated: the new process
    # resumes right after the Last-Event-ID the client sent.
    last = int(before[-1].id or 0)
    assert [event.json()["n"] for event in after] == [last + 1, last + 2]
    assert after[0].json()["last_event_id"] == str(last)
    assert connections == 2


# -- the command line --------------------------------------------------------------------


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "trio_sse.client", *args]


async def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(30):
        return await anyio.run_process(cli(*args), check=False, env=subprocess_env(), cwd=REPO)


async def test_cli_prints_one_line_per_event() -> None:
    app = make_app()
    async with serving(app) as url:
        result = await run_cli(f"{url}/stream?count=3&retry=1000", "--no-reconnect")
        echo = await run_cli(
            f"{url}/echo", "--no-reconnect", "--last-event-id", "9", "--header", "X-Test: yes"
        )
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    lines = result.stdout.decode().splitlines()
    assert lines == [
        f'[{n}] message: {{"n": {n}, "last_event_id": null, "connection": 1}}' for n in (1, 2, 3)
    ]
    assert echo.returncode == 0, echo.stderr
    (line,) = echo.stdout.decode().splitlines()
    assert line.startswith("[9] echo: {")
    described = json.loads(line.partition(": ")[2])
    assert (described["last_event_id"], described["headers"]["x-test"]) == ("9", "yes")


async def test_cli_json_lines() -> None:
    app = make_app()
    async with serving(app) as url:
        result = await run_cli(f"{url}/stream?count=2&retry=1500", "--no-reconnect", "--json")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [(record["event"], record["id"], record["retry"]) for record in records] == [
        ("message", "1", 1500),
        ("message", "2", None),
    ]
    assert [json.loads(record["data"])["n"] for record in records] == [1, 2]


def test_format_event_shows_one_line_per_event() -> None:
    event = ServerSentEvent("two\nlines", event="update", id="ü1")
    assert format_event(event) == "[ü1] update: two\\nlines"
    assert format_event(ServerSentEvent("")) == "message: "
    assert json.loads(format_event(event, as_json=True)) == {
        "event": "update",
        "data": "two\nlines",
        "id": "ü1",
        "retry": None,
    }


async def test_cli_errors_exit_1_with_a_message() -> None:
    app = make_app()
    async with serving(app) as url:
        status = await run_cli(f"{url}/status/500")
        wrong = await run_cli(f"{url}/wrong-type")
    refused = await run_cli(f"http://127.0.0.1:{free_port()}/", "--no-reconnect")
    assert (status.returncode, wrong.returncode, refused.returncode) == (1, 1, 1)
    assert b"500 Internal Server Error" in status.stderr
    assert b"text/plain" in wrong.stderr
    assert b"could not connect" in refused.stderr
    assert status.stdout == wrong.stdout == refused.stdout == b""


async def test_cli_exits_quietly_on_ctrl_c() -> None:
    app = make_app()
    async with serving(app) as url:
        with anyio.fail_after(30):
            async with await anyio.open_process(
                cli(f"{url}/stream?interval=0.05"), env=subprocess_env(), cwd=REPO
            ) as process:
                assert process.stdout is not None and process.stderr is not None
                output = b""
                while output.count(b"\n") < 2:
                    output += await process.stdout.receive()
                process.send_signal(signal.SIGINT)
                returncode = await process.wait()
                errors = b"".join([chunk async for chunk in process.stderr])
    assert returncode == 0
    assert errors == b""
    assert output.startswith(b'[1] message: {"n": 1')


async def test_cli_turns_ctrl_c_into_a_cancellation(capsys: pytest.CaptureFixture[str]) -> None:
    # In process: a SIGINT while the command streams cancels it at its next checkpoint and it
    # returns 0. Before, trio raised KeyboardInterrupt wherever the program was (once between
    # making a coroutine and awaiting it: a "never awaited" warning on a quiet Ctrl-C).
    from trio_sse.client import _cli

    app = make_app()
    async with serving(app) as url:
        args = _cli.build_parser().parse_args([f"{url}/stream?interval=0.05"])
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:

                async def interrupt() -> None:
                    await anyio.sleep(0.3)  # a few events in (one every 0.05 s)
                    signal.raise_signal(signal.SIGINT)

                group.start_soon(interrupt)
                assert await _cli._run(args, httpx) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith('[1] message: {"n": 1')
    assert captured.err == ""


async def test_ctrl_c_watcher_cancels_its_scope() -> None:
    from trio_sse.client._cli import _cancel_on_ctrl_c

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            await group.start(_cancel_on_ctrl_c, group.cancel_scope)
            signal.raise_signal(signal.SIGINT)
            await anyio.sleep_forever()
        assert group.cancel_scope.cancel_called
