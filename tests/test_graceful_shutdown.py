"""Graceful shutdown on real servers, real signals and real sockets.

Each test starts a server in a subprocess (``python -m trio_sse serve`` on trio or asyncio,
``uvicorn``, hypercorn's own CLI with a trio or asyncio worker, ``granian --interface asgi``
or ``daphne``) serving
``tests.servers.sse_app:app`` on a free port of 127.0.0.1, opens event streams to it with
httpx, sends the server signals and reads every stream to its end.  The client side runs under
trio and asyncio (``anyio_backend``); every wait is bounded.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import anyio.to_thread
import httpx
import pytest

from trio_sse import EventDecoder, ServerSentEvent

from ._backends import requires_trio
from .processes import child_env, free_port, spawn, wait_accepting

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

APP = "tests.servers.sse_app:app"
RUNNERS = ["runner-trio", "runner-asyncio"]
SERVERS = [
    *RUNNERS,
    "uvicorn",
    "hypercorn-trio",
    pytest.param(
        "hypercorn-asyncio",
        marks=pytest.mark.skipif(
            sys.version_info >= (3, 12),
            # Upstream, not ours: on Python 3.12+ hypercorn 0.18's asyncio worker never cancels
            # a streaming request at its graceful timeout, not even a plain Starlette
            # StreamingResponse (checked by hand), so the process does not exit. CI runs 3.11.
            reason="hypercorn 0.18 -k asyncio ignores its graceful timeout on Python 3.12+",
        ),
    ),
    "granian",
    "daphne",
]
# The servers that run under trio: skipped where trio is not installed (``nox -s notrio``).
TRIO_KINDS = {"runner-trio", "hypercorn-trio"}


def kinds(*values: object) -> list[object]:
    """*values* (kinds or params) for parametrize, the trio kinds marked :data:`requires_trio`."""
    return [
        pytest.param(value, marks=requires_trio)
        if isinstance(value, str) and value in TRIO_KINDS
        else value
        for value in values
    ]


# On Python 3.12+ neither uvicorn 0.54 (its force-quit on a second SIGINT) nor hypercorn's
# asyncio worker (graceful timeout 0, what the asyncio runner's second signal relies on) ends
# an open streaming request, with a plain Starlette StreamingResponse as well: upstream.
_STUCK_ON_312 = pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="uvicorn 0.54 and hypercorn 0.18 (asyncio) do not force-stop open streams on 3.12+",
)
READY_TIMEOUT = 15.0

Popen = subprocess.Popen[bytes]

# The farewell the app sends on shutdown, then the jittered retry hint, then the end of body.
FAREWELL_TAIL = re.compile(rb"event: shutdown\r\ndata: bye\r\n\r\nretry: (\d+)\r\n\r\n\Z")


def server_command(kind: str, port: int, grace: float) -> list[str]:
    if kind in RUNNERS:
        backend = kind.removeprefix("runner-")
        return [
            *(sys.executable, "-m", "trio_sse", "serve", APP, "--backend", backend),
            *("--host", "127.0.0.1", "--port", str(port), "--grace", f"{grace:g}"),
        ]
    if kind == "uvicorn":
        return [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port)]
    if kind == "granian":
        # --workers-kill-timeout: without one granian waits for open connections forever.
        return [
            *(sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"),
            *("--port", str(port), "--workers-kill-timeout", "10", APP),
        ]
    if kind == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), APP]
    worker = kind.removeprefix("hypercorn-")
    return [
        *(sys.executable, "-m", "hypercorn", "-k", worker, "-b", f"127.0.0.1:{port}"),
        *("--graceful-timeout", f"{grace:g}", APP),
    ]


@dataclass
class Server:
    kind: str
    process: Popen
    url: str
    count_file: Path
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:]

    def signal(self, signum: signal.Signals) -> None:
        # Only the server's main process: hypercorn's CLI tells its worker itself.
        self.process.send_signal(signum)

    async def wait_exit(self, within: float) -> int:
        """The exit status, once the process has exited; fails after ``within`` seconds."""
        try:
            return await anyio.to_thread.run_sync(functools.partial(self.process.wait, within))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.kind} still running {within} s later:\n{self.log()}")

    async def count_lines(self, expected: int) -> list[str]:
        """The producers' ``finally`` markers, waiting briefly for ``expected`` of them."""
        lines: list[str] = []
        with anyio.move_on_after(2):
            while True:
                if self.count_file.exists():
                    lines = self.count_file.read_text().splitlines()
                if len(lines) >= expected:
                    break
                await anyio.sleep(0.02)
        return lines


