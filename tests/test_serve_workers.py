"""``python -m trio_sse serve --workers 2`` (issue 17 item 2): a real process tree, streams
open on both workers (each event names its worker's pid), then SIGTERM to the parent (or
Ctrl-C, SIGINT to the whole group): every stream ends with its worker's farewell, the parent
exits 0 and no worker is left. A worker that dies on its own stops the others (status 1)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import httpx
import pytest

from trio_sse import EventDecoder, ServerSentEvent, run

from ._backends import BACKENDS
from .processes import child_env, free_port, kill_group, server_process, spawn
from .tls import make_certificates

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")

GRACE = 3.0
MARGIN = 10.0
MOST_STREAMS = 40  # to find both workers; the kernel spreads connections between them


def parent_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise AssertionError(f"no PPid for {pid}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pid_of(events: list[ServerSentEvent]) -> int:
    pid: int = json.loads(str(events[0].data))["pid"]
    return pid


async def collect(
    client: httpx.AsyncClient,
    url: str,
    events: list[ServerSentEvent],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Read *url*'s stream into *events* until the server ends it; started at the first."""
    decoder = EventDecoder()
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            events.extend(decoder.feed(chunk))
            if events and events[0] is events[-1]:
                task_status.started()


async def collect_or_cut(
    client: httpx.AsyncClient,
    url: str,
    events: list[ServerSentEvent],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """:func:`collect`, for a stream whose worker may be killed: a cut body is expected."""
    try:
        await collect(client, url, events, task_status=task_status)
    except httpx.RemoteProtocolError:
        events.append(ServerSentEvent("cut", event="cut"))


async def streams_on_every_worker(
    client: httpx.AsyncClient, url: str, group: anyio.abc.TaskGroup, *, cut: bool = False
) -> list[list[ServerSentEvent]]:
    """Open streams (each on a connection of its own) until both workers serve one."""
    streams: list[list[ServerSentEvent]] = []
    while len({pid_of(events) for events in streams}) < 2:
        assert len(streams) < MOST_STREAMS, "every stream went to the same worker"
        streams.append([])
        await group.start(collect_or_cut if cut else collect, client, url, streams[-1])
    return streams


def wait_ready(log: Path, workers: int = 2) -> None:
    """Until the parent says that the workers are ready (listening, signals handled)."""
    deadline = time.monotonic() + 20
    while f"all {workers} workers ready" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


def wait_exit(process: subprocess.Popen[bytes], since: float) -> float:
    process.wait(timeout=GRACE + MARGIN)
    return time.monotonic() - since


def workers_command(backend: str, port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "trio_sse", "serve", "tests.servers.worker_app:app"),
        *("--backend", backend, "--port", str(port), "--grace", str(GRACE), "--workers", "2"),
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["sigterm-to-parent", "sigint-to-group"])
async def test_a_signal_drains_every_worker(anyio_backend: str, how: str, tmp_path: Path) -> None:
    """The workers run on the same backend as the test's client: trio, then asyncio."""
    port, log = free_port(), tmp_path / "server.log"
    with server_process(workers_command(anyio_backend, port), port, log) as parent:
        await anyio.to_thread.run_sync(wait_ready, log)
        async with httpx.AsyncClient(timeout=20) as client:
            with anyio.fail_after(40):
                async with anyio.create_task_group() as group:
                    url = f"http://127.0.0.1:{port}/sse"
                    streams = await streams_on_every_worker(client, url, group)
                    workers = {pid_of(events) for events in streams}
                    assert {parent_of(pid) for pid in workers} == {parent.pid}
                    if how == "sigterm-to-parent":
                        parent.send_signal(signal.SIGTERM)
                    else:  # Ctrl-C in a terminal: every process of the group gets SIGINT
                        os.killpg(parent.pid, signal.SIGINT)
                    signalled = time.monotonic()
                ended = time.monotonic() - signalled
        exited = await anyio.to_thread.run_sync(wait_exit, parent, signalled)
    assert parent.returncode == 0, log.read_text()
    for events in streams:
        farewell = json.loads(str(events[-1].data))
        assert (events[-1].event, farewell) == ("shutdown", {"pid": pid_of(events), "bye": True})
    assert not any(alive(pid) for pid in workers)
    assert log.read_text().count("SIGTERM received: draining streams") == 2, log.read_text()
    print(f"{anyio_backend} {how}: {len(streams)} streams ended {ended:.2f} s, exit {exited:.2f} s")


