"""``python -m trio_sse.demo`` as a real server: a subprocess, real sockets, real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import trio_sse
from trio_sse import EventDecoder, ServerSentEvent
from trio_sse.demo._app import MAX_BODY_BYTES, MAX_NAME_LENGTH, MAX_TEXT_LENGTH

from ._backends import BACKENDS
from .processes import free_port

START_TIMEOUT = 15.0
READ_TIMEOUT = 5.0
EXIT_TIMEOUT = 5.0


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    url: str
    log: Path
    backend: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def running_demo(backend: str, log: Path) -> Iterator[Demo]:
    """Start the demo in its own process group; always kill the group when done."""
    port = free_port()
    # The subprocess imports the same trio_sse as this test (an installed one, or src/).
    package_root = str(Path(trio_sse.__file__).resolve().parent.parent)
    pythonpath = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "trio_sse.demo", "--port", str(port), "--backend", backend]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    demo = Demo(process, f"http://127.0.0.1:{port}", log, backend)
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
        # Whatever the tests sent it (bad bodies included), the server never failed.
        assert "Traceback" not in running.output(), running.output()


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

    @property
    def retry(self) -> int | None:
        """The last ``retry:`` the stream set (it may come in a block of its own)."""
        return self._decoder.retry

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


def has(name: str) -> Callable[[list[ServerSentEvent]], bool]:
    return lambda events: bool(named(events, name))


def payload(event: ServerSentEvent) -> Any:
    assert event.data is not None
    return json.loads(event.data)


def texts(events: list[ServerSentEvent]) -> list[str]:
    return [payload(event)["text"] for event in named(events, "chat")]


def post(client: httpx.Client, demo: Demo, text: str, name: str = "tester") -> dict[str, Any]:
    response = client.post(f"{demo.url}/room", json={"name": name, "text": text})
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


def unique(label: str) -> str:
    return f"{label} {uuid.uuid4().hex[:8]}"


# -- the page ------------------------------------------------------------------------------


def test_page_is_served(demo: Demo, client: httpx.Client) -> None:
    response = client.get(f"{demo.url}/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for path in ("/clock", "/room", "/stats"):
        assert path in page
    assert "EventSource" in page
    # No external assets: nothing loaded from another origin, no CDN.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert not re.search(r"""@import|url\(\s*["']?(https?:)?//""", page)
    # User text is rendered with textContent only.
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page


# -- the clock -----------------------------------------------------------------------------


def test_clock_ticks(demo: Demo, client: httpx.Client) -> None:
    with client.stream("GET", f"{demo.url}/clock") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        events = EventReader(response).until(lambda events: len(named(events, "tick")) >= 2)
    ticks = named(events, "tick")
    assert [tick.id for tick in ticks] == ["1", "2"]
    assert ticks[0].retry is not None
    assert ticks[0].data != ticks[1].data
    for tick in ticks:
        assert tick.data is not None and tick.data[:2] == "20" and "T" in tick.data


def test_clock_resumes_from_last_event_id(demo: Demo, client: httpx.Client) -> None:
    headers = {"Last-Event-ID": "41"}
    with client.stream("GET", f"{demo.url}/clock", headers=headers) as response:
        events = EventReader(response).until(lambda events: bool(named(events, "tick")))
    assert named(events, "tick")[0].id == "42"


# -- the room ------------------------------------------------------------------------------


def test_a_post_reaches_every_room_stream(demo: Demo, client: httpx.Client) -> None:
    text = unique("hello <b>everyone</b> & ünïcødé ✓")
    with (
        client.stream("GET", f"{demo.url}/room") as first,
        client.stream("GET", f"{demo.url}/room") as second,
    ):
        readers = [EventReader(first), EventReader(second)]
        hellos = [reader.until(lambda events: bool(named(events, "hello"))) for reader in readers]
        answer = post(client, demo, text, name="  Ada   L.  ")
        received = [reader.until(lambda events: bool(named(events, "chat"))) for reader in readers]
    for hello_events, events in zip(hellos, received, strict=True):
        (hello,) = named(hello_events, "hello")
        # A new connection starts after the newest message: nothing old, and its hello
        # carries that id (the EventSource's lastEventId from then on).
        assert hello.id is not None
        hello_data = payload(hello)
        assert hello_data["resumed"] is False
        (chat,) = named(events, "chat")
        message = payload(chat)
        assert chat.id == answer["id"]
        assert message["seq"] == answer["seq"]
        assert message["seq"] > hello_data["live_after"]  # live, not replayed
        assert message["text"] == text  # as sent: the page escapes it, not the server
        assert message["name"] == "Ada L."  # whitespace collapsed
        assert message["time"][:2] == "20"


@pytest.mark.parametrize("via", ["query", "header"])
def test_resume_returns_exactly_the_missed_messages(
    demo: Demo, client: httpx.Client, via: str
) -> None:
    seen = unique("seen")
    with client.stream("GET", f"{demo.url}/room") as response:
        reader = EventReader(response)
        reader.until(lambda events: bool(named(events, "hello")))
        post(client, demo, seen)
        (last,) = named(reader.until(lambda events: bool(named(events, "chat"))), "chat")
    assert payload(last)["text"] == seen and last.id is not None

    missed = [unique("missed one"), unique("missed two"), unique("missed three")]
    for text in missed:
        post(client, demo, text)

    if via == "query":
        request = client.stream("GET", f"{demo.url}/room", params={"lastEventId": last.id})
    else:
        request = client.stream("GET", f"{demo.url}/room", headers={"Last-Event-ID": last.id})
    with request as response:
        reader = EventReader(response)
        replay = reader.until(lambda events: len(named(events, "chat")) >= len(missed))
        after = unique("live again")
        post(client, demo, after)
        live = reader.until(lambda events: bool(named(events, "chat")))
    hello = replay[0]
    assert hello.event == "hello"
    assert not named(replay, "reset")
    hello_data = payload(hello)
    assert hello_data["resumed"] is True
    # The hello of a resumed stream has no id: the client keeps the last id it received.
    assert hello.id is None
    # Exactly the missed messages, in order, then the live one: no gap, no duplicate.
    assert texts(replay) == missed
    assert texts(live) == [after]
    # The hello's boundary tells the replayed (published before this connection) from the live.
    assert all(payload(chat)["seq"] <= hello_data["live_after"] for chat in named(replay, "chat"))
    assert payload(named(live, "chat")[0])["seq"] > hello_data["live_after"]


def test_an_unknown_id_resets_and_replays_the_history(demo: Demo, client: httpx.Client) -> None:
    params = {"lastEventId": "from-another-server-1"}
    with client.stream("GET", f"{demo.url}/room", params=params) as response:
        reader = EventReader(response)
        events = reader.until(lambda events: bool(named(events, "chat")))
    assert [event.event for event in events[:2]] == ["hello", "reset"]
    assert payload(events[1]) == {"reason": "unknown-id", "last_event_id": "from-another-server-1"}
    first = payload(named(events, "chat")[0])
    assert first["seq"] == 1 and first["name"] == "trio_sse"  # the room's opening message
    assert first["seq"] <= payload(events[0])["live_after"]


LONG_TEXT = "x" * (MAX_TEXT_LENGTH + 1)

BAD_BODIES: list[tuple[str, bytes, int]] = [
    ("not json", b"hello", 400),
    ("truncated json", b'{"text": "hi"', 400),
    ("bad utf-8", b'{"text": "\xff\xfe"}', 400),
    ("array", b'["hi"]', 400),
    ("string", b'"hi"', 400),
    ("null", b"null", 400),
    ("no text", b'{"name": "a"}', 400),
    ("text not a string", b'{"text": 42}', 400),
    ("text null", b'{"text": null}', 400),
    ("empty text", b'{"text": "   \\n\\t "}', 400),
    ("control character", b'{"text": "bell \\u0007"}', 400),
    ("lone surrogate", b'{"text": "half \\ud800 a pair"}', 400),
    ("name not a string", b'{"text": "hi", "name": ["a"]}', 400),
    (
        "name too long",
        json.dumps({"text": "hi", "name": "n" * (MAX_NAME_LENGTH + 1)}).encode(),
        400,
    ),
    ("deep nesting", b"[" * (MAX_BODY_BYTES - 1), 400),
    ("text too long", json.dumps({"text": LONG_TEXT}).encode(), 413),
    ("body too large", b'{"text": "' + b"y" * MAX_BODY_BYTES + b'"}', 413),
]


@pytest.mark.parametrize(
    ("body", "status"), [case[1:] for case in BAD_BODIES], ids=[case[0] for case in BAD_BODIES]
)
def test_bad_posts_are_refused(demo: Demo, client: httpx.Client, body: bytes, status: int) -> None:
    response = client.post(
        f"{demo.url}/room", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]


def test_a_post_that_is_not_json_is_refused(demo: Demo, client: httpx.Client) -> None:
    # A plain HTML form (another site's, say) cannot post a message.
    response = client.post(f"{demo.url}/room", data={"text": "hi"})
    assert response.status_code == 415
    response = client.post(f"{demo.url}/room", content=b'{"text": "hi"}')
    assert response.status_code == 415


def test_a_streamed_body_over_the_limit_is_refused(demo: Demo, client: httpx.Client) -> None:
    # No Content-Length (chunked): the server stops reading at the limit.
    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(8):
            yield b"z" * 1024

    response = client.post(
        f"{demo.url}/room", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


# -- the statistics ------------------------------------------------------------------------


def test_stats_stream_reports_sensible_numbers(demo: Demo, client: httpx.Client) -> None:
    with (
        client.stream("GET", f"{demo.url}/clock") as clock,
        client.stream("GET", f"{demo.url}/room") as room,
    ):
        # Keep the readers: a dropped iter_raw() generator closes its response.
        clock_reader, room_reader = EventReader(clock), EventReader(room)
        clock_reader.until(lambda events: bool(named(events, "tick")))
        room_reader.until(lambda events: bool(named(events, "hello")))
        post(client, demo, unique("counted"))
        with client.stream("GET", f"{demo.url}/stats") as response:
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            events = EventReader(response).until(
                lambda events: len(named(events, "stats")) >= 2, within=5
            )
    first, second = (payload(event) for event in named(events, "stats")[:2])
    assert first["backend"] == demo.backend
    for stats in (first, second):
        assert stats["streams"]["clock"] >= 1
        assert stats["streams"]["room"] >= 1
        assert stats["streams"]["stats"] >= 1
        assert stats["open_streams"] == sum(stats["streams"].values())
        assert stats["subscribers"] >= 1
        assert stats["published"] >= 2  # the room's opening message and ours
        assert stats["delivered"] >= 1
        assert stats["events_sent"] >= stats["delivered"] + 2  # + a tick and a hello at least
        assert stats["dropped"] == 0 and stats["disconnected"] == 0
        assert stats["uptime"] >= 0
    # Pushed once a second: the clock ticked meanwhile, and the stats event itself was sent.
    assert second["events_sent"] > first["events_sent"]
    assert second["uptime"] >= first["uptime"]


# -- graceful shutdown ---------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_sigint_says_goodbye_on_every_stream_and_exits(
    backend: str, tmp_path: Path, client: httpx.Client
) -> None:
    with running_demo(backend, tmp_path / "demo.log") as demo:
        first_event = {"clock": "tick", "room": "hello", "stats": "stats"}
        with (
            client.stream("GET", f"{demo.url}/clock") as clock,
            client.stream("GET", f"{demo.url}/room") as room,
            client.stream("GET", f"{demo.url}/stats") as stats,
        ):
            readers = {
                "clock": EventReader(clock),
                "room": EventReader(room),
                "stats": EventReader(stats),
            }
            for name, reader in readers.items():
                reader.until(has(first_event[name]))
            started = time.monotonic()
            demo.process.send_signal(signal.SIGINT)
            for name, reader in readers.items():
                events = reader.to_end(within=EXIT_TIMEOUT)
                assert events, f"{name}: no farewell"
                farewell = events[-1]
                assert farewell.event == "shutdown", (name, events)
                assert farewell.data == "The server is shutting down. Goodbye!"
                # The jittered retry hint (farewell_retry=(2000, 5000)).
                assert reader.retry is not None and 2000 <= reader.retry <= 5000, name
        try:
            returncode = demo.process.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo did not exit after SIGINT:\n{demo.output()}")
        # The producers stop as soon as shutdown begins: no waiting for the grace period.
        assert time.monotonic() - started < EXIT_TIMEOUT
        assert returncode == 0, demo.output()
    output = demo.output()
    assert f"trio_sse demo on {demo.url} (hypercorn, {backend})" in output
    assert "Traceback" not in output, output