@asynccontextmanager
async def running_server(
    kind: str, tmp_path: Path, *, grace: float, sse_grace: float = 1.0
) -> AsyncIterator[Server]:
    port = free_port()
    count_file = tmp_path / f"count-{port}.txt"
    log_file = tmp_path / f"server-{port}.log"
    env = child_env({"SSE_COUNT_FILE": str(count_file), "SSE_GRACE": str(sse_grace)})
    process = spawn(server_command(kind, port, grace), log_file, env)
    server = Server(kind, process, f"http://127.0.0.1:{port}", count_file, log_file)
    try:
        await wait_accepting(port, process, server.log, READY_TIMEOUT)
        yield server
    finally:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(5)


@dataclass
class StreamResult:
    events: list[ServerSentEvent] = field(default_factory=list)
    tail: bytes = b""
    retry: int | None = None
    outcome: str = "running"  # then "clean", or the repr of the error that cut it
    ended_at: float = 0.0


class Streams:
    """``count`` concurrent streams to ``url``, each read to its end in its own task."""

    def __init__(self, client: httpx.AsyncClient, url: str, count: int) -> None:
        self.client = client
        self.url = url
        self.results = [StreamResult() for _ in range(count)]
        self._started = 0
        self.all_started = anyio.Event()

    def start(self, group: anyio.abc.TaskGroup) -> None:
        for result in self.results:
            group.start_soon(self._read, result)

    async def _read(self, result: StreamResult) -> None:
        decoder = EventDecoder()
        try:
            async with self.client.stream("GET", self.url) as response:
                assert response.status_code == 200
                async for chunk in response.aiter_raw():
                    result.tail = (result.tail + chunk)[-200:]
                    events = decoder.feed(chunk)
                    if events and not result.events:
                        self._started += 1
                        if self._started == len(self.results):
                            self.all_started.set()
                    result.events.extend(events)
            result.outcome = "clean"
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            result.outcome = repr(exc)
        finally:
            result.retry = decoder.retry
            result.ended_at = anyio.current_time()

    def assert_farewell(self) -> None:
        for index, result in enumerate(self.results):
            context = f"stream {index}: {result.outcome}, tail {result.tail!r}"
            assert result.outcome == "clean", context
            farewells = [event for event in result.events if event.event == "shutdown"]
            assert farewells == result.events[-1:], context
            assert farewells[0].data == "bye", context
            match = FAREWELL_TAIL.search(result.tail)
            assert match is not None, context
            assert result.retry == int(match[1]), context
            assert 1000 <= result.retry <= 3000, context


def make_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
        timeout=httpx.Timeout(10.0),
    )


# -- 1. every server drains 50 cooperative streams on SIGTERM -------------------------------------

# (grace given to the server, the time it may take to exit after the signal, its exit codes,
# the producers' marker: "sse" when they saw the token, "sse:ended" when cancelled instead)
DRAIN = {
    "runner-trio": (2.0, 4.0, {0}, "sse"),
    "runner-asyncio": (2.0, 4.0, {0}, "sse"),
    # uvicorn waits for the streams (which end at once), then re-raises the signal on itself.
    "uvicorn": (0.0, 3.0, {0, -signal.SIGTERM}, "sse"),
    # hypercorn's worker never sees the signal: its streams are cancelled at the graceful
    # timeout and still send the farewell and a clean end of body.
    "hypercorn-trio": (2.0, 4.0, {0}, "sse:ended"),
    "hypercorn-asyncio": (2.0, 4.0, {0}, "sse:ended"),
    # The worker's signal is chained (trio_sse._granian): the streams end, granian exits.
    "granian": (0.0, 4.0, {0}, "sse"),
    # Twisted's handler is held until the streams drained (trio_sse._daphne).
    "daphne": (0.0, 4.0, {0}, "sse"),
}


@pytest.mark.parametrize("kind", kinds(*SERVERS))
async def test_sigterm_drains_every_stream_with_a_farewell(kind: str, tmp_path: Path) -> None:
    count = 50
    grace, exit_within, exit_codes, marker = DRAIN[kind]
    async with running_server(kind, tmp_path, grace=grace) as server, make_client() as client:
        streams = Streams(client, f"{server.url}/sse", count)
        with anyio.fail_after(READY_TIMEOUT + exit_within + 5):
            async with anyio.create_task_group() as group:
                streams.start(group)
                await streams.all_started.wait()
                signalled_at = anyio.current_time()
                server.signal(signal.SIGTERM)
                code = await server.wait_exit(exit_within)
                exited_after = anyio.current_time() - signalled_at
        streams.assert_farewell()
        lines = await server.count_lines(count)
        assert lines == [marker] * count, server.log()
        assert code in exit_codes, (code, server.log())
        print(f"{kind}: exit code {code} after {exited_after:.2f} s")