@pytest.mark.anyio
async def test_a_worker_that_dies_stops_the_others(anyio_backend: str, tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    with server_process(workers_command(anyio_backend, port), port, log) as parent:
        await anyio.to_thread.run_sync(wait_ready, log)
        async with httpx.AsyncClient(timeout=20) as client:
            with anyio.fail_after(40):
                async with anyio.create_task_group() as group:
                    url = f"http://127.0.0.1:{port}/sse"
                    streams = await streams_on_every_worker(client, url, group, cut=True)
                    killed = pid_of(streams[0])
                    os.kill(killed, signal.SIGKILL)
                    signalled = time.monotonic()
        await anyio.to_thread.run_sync(wait_exit, parent, signalled)
    assert parent.returncode == 1
    assert f"worker {killed} exited (-9): stopping" in log.read_text()
    for events in streams:  # the other worker drained its streams
        assert events[-1].event == ("cut" if pid_of(events) == killed else "shutdown")


def test_workers_need_an_app_target() -> None:
    with pytest.raises(TypeError, match="app must be a 'module:attribute' str"):
        run(object(), workers=2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        run("tests.servers.worker_app:app", workers=0)


@pytest.mark.parametrize("workers", [1, 2])
def test_run_serves_a_target_on_a_unix_socket(tmp_path: Path, workers: int) -> None:
    """``trio_sse.run("module:attr", workers=N, uds=...)``: with N > 1 the workers share the
    parent's listening socket (no SO_REUSEPORT for Unix sockets); SIGTERM drains them all."""
    log = tmp_path / "server.log"
    with tempfile.TemporaryDirectory(prefix="sse") as folder:  # a short socket path
        uds = Path(folder) / "s.sock"
        code = (
            "import logging, sys; logging.basicConfig(level='INFO'); from trio_sse import run; "
            f"run('tests.servers.worker_app:app', workers={workers}, uds={str(uds)!r}, "
            "backend='asyncio', shutdown_grace_period=3)"
        )
        process = spawn([sys.executable, "-c", code], log, child_env())
        try:
            wait_for_socket(uds, process, log)
            if workers > 1:
                wait_ready(log, workers)
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(uds)), timeout=15) as client:
                decoder, events = EventDecoder(), []
                with client.stream("GET", "http://local/sse") as response:
                    for chunk in response.iter_raw():
                        events.extend(decoder.feed(chunk))
                        if len(events) == 1:
                            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=GRACE + MARGIN) == 0, log.read_text()
        finally:
            kill_group(process)
    assert events[-1].event == "shutdown"
    assert json.loads(str(events[-1].data))["pid"] == pid_of(events)
    assert (f"all {workers} workers ready" in log.read_text()) == (workers > 1)


