"""Each middleware in front of a stream on real servers: uvicorn, hypercorn's trio and asyncio
workers (its own CLI) and ``trio_sse.serve`` (hypercorn under trio, the token triggered on
signal).

A subprocess serves ``tests.middleware.served:app`` (the middleware named by ``MW_KIND``) on
a free port of 127.0.0.1; the client (under trio and asyncio) reads a stepped stream over a
plain socket parsed by h11, event by event, acking each with httpx over another connection,
leaves it by closing the socket (the server sees the
disconnect: producer closed, close handler run), opens a second stream, signals the server
with SIGTERM and reads that stream to its end (the farewell, a clean end of body), and waits
for the process to exit. Every wait is bounded.
"""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import h11
import httpx
import pytest

from trio_sse import EventDecoder, ServerSentEvent

from .._backends import requires_trio
from ..processes import child_env, free_port, kill_group, spawn, wait_accepting
from .apps import EVIDENCE, FAREWELL, KINDS, REQUEST_HEADERS

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

APP = "tests.middleware.served:app"
READY_TIMEOUT = 15.0
EVENTS = 3
# hypercorn's worker never sees the signal (its parent does): the streams are cancelled at
# this graceful timeout, and trio_sse still sends the farewell and a clean end of body.
HYPERCORN_GRACE = 1.0
# (how long the process may take to exit after SIGTERM, its exit codes). uvicorn waits for
# the streams, which end at once, then re-raises the signal on itself.
# trio_sse.serve triggers the shutdown token on the signal, then gives the server this long.
RUNNER_GRACE = 2.0
EXIT = {
    "uvicorn": (5.0, {0, -signal.SIGTERM}),
    "hypercorn-trio": (HYPERCORN_GRACE + 5.0, {0}),
    "hypercorn-asyncio": (HYPERCORN_GRACE + 5.0, {0}),
    "runner-trio": (RUNNER_GRACE + 5.0, {0}),
}


def server_command(server: str, port: int) -> list[str]:
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port)]
    if server == "runner-trio":
        return [
            *(sys.executable, "-m", "trio_sse", "serve", APP, "--backend", "trio"),
            *("--host", "127.0.0.1", "--port", str(port), "--grace", f"{RUNNER_GRACE:g}"),
        ]
    worker = server.removeprefix("hypercorn-")
    return [
        *(sys.executable, "-m", "hypercorn", "-k", worker, "-b", f"127.0.0.1:{port}"),
        *("--graceful-timeout", f"{HYPERCORN_GRACE:g}", APP),
    ]


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-4000:]

    async def wait_exit(self, within: float) -> int:
        try:
            return await anyio.to_thread.run_sync(functools.partial(self.process.wait, within))
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} still running {within} s after SIGTERM:\n{self.log()}")


@asynccontextmanager
async def running_server(
    server: str, kind: str, framework: str, tmp_path: Path
) -> AsyncIterator[Server]:
    port = free_port()
    log_file = tmp_path / f"{server}-{kind}-{port}.log"
    env = child_env({"MW_KIND": kind, "MW_FRAMEWORK": framework})
    process = spawn(server_command(server, port), log_file, env)
    running = Server(server, process, port, log_file)
    try:
        await wait_accepting(port, process, running.log, READY_TIMEOUT)
        yield running
    finally:
        kill_group(process)


