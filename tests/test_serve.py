"""The in-process runner: serve(), its tokens, outside cancellation (uvicorn: test_uvicorn_hook)."""

from __future__ import annotations

import functools
import re
import signal
import subprocess
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.streams.memory import MemoryObjectSendStream

from trio_sse import (
    EventDecoder,
    EventSourceResponse,
    ServerSentEvent,
    ShutdownToken,
    current_shutdown_token,
    run,
    serve,
)

from ._backends import BACKENDS
from .helpers import sse_app
from .processes import REPO, child_env, free_port, kill_group, port_accepts

Send = MemoryObjectSendStream[Any]

FAREWELL = ServerSentEvent("bye", event="shutdown")


async def ticking(send: Send) -> None:
    async with send:
        number = 0
        while True:
            await send.send(ServerSentEvent(number, id=number))
            number += 1
            await anyio.sleep(0.01)


async def read_until_end(
    client: httpx.AsyncClient, url: str, token: ShutdownToken
) -> tuple[list[ServerSentEvent], EventDecoder]:
    decoder = EventDecoder()
    events: list[ServerSentEvent] = []
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            events.extend(decoder.feed(chunk))
            if events and not token.triggered:
                token.trigger("test")
    return events, decoder


async def one_then_wait(send: Send) -> None:
    async with send:
        await send.send(ServerSentEvent(0, id=0))
        await anyio.sleep_forever()


def patient_config() -> Any:
    """A hypercorn config that would wait a minute for requests: only draining ends them."""
    from hypercorn.config import Config

    config = Config()
    config.graceful_timeout = 60
    config.bind = ["127.0.0.1:0"]
    return config


@pytest.mark.anyio
async def test_serve_reports_its_url_and_drains_on_trigger() -> None:
    token = ShutdownToken()
    app = sse_app(lambda: one_then_wait, farewell=FAREWELL, farewell_retry=(100, 200))
    with anyio.fail_after(15):
        async with anyio.create_task_group() as group:
            urls = await group.start(
                functools.partial(
                    serve, app, config=patient_config(), shutdown=token, handle_signals=False
                )
            )
            assert urls[0].startswith("http://127.0.0.1:")
            async with httpx.AsyncClient() as client:
                events, decoder = await read_until_end(client, urls[0] + "/", token)
        # The group exited: serve() returned on its own once the stream drained.
    assert [(event.event, event.data) for event in events] == [(None, "0"), ("shutdown", "bye")]
    assert decoder.retry is not None
    assert 100 <= decoder.retry <= 200


@pytest.mark.anyio
async def test_serve_checks_the_backend(anyio_backend: str) -> None:
    other = "asyncio" if anyio_backend == "trio" else "trio"
    with pytest.raises(RuntimeError, match=f"backend='{other}'"):
        await serve(sse_app(lambda: ticking), port=0, backend=other, handle_signals=False)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_serve_with_the_default_token_gives_each_run_a_child_of_the_process_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import trio_sse._shutdown as shutdown_module

    process_token = ShutdownToken()
    monkeypatch.setattr(shutdown_module, "_default_token", process_token)
    seen: list[tuple[ShutdownToken, bool]] = []

    async def producer(send: Send) -> None:
        token = current_shutdown_token()
        seen.append((token, token.triggered))
        await one_then_wait(send)

    app = sse_app(lambda: producer)
    with anyio.fail_after(30):
        for _ in range(2):
            async with anyio.create_task_group() as group:
                urls = await group.start(
                    functools.partial(serve, app, config=patient_config(), handle_signals=False)
                )
                async with httpx.AsyncClient() as client:
                    run_token = None
                    async with client.stream("GET", urls[0] + "/") as response:
                        async for _chunk in response.aiter_raw():
                            run_token = seen[-1][0]
                            run_token.trigger("test")  # this run drains; serve returns
                    assert run_token is not None
    (first, first_was_triggered), (second, second_was_triggered) = seen
    # The first run's spent token is not the second's: that one streamed as usual.
    assert first is not second
    assert not first_was_triggered
    assert not second_was_triggered
    assert first._parent is process_token
    assert second._parent is process_token
    assert not process_token.triggered  # never triggered by a server, never replaced
    assert shutdown_module._default_token is process_token


