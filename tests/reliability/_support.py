"""Shared machinery of the reliability suite: the server process, raw HTTP, figures.

The server is ``python -W error -m trio_sse serve tests.servers.reliability_app:app`` on the
test's own backend (a test running under trio talks to the trio runner, under asyncio to the
asyncio runner), started in its own session on a free port of 127.0.0.1 and killed by process
group. Its output goes to a log that the tests search for warnings and tracebacks.

The clients here speak raw HTTP/1.1 over anyio sockets, with ``Connection: close``: no pool
holds a connection (and so a server file descriptor) open behind the test's back, and a
client can leave in exactly the way a test wants (FIN, RST, before the first event).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread

from ..processes import REPO, child_env, free_port, wait_accepting

APP = "tests.servers.reliability_app:app"
STARTUP_TIMEOUT = 20.0

# What a clean server log never contains (the server runs with warnings as errors).
FORBIDDEN_IN_LOG = ("never awaited", "Task was destroyed", "ResourceWarning", "Traceback")


@dataclass
class Server:
    backend: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_clean_log(self, *, expected_errors: Sequence[str] = ()) -> None:
        """No forbidden text in the log, apart from tracebacks whose final exception line
        names one of *expected_errors* (a ``SendTimeoutError`` is an error of its ASGI call,
        which the server logs with its traceback)."""
        kept = strip_tracebacks(self.log(), expected_errors)
        for forbidden in FORBIDDEN_IN_LOG:
            assert forbidden not in kept, f"{forbidden!r} in the server log:\n{self.log()[-6000:]}"

    def assert_running(self) -> None:
        assert self.process.poll() is None, f"the server exited:\n{self.log()[-6000:]}"

    async def get(self, path: str, headers: Mapping[str, str] | None = None) -> Response:
        return await http_request(self.port, "GET", path, headers=headers)

    async def post(self, path: str) -> Response:
        return await http_request(self.port, "POST", path)

    async def debug(self, *, collect: bool = False) -> dict[str, Any]:
        response = await self.get("/debug?gc=1" if collect else "/debug")
        assert response.status == 200, response
        result: dict[str, Any] = json.loads(response.body)
        return result


def strip_tracebacks(log: str, expected_errors: Sequence[str]) -> str:
    """*log* without the tracebacks (chained ones included) that end in an expected error."""
    if not expected_errors:
        return log
    lines = log.splitlines()
    kept: list[str] = []
    index = 0
    while index < len(lines):
        if "Traceback (most recent call last):" not in lines[index]:
            kept.append(lines[index])
            index += 1
            continue
        start = index
        while True:  # one traceback: frames are indented; the exception line is not
            index += 1
            while index < len(lines) and (lines[index].startswith(" ") or not lines[index]):
                index += 1
            final = lines[index] if index < len(lines) else ""
            index += 1
            following = lines[index : index + 3]
            if any(
                text in "\n".join(following) for text in ("During handling", "The above exception")
            ):
                while (
                    index < len(lines) and "Traceback (most recent call last):" not in lines[index]
                ):
                    index += 1
                continue
            break
        if not any(error in final for error in expected_errors):
            kept.extend(lines[start:index])
    return "\n".join(kept)


def server_command(backend: str, port: int, *, nofile: int | None = None) -> list[str]:
    command = [
        *(sys.executable, "-W", "error", "-m", "trio_sse", "serve", APP),
        *("--backend", backend, "--host", "127.0.0.1", "--port", str(port), "--grace", "1"),
    ]
    if nofile is not None:
        command = [sys.executable, "-m", "tests.reliability.nofile", str(nofile), "--", *command]
    return command


def launch(
    command: Sequence[str], log_path: Path, env: Mapping[str, str] | None
) -> subprocess.Popen[bytes]:
    """Start *command* in its own session (its own process group), output to *log_path*."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=child_env({"PYTHONWARNINGS": "error", **(env or {})}),
            start_new_session=True,  # killed by process group, whatever it started
        )


async def until(check: Callable[[], bool | Awaitable[bool]], *, interval: float = 0.05) -> None:
    """Poll *check* (sync or async) every *interval* seconds until it is true.

    For state that lives in another process (the server's counters): there is no event to
    wait for. Callers bound it with ``fail_after``.
    """
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await anyio.sleep(interval)


@asynccontextmanager
async def reliability_server(
    backend: str,
    tmp_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    nofile: int | None = None,
) -> AsyncIterator[Server]:
    """Start the reliability app on *backend*; yield once it accepts connections."""
    port = free_port()
    log_path = tmp_path / f"server-{backend}-{port}.log"
    process = launch(server_command(backend, port, nofile=nofile), log_path, env)
    server = Server(backend, port, process, log_path)
    try:
        await wait_accepting(
            port, process, lambda: log_path.read_text(errors="replace"), STARTUP_TIMEOUT
        )
        yield server
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        await anyio.to_thread.run_sync(process.wait, 10)