class RawStream:
    """One ``GET`` over a plain socket, parsed by h11: the body exactly as the server sent it
    (de-chunked, never content-decoded), events decoded from it, and whether it ended cleanly
    (``ended``: the last chunk came; a cut stream raises ``h11.RemoteProtocolError``)."""

    def __init__(self, socket: anyio.abc.SocketStream) -> None:
        self._socket = socket
        self._connection = h11.Connection(h11.CLIENT)
        self._decoder = EventDecoder()
        self._pending: list[ServerSentEvent] = []
        self.status = 0
        self.headers: dict[str, str] = {}
        self.raw: list[bytes] = []
        self.ended = False

    async def _h11_event(self) -> object:
        """The next h11 event (an ``h11.Event``, or ``h11.PAUSED``). A checkpoint."""
        while (event := self._connection.next_event()) is h11.NEED_DATA:
            try:
                data = await self._socket.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                data = b""
            self._connection.receive_data(data)
        return event

    async def request(self, target: str, headers: dict[str, str]) -> None:
        """Send the request and read the response head. A checkpoint."""
        request = h11.Request(
            method="GET", target=target, headers=[("host", "x"), *headers.items()]
        )
        await self._socket.send(
            self._connection.send(request) + self._connection.send(h11.EndOfMessage())
        )
        event = await self._h11_event()
        assert isinstance(event, h11.Response), event
        self.status = event.status_code
        self.headers = {name.decode(): value.decode() for name, value in event.headers}

    async def next(self) -> ServerSentEvent | None:
        """The next event, ``None`` at the end of the body. A checkpoint."""
        while not self._pending and not self.ended:
            event = await self._h11_event()
            if isinstance(event, h11.Data):
                self.raw.append(bytes(event.data))
                self._pending.extend(self._decoder.feed(bytes(event.data)))
            elif isinstance(event, h11.EndOfMessage):
                self.ended = True
        return self._pending.pop(0) if self._pending else None

    async def rest(self) -> list[ServerSentEvent]:
        events = []
        while (event := await self.next()) is not None:
            events.append(event)
        return events


@asynccontextmanager
async def open_raw_stream(port: int, target: str) -> AsyncIterator[RawStream]:
    """A :class:`RawStream` for *target*; leaving closes the socket (a client that leaves)."""
    async with await anyio.connect_tcp("127.0.0.1", port) as socket:
        stream = RawStream(socket)
        await stream.request(target, REQUEST_HEADERS)
        yield stream


async def state_of(
    client: httpx.AsyncClient, stream_id: str, *, when_closed: bool = False
) -> dict[str, Any]:
    """The stream's state (``apps.StreamState.as_json``); with *when_closed*, once its
    producer has ended (the server waits for it)."""
    params = {"stream": stream_id, **({"wait": "closed"} if when_closed else {})}
    response = await client.get("/state", params=params)
    state: dict[str, Any] = response.json()
    return state


def assert_headers(kind: str, response: RawStream) -> None:
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in response.headers  # GZip left the stream alone
    if kind in EVIDENCE:
        name, value = EVIDENCE[kind]
        assert response.headers.get(name) == value, response.headers


async def stream_then_disconnect(client: httpx.AsyncClient, server: Server, kind: str) -> None:
    """Read the stepped stream ``a`` event by event, then leave it mid-stream."""
    async with open_raw_stream(server.port, "/sse?stream=a") as stream:
        assert_headers(kind, stream)
        for number in range(EVENTS):
            event = await stream.next()
            assert event is not None
            assert event.data == str(number)
            assert (await state_of(client, "a"))["made"] == list(range(number + 1))
            await client.get("/ack", params={"stream": "a", "n": number})
        # The body is the events as trio_sse encoded them: not compressed.
        assert b"".join(stream.raw) == b"".join(
            ServerSentEvent(number, id=number).encode() for number in range(EVENTS)
        )
    # The socket is closed: the server sees the client go.
    state = await state_of(client, "a", when_closed=True)
    assert state["close_messages"] == [{"type": "http.disconnect"}]


async def stream_then_sigterm(server: Server) -> None:
    """Open the stepped stream ``b``, SIGTERM the server, read ``b`` to its clean end."""
    async with open_raw_stream(server.port, "/sse?stream=b") as stream:
        first = await stream.next()
        assert first is not None
        assert first.data == "0"
        server.process.send_signal(signal.SIGTERM)  # the main process only
        rest = await stream.rest()
        assert stream.ended  # the last chunk came: a clean end of body
    assert [(event.data, event.event) for event in rest] == [(FAREWELL.data, FAREWELL.event)]
    assert b"".join(stream.raw).endswith(FAREWELL.encode())


