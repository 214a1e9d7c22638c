"""Every example starts as its README header says and serves what it promises, over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

from trio_sse import EventDecoder, ServerSentEvent

from ._backends import requires_trio
from .processes import REPO, free_port, server_process

EXAMPLES = REPO / "examples"
# The examples that serve with trio_sse.run's default, hypercorn under trio (or trio itself):
# skipped where trio is not installed (``nox -s notrio``).
TRIO_EXAMPLES = {
    "basic_starlette",
    "broadcast_chat",
    "broadcast_redis",
    "cooperative_shutdown",
    "custom_ping",
    "database_streaming",
    "json_events",
    "producer_channel",
    "receive_channel",
    "trio_hypercorn",
}


def cases(*cases: tuple[object, ...]) -> list[object]:
    """parametrize values, each a tuple whose first item names the example."""
    return [
        pytest.param(*case, marks=requires_trio)
        if case[0] in TRIO_EXAMPLES
        else pytest.param(*case)
        for case in cases
    ]


def read_events(
    url: str, *, limit: int | None = None, timeout: float = 10.0
) -> tuple[list[ServerSentEvent], bool]:
    """GET *url* as a stream; return its events and whether the body ended (not cut)."""
    decoder = EventDecoder()
    events: list[ServerSentEvent] = []
    with httpx.Client(timeout=timeout) as client, client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        for chunk in response.iter_raw():
            events.extend(decoder.feed(chunk))
            if limit is not None and len(events) >= limit:
                return events[:limit], False
    return events, True


def example(name: str, tmp_path: Path) -> tuple[list[str], int, Path]:
    port = free_port()
    return ["python", str(EXAMPLES / f"{name}.py")], port, tmp_path / f"{name}.log"


@pytest.mark.parametrize(
    ("name", "path", "expected"),
    cases(
        ("basic_starlette", "/numbers", [("number", str(n)) for n in range(10)]),
        ("fastapi_route", "/countdown/3", [("countdown", str(n)) for n in (3, 2, 1, 0)]),
        ("producer_channel", "/squares?upto=4", [("square", str(n * n)) for n in range(1, 5)]),
        ("async_generator_compat", "/legacy", [("legacy", f"item {n}") for n in range(5)]),
        (
            "json_events",
            "/orders",
            [
                ("order", '{"item":"café crème","price":3.5}'),
                ("order", '{"item":"croissant","price":1.8,"tags":["warm","butter"]}'),
                ("order", '{"item":"jus d\'orange","price":4.0}'),
            ],
        ),
        (
            "database_streaming",
            "/rows",
            [
                ("row", '{"name":"Lyon","people":522000}'),
                ("row", '{"name":"Nantes","people":320000}'),
                ("row", '{"name":"Lille","people":236000}'),
                ("row", '{"name":"Nice","people":348000}'),
                ("row", '{"name":"Brest","people":139000}'),
                ("end", ""),
            ],
        ),
        ("trio_hypercorn", "/trio", [("trio", str(n)) for n in range(10)]),
    ),
)
def test_finite_examples_stream_every_event_and_end_cleanly(
    name: str, path: str, expected: list[tuple[str, str]], tmp_path: Path
) -> None:
    command, port, log = example(name, tmp_path)
    with server_process(command, port, log, env={"PORT": str(port)}):
        events, ended = read_events(f"http://127.0.0.1:{port}{path}")
    assert [(event.event, event.data) for event in events] == expected
    assert ended


@requires_trio
def test_producer_cleanup_runs_when_the_client_leaves(tmp_path: Path) -> None:
    command, port, log = example("producer_channel", tmp_path)
    with server_process(command, port, log, env={"PORT": str(port)}):
        events, _ = read_events(f"http://127.0.0.1:{port}/squares?upto=1000", limit=2)
        assert [event.data for event in events] == ["1", "4"]
        deadline = time.monotonic() + 10
        while (
            "squares(1000) finished or cancelled" not in log.read_text()
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
    assert "squares(1000) finished or cancelled: cleanup ran" in log.read_text()


@requires_trio
def test_receive_channel_example_streams_json_readings(tmp_path: Path) -> None:
    command, port, log = example("receive_channel", tmp_path)
    with server_process(command, port, log, env={"PORT": str(port)}):
        events, _ = read_events(f"http://127.0.0.1:{port}/readings", limit=3)
    sequences = [event.json()["sequence"] for event in events]
    assert sequences == list(range(sequences[0], sequences[0] + 3))
    assert all(event.id == str(event.json()["sequence"]) for event in events)


@requires_trio
def test_custom_ping_sends_named_heartbeats_when_quiet(tmp_path: Path) -> None:
    command, port, log = example("custom_ping", tmp_path)
    with server_process(command, port, log, env={"PORT": str(port)}):
        events, _ = read_events(f"http://127.0.0.1:{port}/quiet", limit=3)
    assert [event.event for event in events] == ["hello", "heartbeat", "heartbeat"]
    assert events[2].data is not None and events[2].data.isdigit()


def test_send_timeout_drops_a_client_that_stops_reading(tmp_path: Path) -> None:
    command, port, log = example("send_timeout", tmp_path)
    with (
        server_process(command, port, log, env={"PORT": str(port)}),
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
    ):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /firehose HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.recv(1024)  # the response has started; now read nothing more
        deadline = time.monotonic() + 15
        # The producer's finally logs first; the server logs the error once the call returns.
        while not all(part in log.read_text() for part in ("firehose stopped", "SendTimeoutError")):
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    text = log.read_text()
    assert "firehose stopped after" in text
    assert "SendTimeoutError" in text


@pytest.mark.parametrize("name", cases(("cooperative_shutdown",), ("asyncio_uvicorn",)))
def test_shutdown_examples_say_goodbye_on_sigterm(name: str, tmp_path: Path) -> None:
    path = "/work" if name == "cooperative_shutdown" else "/clock"
    command, port, log = example(name, tmp_path)
    with server_process(command, port, log, env={"PORT": str(port)}) as process:
        decoder = EventDecoder()
        events: list[ServerSentEvent] = []
        with (
            httpx.Client(timeout=10) as client,
            client.stream("GET", f"http://127.0.0.1:{port}{path}") as response,
        ):
            for chunk in response.iter_raw():
                events.extend(decoder.feed(chunk))
                if len(events) == 1:
                    os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    if name == "cooperative_shutdown":
        assert events[-1].event == "goodbye"
        assert decoder.retry is not None and 2000 <= decoder.retry <= 6000
        assert process.returncode == 0
    else:
        assert (events[-1].event, events[-1].data) == ("shutdown", "server restarting")


class ChatClient:
    """Reads a chat room's stream in a thread-free way: one streaming GET at a time."""

    def __init__(self, client: httpx.Client, base: str) -> None:
        self.client = client
        self.base = base

    def post(self, text: str) -> str:
        response = self.client.post(f"{self.base}/rooms/lobby", json={"user": "ada", "text": text})
        assert response.status_code == 200
        event_id: str = response.json()["id"]
        return event_id

    def read(self, count: int, last_event_id: str | None = None) -> list[ServerSentEvent]:
        headers = {} if last_event_id is None else {"Last-Event-ID": last_event_id}
        decoder = EventDecoder()
        events: list[ServerSentEvent] = []
        with self.client.stream("GET", f"{self.base}/rooms/lobby", headers=headers) as response:
            for chunk in response.iter_raw():
                events.extend(decoder.feed(chunk))
                if len(events) >= count:
                    break
        return events


