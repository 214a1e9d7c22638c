"""Stream hooks on real servers: a client that leaves and a server that stops are told to
``on_close`` with their reasons (tests/servers/hooks_app.py).

The servers: uvicorn (trio_sse chains its signal handler to the shutdown token) and
``trio-sse serve`` (hypercorn under trio, which triggers the token itself). Plain ``hypercorn``
tells a stream nothing before it cuts it off, which the stream can only see as its client
leaving.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from trio_sse import EventDecoder, ServerSentEvent

from ._backends import requires_trio
from .processes import free_port, server_process

APP = "tests.servers.hooks_app:app"
SERVERS = [pytest.param("runner-trio", marks=requires_trio), "uvicorn"]


def command(kind: str, port: int) -> list[str]:
    if kind == "uvicorn":
        return [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port)]
    return [
        *(sys.executable, "-m", "trio_sse", "serve", APP, "--backend", "trio"),
        *("--host", "127.0.0.1", "--port", str(port), "--grace", "1"),
    ]


def read(url: str, count: int) -> list[ServerSentEvent]:
    decoder = EventDecoder()
    events: list[ServerSentEvent] = []
    with httpx.Client(timeout=10) as client, client.stream("GET", url) as response:
        for chunk in response.iter_raw():
            events.extend(decoder.feed(chunk))
            if len(events) >= count:
                break
    return events


def lines_of(path: Path, expected: int) -> list[str]:
    """The hook's lines, once there are *expected* of them (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= expected or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


@pytest.mark.parametrize("kind", SERVERS)
def test_a_client_that_leaves_then_a_server_that_stops(kind: str, tmp_path: Path) -> None:
    port = free_port()
    hooks_file = tmp_path / "hooks.txt"
    env = {"HOOKS_FILE": str(hooks_file)}
    with server_process(command(kind, port), port, tmp_path / "server.log", env=env) as process:
        events = read(f"http://127.0.0.1:{port}/ticks/a", 3)
        assert [event.data for event in events] == ["0", "1", "2"]
        opened, left = lines_of(hooks_file, 2)
        assert opened.startswith("open /ticks/{name} 127.0.0.1:")
        route, reason, sent, nbytes = left.split()
        assert (route, reason) == ("/ticks/{name}", "client_disconnect")
        assert int(sent) >= 3 and int(nbytes) >= len(ServerSentEvent("0").encode()) * 3

        decoder = EventDecoder()
        with (
            httpx.Client(timeout=10) as client,
            client.stream("GET", f"http://127.0.0.1:{port}/ticks/b") as response,
        ):
            # Kept referenced: a raw iterator that is dropped closes the connection (the
            # client would leave, racing the shutdown).
            chunks = response.iter_raw()
            while not decoder.feed(next(chunks)):
                pass
            process.send_signal(signal.SIGTERM)
            lines = lines_of(hooks_file, 4)
    assert lines[2].startswith("open /ticks/{name} ")
    route, reason, sent, _ = lines[3].split()
    assert (route, reason) == ("/ticks/{name}", "shutdown")
    assert int(sent) >= 1