# As in tests/test_graceful_shutdown.py: upstream, on Python 3.12+ hypercorn 0.18's asyncio
# worker never cancels a streaming request at its graceful timeout (the process stays).
HYPERCORN_ASYNCIO_STUCK_ON_312 = pytest.mark.skipif(
    sys.version_info >= (3, 12),
    reason="hypercorn 0.18 -k asyncio ignores its graceful timeout on Python 3.12+",
)


def served(server: str, kind: str, framework: str = "starlette") -> Any:
    marks = [requires_trio] if server in {"hypercorn-trio", "runner-trio"} else []
    if server == "hypercorn-asyncio":
        marks.append(HYPERCORN_ASYNCIO_STUCK_ON_312)
    name = f"{server}-{kind}" if framework == "starlette" else f"{server}-{framework}-{kind}"
    return pytest.param(server, kind, framework, id=name, marks=marks)


SERVED = [
    *(served(server, kind) for server in ("uvicorn", "runner-trio") for kind in KINDS),
    # BaseHTTPMiddleware behind hypercorn's CLI: see the last test of this module.
    *(
        served(server, kind)
        for server in ("hypercorn-trio", "hypercorn-asyncio")
        for kind in KINDS
        if kind != "base_http"
    ),
    *(served("uvicorn", kind, "fastapi") for kind in ("gzip", "base_http")),
]


@pytest.mark.parametrize(("server_name", "kind", "framework"), SERVED)
async def test_real_server_streams_disconnects_and_drains(
    server_name: str, kind: str, framework: str, tmp_path: Path
) -> None:
    async with (
        running_server(server_name, kind, framework, tmp_path) as server,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{server.port}",
            headers=REQUEST_HEADERS,
            timeout=httpx.Timeout(10.0),
        ) as client,
    ):
        exit_within, exit_codes = EXIT[server_name]
        with anyio.fail_after(READY_TIMEOUT + exit_within + 10):
            await stream_then_disconnect(client, server, kind)
            if kind == "otel":
                spans = (await client.get("/spans")).json()
                assert spans.count(["GET /sse", "SERVER"]) == 1, spans
            await stream_then_sigterm(server)
            code = await server.wait_exit(exit_within)
        assert code in exit_codes, (code, server.log())


@pytest.mark.parametrize(
    "server_name",
    [
        pytest.param("hypercorn-trio", marks=requires_trio),
        pytest.param("hypercorn-asyncio", marks=HYPERCORN_ASYNCIO_STUCK_ON_312),
    ],
)
async def test_base_http_middleware_behind_hypercorn_cuts_the_stream_at_shutdown(
    server_name: str, tmp_path: Path
) -> None:
    """Streaming and disconnects work, but a SIGTERM cuts the body: no farewell, no last chunk.

    hypercorn's CLI never tells the app of the signal: it cancels every request at its
    graceful timeout, and trio_sse sends the farewell and the end of body from that cancelled
    task, shielded. Behind BaseHTTPMiddleware those messages go through a channel to the
    middleware's own task, which is cancelled too and not shielded: they never reach the
    socket. (uvicorn and ``trio_sse.serve`` trigger the shutdown token on the signal, before
    any cancellation, so the stream ends cooperatively there, farewell included.)
    """
    async with (
        running_server(server_name, "base_http", "starlette", tmp_path) as server,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{server.port}",
            headers=REQUEST_HEADERS,
            timeout=httpx.Timeout(10.0),
        ) as client,
    ):
        exit_within, exit_codes = EXIT[server_name]
        with anyio.fail_after(READY_TIMEOUT + exit_within + 10):
            await stream_then_disconnect(client, server, "base_http")
            async with open_raw_stream(server.port, "/sse?stream=b") as stream:
                first = await stream.next()
                assert first is not None
                server.process.send_signal(signal.SIGTERM)
                with pytest.raises(h11.RemoteProtocolError, match="incomplete chunked read"):
                    await stream.rest()
            assert stream.raw == [ServerSentEvent(0, id=0).encode()]  # the farewell was lost
            code = await server.wait_exit(exit_within)
        assert code in exit_codes, (code, server.log())