@pytest.mark.anyio
async def test_cancelled_from_outside_still_ends_the_body_cleanly() -> None:
    """What hypercorn's own graceful timeout does: cancel the app task."""
    cleaned_up = anyio.Event()

    async def producer(send: Send) -> None:
        try:
            await ticking(send)
        finally:
            cleaned_up.set()

    response = EventSourceResponse(
        producer, farewell=FAREWELL, farewell_retry=1500, shutdown=ShutdownToken()
    )
    messages: list[MutableMapping[str, Any]] = []
    first_event = anyio.Event()

    async def receive() -> MutableMapping[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: MutableMapping[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body":
            first_event.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(
                response,
                {"type": "http", "method": "GET", "path": "/", "headers": []},
                receive,
                send,
            )
            await first_event.wait()
            group.cancel_scope.cancel()
    assert cleaned_up.is_set()
    last = messages[-1]
    assert last["more_body"] is False
    assert last["body"] == FAREWELL.encode() + b"retry: 1500\r\n\r\n"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"shutdown_grace_period": "5"}, TypeError, "shutdown_grace_period must be a number .*'5'"),
        ({"shutdown_grace_period": -1}, ValueError, r"shutdown_grace_period must be >= 0 .*got -1"),
        ({"backend": 1}, TypeError, "backend must be one of 'trio', 'asyncio' .*got 1"),
        ({"backend": "curio"}, ValueError, "backend must be one of 'trio', 'asyncio', got 'curio'"),
        ({"shutdown": "now"}, TypeError, "shutdown must be a ShutdownToken or None, got 'now'"),
        ({"send_timeout": 0}, ValueError, r"send_timeout must be > 0 \(seconds\), got 0"),
        ({"send_timeout": "30"}, TypeError, "send_timeout must be a number of seconds or None"),
    ],
)
async def test_serve_checks_its_options_before_listening(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with anyio.fail_after(5), pytest.raises(error, match=match):
        await serve(sse_app(lambda: ticking), port=0, handle_signals=False, **options)


def test_run_checks_the_backend_name() -> None:
    with pytest.raises(TypeError, match=r"backend must be one of .*got None"):
        run(sse_app(lambda: ticking), backend=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="backend must be one of 'trio', 'asyncio', got 'curio'"):
        run(sse_app(lambda: ticking), backend="curio")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1, (5, 1), (0, -1), (-2, -1)])
def test_farewell_retry_bad_value_is_a_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="farewell_retry must be .*got " + re.escape(repr(value))):
        EventSourceResponse(ticking, farewell_retry=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [(1,), "100", 1.5, True, (1, 2.5), [1, 2], (1, 2, 3)])
def test_farewell_retry_of_wrong_type_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match=r"farewell_retry must be milliseconds .*got "):
        EventSourceResponse(ticking, farewell_retry=value)  # type: ignore[arg-type]


def test_farewell_type_is_validated() -> None:
    with pytest.raises(TypeError, match=r"farewell must be .*got 3.5"):
        EventSourceResponse(ticking, farewell=3.5)


@pytest.mark.anyio
async def test_a_normal_end_is_not_reported_as_a_client_disconnect() -> None:
    """hypercorn delivers http.disconnect from inside the final send: that is not the client."""
    closed: list[MutableMapping[str, Any]] = []

    async def on_close(message: MutableMapping[str, Any]) -> None:
        closed.append(message)

    async def three(send: Send) -> None:
        async with send:
            for number in range(3):
                await send.send(number)

    app = sse_app(lambda: three, client_close_handler_callable=on_close)
    token = ShutdownToken()
    with anyio.fail_after(15):
        async with anyio.create_task_group() as group:
            urls = await group.start(
                functools.partial(serve, app, port=0, shutdown=token, handle_signals=False)
            )
            async with httpx.AsyncClient() as client:
                for _ in range(5):
                    response = await client.get(urls[0] + "/")
                    assert response.text == "data: 0\r\n\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n"
            token.trigger()
    assert closed == []


def _serve_output(tmp_path: Path, backend: str, log_level: str) -> str:
    """Start ``python -m trio_sse serve`` for real, stop it with SIGINT, return all it printed."""
    port = free_port()
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        command = [sys.executable, "-m", "trio_sse", "serve", "tests.servers.sse_app:app"]
        command += ["--port", str(port), "--backend", backend, "--log-level", log_level]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=REPO,
            env=child_env(),
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 20
        while not port_accepts(port):
            assert process.poll() is None, err.read_text()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        # The sockets listen before the signal handlers are in place; hypercorn answers only
        # after they are: one request, then SIGINT is a graceful stop and not a traceback.
        assert httpx.get(f"http://127.0.0.1:{port}/missing", timeout=10).status_code == 404
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0, err.read_text()
    finally:
        kill_group(process)
    return out.read_text() + err.read_text()


@pytest.mark.parametrize("backend", BACKENDS)
def test_serve_log_level_warning_is_quiet(tmp_path: Path, backend: str) -> None:
    output = _serve_output(tmp_path, backend, "warning")
    assert "Running on" not in output
    assert "serving on" not in output


@pytest.mark.parametrize("backend", BACKENDS)
def test_serve_log_level_info_says_running_on_once(tmp_path: Path, backend: str) -> None:
    output = _serve_output(tmp_path, backend, "info")
    assert output.count("Running on") == 1, output
    assert output.count("serving on") == 1, output
