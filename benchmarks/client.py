"""The lean benchmark client: raw sockets, minimal HTTP/1.1, standard library only.

Run as its own process by ``python -m benchmarks`` (``python -m benchmarks.client MODE ...``,
one JSON object on stdout), so that the client never shares a CPU or an event loop with the
server it measures. It parses just enough HTTP: the status line, the headers, a chunked or a
``Content-Length`` body, and counts events by their terminator (the blank line, ``\\r\\n\\r\\n``
as every benchmark app writes it) without decoding them, except where a scenario needs the
data (fan-out latency). It reads the server's CPU time and RSS from ``/proc`` (Linux), at the
instants that matter, and reports its own CPU time so that the runner can tell whether the
client was the bottleneck.

Modes: ``throughput``, ``fanout``, ``idle``, ``shutdown`` (see each function).
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["EventCounter", "ResponseParser", "main"]

TERMINATOR = b"\r\n\r\n"
#: ``--newline`` -> the blank line that ends an event (better-sse writes LF only)
TERMINATORS = {"crlf": TERMINATOR, "lf": b"\n\n"}
_RECV = 256 * 1024
_SMALL_READ = 32 * 1024
_NAP = 0.0005


class EventCounter:
    """Counts event terminators in a byte stream fed in arbitrary pieces.

    With *on_event*, also cuts the stream into events and calls ``on_event(event_bytes)``
    for each complete one (the bytes before its terminator). Without it, only counts, which
    is a ``bytes.count`` per piece plus a look at the few bytes that straddle two pieces.
    """

    __slots__ = ("_keep", "_on_event", "_pending", "_tail", "_term", "events")

    def __init__(
        self,
        terminator: bytes = TERMINATOR,
        on_event: Callable[[bytes], None] | None = None,
    ) -> None:
        self._term = terminator
        self._keep = len(terminator) - 1
        self._tail = b""
        self._on_event = on_event
        self._pending = b""
        self.events = 0

    def feed(self, piece: bytes) -> None:
        if not piece:
            return
        term = self._term
        if self._on_event is not None:
            pending = self._pending + piece
            if term not in pending:
                self._pending = pending
                return
            parts = pending.split(term)
            self._pending = parts.pop()
            self.events += len(parts)
            for part in parts:
                self._on_event(part)
            return
        count = piece.count(term)
        tail = self._tail
        keep = self._keep
        if tail:
            # A terminator split across two pieces: it starts in the previous piece's last
            # bytes and ends in this piece's first bytes (it cannot fit in either part alone).
            count += (tail + piece[:keep]).count(term)
        self.events += count
        self._tail = piece[-keep:] if len(piece) >= keep else (tail + piece)[-keep:]


class ResponseParser:
    """Minimal HTTP/1.1 response parser: status, headers, then a chunked or sized body.

    ``feed(data)`` as bytes arrive; the body goes to an :class:`EventCounter` (``counter``);
    ``chunks`` counts the body's chunks (one per ASGI body message on the servers measured).
    ``complete`` is set by the last chunk (``0\\r\\n``) or by the end of a sized body;
    ``body`` keeps a sized (non-chunked) body's bytes when *keep_body* is set.
    """

    __slots__ = (
        "_buffer",
        "_chunk_left",
        "_content_left",
        "_keep_body",
        "_skip",
        "body",
        "chunked",
        "chunks",
        "complete",
        "counter",
        "headers",
        "headers_done",
        "status",
    )

    def __init__(self, counter: EventCounter | None = None, *, keep_body: bool = False) -> None:
        self.counter = counter if counter is not None else EventCounter()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.chunked = False
        self.chunks = 0
        self.complete = False
        self.body = b""
        self._keep_body = keep_body
        self._buffer = b""
        self._chunk_left = 0
        self._skip = 0
        self._content_left = -1

    @property
    def events(self) -> int:
        return self.counter.events

    def feed(self, data: bytes) -> None:
        if self.complete:
            return
        if not self.headers_done:
            data = self._buffer + data
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = data
                return
            self._head(data[:end])
            data = data[end + 4 :]
            self._buffer = b""
        if not self.chunked:
            self._sized(data)
            return
        buffer = self._buffer + data if self._buffer else data
        self._buffer = b""
        feed = self.counter.feed
        position = 0
        size = len(buffer)
        while position < size:
            if self._chunk_left:
                end = min(size, position + self._chunk_left)
                feed(buffer[position:end])
                self._chunk_left -= end - position
                position = end
                if not self._chunk_left:
                    self._skip = 2  # the CRLF after the chunk data
                continue
            if self._skip:
                step = min(self._skip, size - position)
                self._skip -= step
                position += step
                continue
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                self._buffer = buffer[position:]
                return
            chunk_size = int(buffer[position:line_end].split(b";", 1)[0], 16)
            position = line_end + 2
            if chunk_size == 0:
                self.complete = True  # trailers, if any, are of no interest
                return
            self.chunks += 1
            self._chunk_left = chunk_size

    def _head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self.headers_done = True
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        if not self.chunked and "content-length" in self.headers:
            self._content_left = int(self.headers["content-length"])
            if self._content_left == 0:
                self.complete = True

    def _sized(self, data: bytes) -> None:
        if self._content_left >= 0:
            data = data[: self._content_left]
            self._content_left -= len(data)
            if self._content_left == 0:
                self.complete = True
        if self._keep_body:
            self.body += data
        self.counter.feed(data)

    def eof(self) -> None:
        """The connection closed: a body delimited by the close is complete now."""
        if self.headers_done and not self.chunked and self._content_left < 0:
            self.complete = True


def data_fields(event: bytes) -> tuple[bytes, bytes]:
    """The two words of an event's ``data`` line (``b"<seq>"``, ``b"<stamp>"``), else empty.

    The line is ``data: ...`` or ``data:...`` (the space is optional, WHATWG 9.2.6), ended by
    CRLF or LF.
    """
    start = event.find(b"data:")
    if start < 0:
        return b"", b""
    line = event[start + 5 :].split(b"\n", 1)[0].rstrip(b"\r").lstrip(b" ")
    seq, _, stamp = line.partition(b" ")
    return seq, stamp


def request_bytes(path: str, *, close: bool = False) -> bytes:
    connection = "close" if close else "keep-alive"
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"Connection: {connection}\r\n\r\n"
    ).encode("latin-1")


# -- /proc readers (Linux) ---------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds used so far by *pids* (those still running)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as file:
                raw = file.read()
        except OSError:
            continue
        fields = raw[raw.rindex(b")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / _TICKS


def rss_bytes(pids: Sequence[int]) -> int:
    """Resident set size of *pids*, summed."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as file:
                total += int(file.read().split()[1]) * _PAGE
        except OSError:
            continue
    return total


