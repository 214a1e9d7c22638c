"""A client that stops reading, on every server users run: dropped within the stream's
``send_timeout`` plus a margin, its producer closed and the response freed.

Real ``uvicorn``, ``hypercorn`` (its own CLI, asyncio and trio workers), ``granian`` and
``daphne`` processes serve ``tests.servers.stuck_app``; the client opens
``/flood?send_timeout=1`` on a socket with a small receive buffer and never reads. On
uvicorn, hypercorn's asyncio worker and granian the response's own ``send_timeout`` ends the
stuck send. hypercorn's trio worker shields its socket writes, and daphne applies no
backpressure at all (Twisted buffers whatever it is given: a send never stalls), so there the
README's recipe is what drops the client: the test makes the listening socket with
``TCP_USER_TIMEOUT`` and hands it over (``hypercorn --bind fd://N``, ``daphne --fd N``); the
runner does the same by itself (tests/test_serve_stuck_clients.py).
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from ._backends import requires_trio
from .processes import free_port, server_process
from .test_serve_stuck_clients import MARGIN, TIMEOUT, state, wait_until_stalled

pytestmark = [pytest.mark.slow]

APP = "tests.servers.stuck_app:app"
# Where the kernel must drop the client: a listening socket with TCP_USER_TIMEOUT, passed in.
BY_THE_KERNEL = {"hypercorn-trio", "daphne"}


def listening_socket(port: int, user_timeout_ms: int) -> socket.socket:
    """A listening socket whose accepted connections the kernel aborts once data sent on them
    stays unacknowledged for *user_timeout_ms* (the README's recipe for hypercorn's CLI)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, user_timeout_ms)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


def command(kind: str, port: int, fd: int | None) -> list[str]:
    python = sys.executable
    if kind == "uvicorn":
        return [python, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port)]
    if kind == "granian":
        return [
            *(python, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1"),
            *("--port", str(port), APP),
        ]
    if kind == "daphne":
        assert fd is not None
        return [python, "-m", "daphne", "--fd", str(fd), APP]
    worker = kind.removeprefix("hypercorn-")
    bind = f"fd://{fd}" if fd is not None else f"127.0.0.1:{port}"
    return [python, "-m", "hypercorn", "-k", worker, "-b", bind, APP]


@contextmanager
def serving(kind: str, port: int, log: Path) -> Iterator[None]:
    if kind not in BY_THE_KERNEL:
        with server_process(command(kind, port, None), port, log):
            yield
        return
    sock = listening_socket(port, int(TIMEOUT * 1000))
    try:
        with server_process(
            command(kind, port, sock.fileno()), port, log, pass_fds=[sock.fileno()]
        ):
            sock.close()  # the server holds its own copy
            yield
    finally:
        sock.close()


def stuck_client(port: int, query: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /flood?{query} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock  # and never read from it


def stopped_reading(client: httpx.Client, kind: str) -> float:
    """When the client's buffers were full. On daphne sends never stall (it buffers them):
    the stream is paced, and the buffers fill within a second of the first event."""
    if kind != "daphne":
        return wait_until_stalled(client)
    deadline = time.monotonic() + 10
    while state(client)["sent"] == 0:
        assert time.monotonic() < deadline, "the stream never started"
        time.sleep(0.05)
    return time.monotonic() + 1.0


@pytest.mark.skipif(not hasattr(socket, "TCP_USER_TIMEOUT"), reason="TCP_USER_TIMEOUT is Linux's")
@pytest.mark.parametrize(
    "kind",
    [
        "uvicorn",
        "hypercorn-asyncio",
        pytest.param("hypercorn-trio", marks=requires_trio),
        "granian",
        "daphne",
    ],
)
def test_a_client_that_stops_reading_is_dropped_and_freed(kind: str, tmp_path: Path) -> None:
    port = free_port()
    with (
        serving(kind, port, tmp_path / f"{kind}.log"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client,
    ):
        pace = "&pace=0.005" if kind == "daphne" else ""  # 13 MB/s at most, buffered
        sock = stuck_client(port, f"send_timeout={TIMEOUT:g}{pace}")
        try:
            stalled_at = stopped_reading(client, kind)
            assert state(client)["active"] == 1
            deadline = stalled_at + TIMEOUT + MARGIN
            while state(client)["ended"] == 0:
                assert time.monotonic() < deadline, f"{kind}: the stuck client was never dropped"
                time.sleep(0.05)
            # The response goes once the server let go of the request: within the margin too.
            while (now := state(client))["alive"] != 0:
                assert time.monotonic() < deadline, f"{kind}: the dropped response is kept: {now}"
                time.sleep(0.05)
            assert now["active"] == 0
        finally:
            sock.close()