def texts(events: list[ServerSentEvent]) -> list[str]:
    return [event.json()["text"] for event in events]


@requires_trio
def test_broadcast_chat_on_memory_resumes_with_last_event_id(tmp_path: Path) -> None:
    command, port, log = example("broadcast_chat", tmp_path)
    with (
        server_process(command, port, log, env={"PORT": str(port)}),
        httpx.Client(timeout=10) as client,
    ):
        chat = ChatClient(client, f"http://127.0.0.1:{port}")
        first = chat.post("one")
        chat.post("two")
        # A new client with an id it saw gets what came after it, then live messages.
        assert texts(chat.read(1, last_event_id=first)) == ["two"]
        assert chat.client.post(f"{chat.base}/rooms/lobby", content=b"not json").status_code == 400


@requires_trio
@pytest.mark.service("redis-server")
def test_broadcast_redis_across_two_processes_survives_a_restart(tmp_path: Path) -> None:
    from .redis_server import RedisServer

    redis = RedisServer(data_dir=tmp_path)
    redis.start()
    try:
        env = {"REDIS_URL": redis.url}
        command_a, port_a, log_a = example("broadcast_redis", tmp_path)
        command_b, port_b, _ = example("broadcast_redis", tmp_path)
        log_b = tmp_path / "broadcast_redis_b.log"
        with httpx.Client(timeout=10) as client:
            with server_process(command_a, port_a, log_a, env={**env, "PORT": str(port_a)}):
                a = ChatClient(client, f"http://127.0.0.1:{port_a}")
                seen = a.post("before")
                with server_process(command_b, port_b, log_b, env={**env, "PORT": str(port_b)}):
                    b = ChatClient(client, f"http://127.0.0.1:{port_b}")
                    b.post("missed 1")
                    a.post("missed 2")
                    # Resume on the other process: exactly the missed messages, in order.
                    assert texts(b.read(2, last_event_id=seen)) == ["missed 1", "missed 2"]
            # Process A is gone (killed); a new one on the same port has the whole history.
            with server_process(command_a, port_a, log_a, env={**env, "PORT": str(port_a)}):
                assert texts(a.read(2, last_event_id=seen)) == ["missed 1", "missed 2"]
    finally:
        redis.stop()