def process_gone(pid: int) -> bool:
    """The process exited (a zombie waiting for its parent counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            raw = file.read()
    except OSError:
        return True
    return raw[raw.rindex(b")") + 2 :].split()[0] in (b"Z", b"X")


# -- connections driven by one selector -------------------------------------------------------


class Connection:
    """One client connection: a socket, its response parser, and what it saw when."""

    __slots__ = ("ended_at", "parser", "reset", "sock", "tag")

    def __init__(self, sock: socket.socket, parser: ResponseParser, tag: str = "") -> None:
        self.sock = sock
        self.parser = parser
        self.tag = tag
        self.ended_at = 0
        self.reset = False


def open_connection(
    port: int, path: str, parser: ResponseParser, *, close: bool = False
) -> Connection:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(request_bytes(path, close=close))
    sock.setblocking(False)
    return Connection(sock, parser)


class Pump:
    """Reads every registered connection as data arrives; stamps the time of each read."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.open: set[Connection] = set()
        self.now = time.monotonic_ns()

    def add(self, connection: Connection) -> None:
        self.selector.register(connection.sock, selectors.EVENT_READ, connection)
        self.open.add(connection)

    def close(self, connection: Connection) -> None:
        if connection in self.open:
            self.open.discard(connection)
            self.selector.unregister(connection.sock)
        connection.sock.close()

    def close_all(self) -> None:
        for connection in list(self.open):
            self.close(connection)
        self.selector.close()

    def run(self, until: Callable[[], bool], timeout: float, *, tick: float = 0.05) -> bool:
        """Read until ``until()`` is true (True) or *timeout* seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not until():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            for key, _ in self.selector.select(min(left, tick)):
                connection: Connection = key.data
                self.now = time.monotonic_ns()
                try:
                    data = connection.sock.recv(_RECV)
                except BlockingIOError:
                    continue
                except OSError:
                    connection.reset = True
                    data = b""
                if data:
                    connection.parser.feed(data)
                    if connection.parser.complete and not connection.ended_at:
                        connection.ended_at = self.now
                else:
                    connection.parser.eof()
                    connection.ended_at = connection.ended_at or self.now
                    self.close(connection)
        return True


def _pids(text: str) -> list[int]:
    return [int(pid) for pid in text.split(",") if pid]


# -- modes ------------------------------------------------------------------------------------


def throughput(
    port: int,
    path: str,
    expect: int,
    pids: list[int],
    timeout: float,
    terminator: bytes = TERMINATOR,
) -> dict[str, Any]:
    """One connection; read until *expect* events arrived and the body ended."""
    parser = ResponseParser(EventCounter(terminator))
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client_cpu = time.process_time()
    server_cpu = cpu_seconds(pids)
    start = time.perf_counter()
    sock.sendall(request_bytes(path, close=True))
    recv = sock.recv
    feed = parser.feed
    sleep = time.sleep
    while not parser.complete:
        data = recv(_RECV)
        if not data:
            break
        feed(data)
        if len(data) < _SMALL_READ:
            # Let the data pile up in the socket buffer (a few KiB at these rates, far from
            # full) rather than waking for every chunk: the client stays a small fraction of
            # the server's CPU, and never makes it wait.
            sleep(_NAP)
    wall = time.perf_counter() - start
    server_cpu = cpu_seconds(pids) - server_cpu
    client_cpu = time.process_time() - client_cpu
    sock.close()
    return {
        "events": parser.events,
        "chunks": parser.chunks,
        "expected": expect,
        "complete": parser.complete,
        "status": parser.status,
        "wall": wall,
        "rate": parser.events / wall if wall > 0 else 0.0,
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
    }


def _publish(
    port: int, pump: Pump, topic: str, n: int, rate: float, seq: int, path: str = "/publish"
) -> Connection:
    separator = "&" if "?" in path else "?"
    path = f"{path}{separator}topic={topic}&n={n}&rate={rate}&seq={seq}"
    connection = open_connection(port, path, ResponseParser(keep_body=True), close=True)
    connection.tag = "publish"
    pump.add(connection)
    return connection


def fanout(
    port: int,
    subscribers: int,
    events: int,
    rate: float,
    pids: list[int],
    timeout: float,
    publish_port: int = 0,
    *,
    terminator: bytes = TERMINATOR,
    publish_path: str = "/publish",
) -> dict[str, Any]:
    """*subscribers* connections to one topic; publish *events* at *rate*; time each delivery.

    Published through *publish_port* when given (another server process sharing the topic
    through Redis), else through *port*, the subscribers' server; to *publish_path* (which
    may carry a query of its own, ``/publish?mode=batch``).
    """
    publish_port = publish_port or port
    pump = Pump()
    latencies: list[int] = []
    warmed: set[Connection] = set()
    received: dict[Connection, int] = {}
    topic = f"fanout{os.getpid()}"

    def subscriber(connection: Connection) -> Callable[[bytes], None]:
        def on_event(event: bytes) -> None:
            seq_text, stamp = data_fields(event)
            if not seq_text:
                return  # a comment (ping) or a field alone (retry)
            if int(seq_text) < 0:
                warmed.add(connection)
            else:
                latencies.append(pump.now - int(stamp))
                received[connection] = received.get(connection, 0) + 1

        return on_event

    connections = []
    for _ in range(subscribers):
        parser = ResponseParser()
        connection = open_connection(port, f"/subscribe?topic={topic}", parser)
        parser.counter = EventCounter(terminator, on_event=subscriber(connection))
        connections.append(connection)
        pump.add(connection)
    ready = pump.run(lambda: all(c.parser.headers_done for c in connections), timeout)
    if not ready:
        pump.close_all()
        return {"error": "subscribers did not all get their response headers"}
    # Every subscriber is registered once it has received a warm-up event (seq -1).
    for _ in range(20):
        _publish(publish_port, pump, topic, 1, 0, -1, publish_path)
        if pump.run(lambda: len(warmed) == subscribers, 1.0):
            break
    if len(warmed) != subscribers:
        pump.close_all()
        return {"error": f"only {len(warmed)} of {subscribers} subscribers warmed up"}
    pump.run(lambda: not any(c.tag == "publish" for c in pump.open), 5.0)
    expected = subscribers * events
    client_cpu = time.process_time()
    server_cpu = cpu_seconds(pids)
    start = time.monotonic()
    publisher = _publish(publish_port, pump, topic, events, rate, 0, publish_path)
    pump.run(lambda: len(latencies) >= expected, events / max(rate, 1) + timeout)
    server_cpu = cpu_seconds(pids) - server_cpu
    client_cpu = time.process_time() - client_cpu
    wall = time.monotonic() - start
    pump.run(lambda: publisher not in pump.open, 5.0)
    pump.close_all()
    latencies.sort()

    def quantile(q: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1e6

    return {
        "delivered": len(latencies),
        "expected": expected,
        "p50_ms": quantile(0.50),
        "p90_ms": quantile(0.90),
        "p99_ms": quantile(0.99),
        "max_ms": latencies[-1] / 1e6 if latencies else float("nan"),
        "server_cpu": server_cpu,
        "client_cpu": client_cpu,
        "wall": wall,
        "server_us_per_event": 1e6 * server_cpu / len(latencies) if latencies else float("nan"),
        "publisher_status": publisher.parser.status,
    }


def idle(
    port: int,
    connections: int,
    pids: list[int],
    settle: float,
    timeout: float,
    route: str = "/subscribe",
) -> dict[str, Any]:
    """Open *connections* idle subscriptions of *route*; report the server's RSS growth per
    connection."""
    pump = Pump()
    topic = f"idle{os.getpid()}"
    # Warm up: the first streams import and allocate things once per process.
    warm = [open_connection(port, f"{route}?topic={topic}w", ResponseParser()) for _ in range(20)]
    for connection in warm:
        pump.add(connection)
    pump.run(lambda: all(c.parser.headers_done for c in warm), timeout)
    for connection in warm:
        pump.close(connection)
    time.sleep(settle)
    before = rss_bytes(pids)
    opened = []
    for _ in range(connections):
        connection = open_connection(port, f"{route}?topic={topic}", ResponseParser())
        opened.append(connection)
        pump.add(connection)
    ready = pump.run(lambda: all(c.parser.headers_done for c in opened), timeout)
    pump.run(lambda: False, settle)
    after = rss_bytes(pids)
    alive = sum(1 for c in opened if c in pump.open)
    pump.close_all()
    return {
        "connections": connections,
        "ready": ready,
        "alive": alive,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_connection": (after - before) / connections,
    }


def shutdown(
    port: int, connections: int, path: str, main_pid: int, grace: float, timeout: float
) -> dict[str, Any]:
    """Open *connections* streams, SIGTERM the server, time how they end and when it exits."""
    pump = Pump()
    opened = []
    for _ in range(connections):
        connection = open_connection(port, path, ResponseParser())
        opened.append(connection)
        pump.add(connection)
    ready = pump.run(lambda: all(c.parser.events >= 1 for c in opened), timeout)
    started = sum(1 for c in opened if c.parser.events >= 1)
    signalled = time.monotonic_ns()
    os.kill(main_pid, signal.SIGTERM)
    exited_at = 0

    def done() -> bool:
        nonlocal exited_at
        if not exited_at and process_gone(main_pid):
            exited_at = time.monotonic_ns()
        return exited_at != 0 and not pump.open

    pump.run(done, grace + timeout, tick=0.01)
    still_open = len(pump.open)
    pump.close_all()
    ends = [c.ended_at - signalled for c in opened if c.ended_at]
    return {
        "connections": connections,
        "ready": ready,
        "started": started,
        "clean": sum(1 for c in opened if c.parser.complete),
        "cut": sum(1 for c in opened if c.ended_at and not c.parser.complete),
        "still_open": still_open,
        "last_end_s": max(ends) / 1e9 if ends else float("nan"),
        "exit_s": (exited_at - signalled) / 1e9 if exited_at else float("nan"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.client", description=__doc__)
    parser.add_argument("mode", choices=("throughput", "fanout", "idle", "shutdown"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--publish-port", type=int, default=0, help="fanout: publish here")
    parser.add_argument("--pids", default="", help="server pids (CPU time, RSS), comma-separated")
    parser.add_argument("--path", default="/stream")
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--main-pid", type=int, default=0)
    parser.add_argument("--grace", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--newline", choices=sorted(TERMINATORS), default="crlf")
    parser.add_argument("--publish-path", default="/publish", help="fanout: publish route")
    parser.add_argument("--subscribe-path", default="/subscribe", help="idle: subscription route")
    args = parser.parse_args(argv)
    pids = _pids(args.pids)
    terminator = TERMINATORS[args.newline]
    if args.mode == "throughput":
        result = throughput(args.port, args.path, args.expect, pids, args.timeout, terminator)
    elif args.mode == "fanout":
        result = fanout(
            args.port, args.subscribers, args.events, args.rate, pids, args.timeout,
            args.publish_port, terminator=terminator, publish_path=args.publish_path,
        )  # fmt: skip
    elif args.mode == "idle":
        result = idle(
            args.port, args.connections, pids, args.settle, args.timeout, args.subscribe_path
        )
    else:
        result = shutdown(
            args.port, args.connections, args.path, args.main_pid, args.grace, args.timeout
        )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
