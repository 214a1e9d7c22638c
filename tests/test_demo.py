"""``python -m trio_sse.demo`` as a real server: a subprocess, real sockets, real signals."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import trio_sse
from trio_sse import EventDecoder, ServerSentEvent

BACKENDS = ["trio", "asyncio"]
START_TIMEOUT = 15.0
READ_TIMEOUT = 5.0
EXIT_TIMEOUT = 5.0


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_demo(backend: str, log: Path) -> Iterator[Demo]:
    """Start the demo in its own process group; always kill the group when done."""
    port = _free_port()
    # The subprocess imports the same trio_sse as this test (an installed one, or src/).
    package_root = str(Path(trio_sse.__file__).resolve().parent.parent)
    pythonpath = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "trio_sse.demo", "--port", str(port), "--backend", backend]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    demo = Demo(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"the demo exited early:\n{demo.output()}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"the demo did not listen:\n{demo.output()}"
                time.sleep(0.05)
        yield demo
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=EXIT_TIMEOUT)


@pytest.fixture(scope="module", params=BACKENDS)
def demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Demo]:
    backend = str(request.param)
    with running_demo(backend, tmp_path_factory.mktemp(backend) / "demo.log") as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(READ_TIMEOUT)) as http:
        yield http


class EventReader:
    """Decode the events of a streamed ``httpx.Response``, a bounded read at a time.

    Every read is bounded by the client's read timeout, each call by *within* seconds.
    """

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_raw()
        self._decoder = EventDecoder()

    def until(
        self, done: Callable[[list[ServerSentEvent]], bool], *, within: float = 10.0
    ) -> list[ServerSentEvent]:
        """Read until ``done(events)`` is true for the events read by this call."""
        events: list[ServerSentEvent] = []
        deadline = time.monotonic() + within
        for chunk in self._chunks:
            events.extend(self._decoder.feed(chunk))
            if done(events):
                return events
            assert time.monotonic() < deadline, f"stream too slow, got {events}"
        raise AssertionError(f"the stream ended early, got {events}")

    def to_end(self, *, within: float = 10.0) -> list[ServerSentEvent]:
        """Read to the end of the body. A body cut short raises ``httpx.RemoteProtocolError``,
        so returning means that the server finished the body cleanly."""
        events: list[ServerSentEvent] = []
        deadline = time.monotonic() + within
        for chunk in self._chunks:
            events.extend(self._decoder.feed(chunk))
            assert time.monotonic() < deadline, f"stream too long, got {events}"
        return events


def named(events: list[ServerSentEvent], name: str) -> list[ServerSentEvent]:
    return [event for event in events if event.event == name]


def test_page_is_served(demo: Demo, client: httpx.Client) -> None:
    response = client.get(f"{demo.url}/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "EventSource" in response.text
    # No external assets: nothing loaded from another origin.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", response.text)


def test_clock_ticks(demo: Demo, client: httpx.Client) -> None:
    with client.stream("GET", f"{demo.url}/clock") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        events = EventReader(response).until(lambda events: len(named(events, "tick")) >= 2)
    ticks = named(events, "tick")
    assert [tick.id for tick in ticks] == ["1", "2"]
    assert ticks[0].retry is not None
    for tick in ticks:
        assert tick.data is not None and tick.data[:2] == "20" and "T" in tick.data


def test_clock_resumes_from_last_event_id(demo: Demo, client: httpx.Client) -> None:
    headers = {"Last-Event-ID": "41"}
    with client.stream("GET", f"{demo.url}/clock", headers=headers) as response:
        events = EventReader(response).until(lambda events: bool(named(events, "tick")))
    assert named(events, "tick")[0].id == "42"


def test_numbers_stream_ends_cleanly(demo: Demo, client: httpx.Client) -> None:
    with client.stream("GET", f"{demo.url}/numbers") as response:
        assert response.status_code == 200
        events = EventReader(response).to_end()
    assert [event.data for event in named(events, "number")] == [str(n) for n in range(1, 11)]
    assert events[0].retry is not None
    assert events[-1].event == "done"


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigint_says_goodbye_and_exits(backend: str, tmp_path: Path, client: httpx.Client) -> None:
    with running_demo(backend, tmp_path / "demo.log") as demo:
        with client.stream("GET", f"{demo.url}/clock") as response:
            reader = EventReader(response)
            reader.until(lambda events: bool(named(events, "tick")))
            demo.process.send_signal(signal.SIGINT)
            events = reader.to_end(within=EXIT_TIMEOUT)
        assert events[-1].event == "shutdown", events
        assert events[-1].retry is not None
        try:
            returncode = demo.process.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo did not exit after SIGINT:\n{demo.output()}")
        assert returncode == 0, demo.output()
    output = demo.output()
    assert f"trio_sse demo on {demo.url} (hypercorn, {backend})" in output
    assert "Traceback" not in output, output