# -- raw HTTP ----------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def request_bytes(
    method: str, path: str, headers: Mapping[str, str] | None = None, *, close: bool = True
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if close:
        lines.append("Connection: close")
    if method == "POST":
        lines.append("Content-Length: 0")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ", 2)[1])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def read_head(stream: anyio.abc.ByteStream) -> tuple[int, dict[str, str], bytes]:
    """Read up to the end of the response head: (status, headers, body bytes read past it)."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        try:
            chunk = await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError) as exc:
            raise ConnectionError(
                f"connection closed before the response head: {buffer!r}"
            ) from exc
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status, headers = parse_head(head)
    return status, headers, rest


def dechunk(data: bytes) -> bytes:
    """Decode a complete chunked body."""
    out = bytearray()
    position = 0
    while True:
        end = data.index(b"\r\n", position)
        size = int(data[position:end].split(b";")[0], 16)
        position = end + 2
        if size == 0:
            return bytes(out)
        out += data[position : position + size]
        position += size + 2


async def http_request(
    port: int, method: str, path: str, headers: Mapping[str, str] | None = None
) -> Response:
    """One request on a fresh connection, read to the end (the server closes it)."""
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request_bytes(method, path, headers))
        status, response_headers, body = await read_head(stream)
        while True:
            try:
                body += await stream.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
    if response_headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return Response(status, response_headers, body)


class ChunkedReader:
    """Incremental decoder of a chunked body: feed raw bytes, get body bytes."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._remaining = 0  # bytes left in the current chunk (then its CRLF)
        self._skip = 0  # CRLF after a chunk still to skip
        self.ended = False

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        out = bytearray()
        buffer = self._buffer
        while buffer and not self.ended:
            if self._skip:
                taken = min(self._skip, len(buffer))
                del buffer[:taken]
                self._skip -= taken
                continue
            if self._remaining:
                taken = min(self._remaining, len(buffer))
                out += buffer[:taken]
                del buffer[:taken]
                self._remaining -= taken
                if not self._remaining:
                    self._skip = 2
                continue
            end = buffer.find(b"\r\n")
            if end < 0:
                break
            size = int(bytes(buffer[:end]).split(b";")[0], 16)
            del buffer[: end + 2]
            if size == 0:
                self.ended = True
            else:
                self._remaining = size
        return bytes(out)


def set_reset_on_close(stream: anyio.abc.SocketStream) -> None:
    """SO_LINGER 0: closing sends RST instead of FIN (an abrupt client, a crashed browser)."""
    sock = stream.extra(anyio.abc.SocketAttribute.raw_socket)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# -- figures -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The *q*-th percentile (0..100) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def report(name: str, figures: Mapping[str, Any]) -> None:
    """Print *figures*; also merge them under *name* into ``$TRIO_SSE_RELIABILITY_REPORT``."""
    print(f"\n[reliability] {name}: {json.dumps(figures, sort_keys=True)}")
    path = os.environ.get("TRIO_SSE_RELIABILITY_REPORT")
    if not path:
        return
    target = Path(path)
    existing: dict[str, Any] = {}
    if target.exists():
        with contextlib.suppress(ValueError):
            existing = json.loads(target.read_text())
    existing[name] = dict(figures)
    target.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


MIB = 1024 * 1024


# -- a raw event-stream reader -----------------------------------------------------------------


class SseReader:
    """One client reading an event stream over a raw socket, recording what it gets.

    ``events``: (id, data) of every event; ``latencies``: for data that starts with the
    publisher's ``time.monotonic()`` (the reliability app's ``/publish``), seconds from
    publication to decoding here (one clock for every process of the machine); ``pings``:
    comments seen. ``ready`` is set once the response head has arrived (``status``).
    """

    def __init__(self, port: int, path: str, headers: Mapping[str, str] | None = None) -> None:
        self.port = port
        self.path = path
        self.headers = headers
        self.status = 0
        self.events: list[tuple[str | None, str]] = []
        self.latencies: list[float] = []
        self.pings = 0
        self.ended = False
        self.connected_at = 0.0
        self.retries = 0
        self.ready = anyio.Event()
        self.arrived = anyio.Event()  # set (and replaced) whenever events arrive

    async def run(self, connecting: anyio.CapacityLimiter | None = None) -> None:
        """Read until the body ends or the connection closes. Cancel it to disconnect.

        *connecting* bounds how many readers connect at once (until their response head
        arrives), so that thousands of them do not overflow the server's listen backlog.
        """
        from trio_sse import EventDecoder

        try:
            async with contextlib.AsyncExitStack() as stack:
                if connecting is not None:
                    await connecting.acquire_on_behalf_of(self)
                try:
                    stream, data = await self._connect()
                    await stack.enter_async_context(stream)
                finally:
                    if connecting is not None:
                        connecting.release_on_behalf_of(self)
                self.connected_at = time.monotonic()
                self.ready.set()
                reader = ChunkedReader()
                decoder = EventDecoder(comments=True)
                while True:
                    events = decoder.feed(reader.feed(data))
                    if events:
                        now = time.monotonic()
                        for event in events:
                            if event.comment is not None:
                                self.pings += 1
                                continue
                            text = event.data or ""
                            self.events.append((event.id, text))
                            stamp, _, _ = text.partition(" ")
                            with contextlib.suppress(ValueError):
                                self.latencies.append(now - float(stamp))
                        self.arrived.set()
                        self.arrived = anyio.Event()
                    if reader.ended:
                        break
                    try:
                        data = await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        break
        finally:
            self.ended = True
            self.ready.set()
            self.arrived.set()

    async def _connect(self) -> tuple[anyio.abc.SocketStream, bytes]:
        """Connect and read the response head; retried (``retries``) while no head came.

        A server saturated by thousands of streams may close a connection whose request it
        has not read within its keep-alive timeout (hypercorn: 5 s): a real client reconnects.
        """
        while True:
            stream = await anyio.connect_tcp("127.0.0.1", self.port)
            try:
                await stream.send(request_bytes("GET", self.path, self.headers))
                self.status, _, data = await read_head(stream)
            except (ConnectionError, anyio.BrokenResourceError):
                await stream.aclose()
                self.retries += 1
                if self.retries > 5:
                    raise
                await anyio.sleep(0.1)
                continue
            except BaseException:
                await stream.aclose()
                raise
            return stream, data

    async def wait_for(self, count: int) -> None:
        """Wait until at least *count* events arrived (fails if the stream ends first)."""
        while len(self.events) < count:
            assert not self.ended, f"the stream ended after {len(self.events)} of {count} events"
            await self.arrived.wait()