def wait_for_socket(path: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the server did not start:\n" + log.read_text()
        with socket.socket(socket.AF_UNIX) as sock:
            if sock.connect_ex(str(path)) == 0:
                return
        time.sleep(0.05)


@pytest.mark.anyio
async def test_workers_over_tls_serve_http2_and_drain(anyio_backend: str, tmp_path: Path) -> None:
    """With TLS every worker binds the same address (SO_REUSEPORT) with the certificates."""
    certificates = make_certificates(tmp_path)
    port, log = free_port(), tmp_path / "server.log"
    command = workers_command(anyio_backend, port)
    command += ["--certfile", str(certificates.server_cert)]
    command += ["--keyfile", str(certificates.server_key)]
    with server_process(command, port, log) as parent:
        await anyio.to_thread.run_sync(wait_ready, log)
        context = certificates.client_context()
        async with httpx.AsyncClient(http2=True, verify=context, timeout=20) as client:
            response = await client.get(f"https://127.0.0.1:{port}/missing")
            with anyio.fail_after(30):
                async with anyio.create_task_group() as group:
                    events: list[ServerSentEvent] = []
                    await group.start(collect, client, f"https://127.0.0.1:{port}/sse", events)
                    parent.send_signal(signal.SIGTERM)
                    signalled = time.monotonic()
        exited = await anyio.to_thread.run_sync(wait_exit, parent, signalled)
    assert (response.status_code, response.http_version) == (404, "HTTP/2")
    assert parent.returncode == 0, log.read_text()
    assert events[-1].event == "shutdown"
    print(f"{anyio_backend} TLS workers: exit {exited:.2f} s after SIGTERM")


def test_a_worker_that_cannot_start_fails_the_run(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    code = (
        "from trio_sse import run; "
        "run('tests.servers.no_such_app:app', workers=2, port=0, backend='asyncio')"
    )
    process = spawn([sys.executable, "-c", code], log, child_env())
    try:
        assert process.wait(timeout=30) == 1, log.read_text()
    finally:
        kill_group(process)
    output = log.read_text()
    assert "No module named 'tests.servers.no_such_app'" in output
    assert "RuntimeError: a worker failed or exited early (see the log)" in output


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_second_signal_stops_the_workers_now(tmp_path: Path, backend: str) -> None:
    """A stream that ignores the token (``/stubborn``, its response's grace 60 s) holds the
    drain; a second SIGTERM to the parent reaches its worker, which then stops at once."""
    port, log = free_port(), tmp_path / "server.log"
    command = [
        *(sys.executable, "-m", "trio_sse", "serve", "tests.servers.sse_app:app"),
        *("--backend", backend, "--port", str(port), "--grace", "60", "--workers", "2"),
    ]
    env = {"SSE_GRACE": "60", "SSE_COUNT_FILE": str(tmp_path / "count.txt")}
    with server_process(command, port, log, env=env) as parent:
        wait_ready(log)
        with httpx.Client(timeout=30) as client:
            decoder, events = EventDecoder(), []
            with client.stream("GET", f"http://127.0.0.1:{port}/stubborn") as response:
                for chunk in response.iter_raw():
                    events.extend(decoder.feed(chunk))
                    if len(events) == 1:
                        parent.send_signal(signal.SIGTERM)
                        while log.read_text().count("SIGTERM received") < 2:
                            time.sleep(0.05)  # both workers are draining, the stream goes on
                        parent.send_signal(signal.SIGTERM)
                        signalled = time.monotonic()
        exited = wait_exit(parent, signalled)
    assert parent.returncode == 0, log.read_text()
    assert exited < 30  # far less than the 60 s the drain would have taken
    # The worker without a stream drained at once and exits 0 even if the second SIGTERM
    # reaches it on its way out; the other one stops now.
    assert log.read_text().count("second signal: stopping now") == 1, log.read_text()
    assert events[-1].event == "shutdown"  # the stream still ended cleanly, with its farewell
    assert (tmp_path / "count.txt").read_text().split() == ["stubborn"]


def test_reuse_port_is_checked_on_every_reserved_socket() -> None:
    """Workers bind the parent's address with SO_REUSEPORT only when hypercorn set it on the
    sockets it reserved; otherwise they share the parent's listening socket."""
    from types import SimpleNamespace

    from trio_sse._workers import _all_reuse_port

    with socket.socket() as plain, socket.socket() as reusing:
        reusing.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        assert _all_reuse_port(SimpleNamespace(secure_sockets=[], insecure_sockets=[reusing]))
        both = SimpleNamespace(secure_sockets=[reusing], insecure_sockets=[plain])
        assert not _all_reuse_port(both)


def test_workers_share_one_socket_when_hypercorn_sets_no_reuse_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback, in this process: the reserved sockets are closed and one listening
    socket is made for the workers to inherit (the supervisor itself is not started)."""
    import trio_sse._workers as workers_module

    monkeypatch.setattr(workers_module, "_all_reuse_port", lambda sockets: False)
    handed: list[Any] = []

    class Supervisor:
        def __init__(self, spec: Any, sockets: Any, count: int) -> None:
            handed.append(sockets)

        def run(self) -> int:
            (sock,) = handed[0].insecure_sockets
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
            return 0

    monkeypatch.setattr(workers_module, "_Supervisor", Supervisor)
    status = workers_module.run_workers(
        "tests.servers.worker_app:app", workers=2, port=0, backend="asyncio"
    )
    assert status == 0
    assert handed[0] is not None  # inherited, not bound by each worker