# -- 2. a second signal during the grace period stops at once ------------------------------------

# (first signal, second signal, exit codes): uvicorn only forces its exit on a second SIGINT.
FORCE = {
    "runner-trio": (signal.SIGTERM, signal.SIGTERM, {0}),
    "runner-asyncio": (signal.SIGTERM, signal.SIGTERM, {0}),
    "uvicorn": (signal.SIGINT, signal.SIGINT, {0}),
    # The second signal reaches Twisted at once: daphne cancels the streams (farewell still).
    "daphne": (signal.SIGTERM, signal.SIGTERM, {0}),
}


_FORCE_MARKS: dict[str, pytest.MarkDecorator | tuple[pytest.MarkDecorator, ...]] = {
    "runner-trio": requires_trio,
    "daphne": (),
}


@pytest.mark.parametrize(
    "kind",
    [pytest.param(kind, marks=_FORCE_MARKS.get(kind, _STUCK_ON_312)) for kind in FORCE],
)
async def test_second_signal_stops_at_once(kind: str, tmp_path: Path) -> None:
    count = 10
    first, second, exit_codes = FORCE[kind]
    async with (
        running_server(kind, tmp_path, grace=30, sse_grace=30) as server,
        make_client() as client,
    ):
        streams = Streams(client, f"{server.url}/stubborn", count)
        with anyio.fail_after(READY_TIMEOUT + 10):
            async with anyio.create_task_group() as group:
                streams.start(group)
                await streams.all_started.wait()
                server.signal(first)
                await anyio.sleep(0.5)
                assert server.process.poll() is None, server.log()
                assert all(result.outcome == "running" for result in streams.results)
                signalled_at = anyio.current_time()
                server.signal(second)
                code = await server.wait_exit(3)
                exited_after = anyio.current_time() - signalled_at
        streams.assert_farewell()
        lines = await server.count_lines(count)
        assert lines == ["stubborn"] * count, server.log()
        assert code in exit_codes, (code, server.log())
        print(f"{kind}: exit code {code} after {exited_after:.2f} s")


# -- 3. a producer that ignores the token is cancelled at its grace period ------------------------


@pytest.mark.parametrize("kind", kinds(*RUNNERS, "granian", "daphne"))
async def test_stubborn_stream_is_cancelled_at_its_grace(kind: str, tmp_path: Path) -> None:
    count = 10
    async with (
        running_server(kind, tmp_path, grace=5, sse_grace=1) as server,
        make_client() as client,
    ):
        streams = Streams(client, f"{server.url}/stubborn", count)
        with anyio.fail_after(READY_TIMEOUT + 10):
            async with anyio.create_task_group() as group:
                streams.start(group)
                await streams.all_started.wait()
                signalled_at = anyio.current_time()
                server.signal(signal.SIGTERM)
                code = await server.wait_exit(5 + 2)
                exited_after = anyio.current_time() - signalled_at
        streams.assert_farewell()
        for result in streams.results:
            assert 0.8 <= result.ended_at - signalled_at < 4
        lines = await server.count_lines(count)
        assert lines == ["stubborn"] * count, server.log()
        assert code == 0, server.log()
        print(f"{kind}: exit code {code} after {exited_after:.2f} s")


# -- 4. a client that leaves: its producer is closed, the server keeps serving ---------------------


@pytest.mark.parametrize("kind", ["uvicorn", "granian", "daphne"])
async def test_client_that_leaves_closes_its_producer(kind: str, tmp_path: Path) -> None:
    count = 5
    async with running_server(kind, tmp_path, grace=0) as server:
        with anyio.fail_after(READY_TIMEOUT):
            async with make_client() as client, anyio.create_task_group() as group:
                streams = Streams(client, f"{server.url}/sse", count)
                streams.start(group)
                await streams.all_started.wait()
                group.cancel_scope.cancel()  # every client leaves mid-stream
            left_at = anyio.current_time()
            # The producer's channel is closed on the disconnect (its next send fails): it
            # ends well within the default disconnect_grace_period (1 s) and the margin.
            lines = await server.count_lines(count)
            assert lines == ["sse:ended"] * count, server.log()
            assert anyio.current_time() - left_at < 2.5
            assert server.process.poll() is None, server.log()
            async with make_client() as client:  # still serving
                streams = Streams(client, f"{server.url}/sse", 1)
                async with anyio.create_task_group() as group:
                    streams.start(group)
                    await streams.all_started.wait()
                    group.cancel_scope.cancel()
