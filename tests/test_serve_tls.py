"""The runner over TLS (issue 17 item 2): HTTP/2 by ALPN, client certificates, and a real
``python -m trio_sse serve --certfile --keyfile`` process whose HTTP/2 streams all end
cleanly on SIGTERM. Certificates are made for the run by ``trustme``; all on 127.0.0.1."""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import httpx
import pytest
from anyio.streams.memory import MemoryObjectSendStream

from trio_sse import EventDecoder, ServerSentEvent, ShutdownToken, serve
from trio_sse._listen import ClientCert

from .helpers import sse_app
from .processes import free_port, server_process
from .tls import Certificates, make_certificates

pytestmark = pytest.mark.anyio

Send = MemoryObjectSendStream[Any]
GRACE = 3.0  # the runner's --grace; the app's streams end within 1 s of the signal
MARGIN = 10.0  # process start-up of nothing, hypercorn's stop, the interpreter's exit
STREAMS = 5


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


async def one_event(send: Send) -> None:
    async with send:
        await send.send(ServerSentEvent("hello", id=0))


async def first_event(client: httpx.AsyncClient, url: str) -> tuple[str, str]:
    """GET *url* (a stream of one event), return the HTTP version and the event's data."""
    decoder = EventDecoder()
    events: list[ServerSentEvent] = []
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():  # read to the end: httpx's http2 streams
            events.extend(decoder.feed(chunk))  # left early warn when collected under trio
    assert len(events) == 1
    return response.http_version, str(events[0].data)


async def test_https_offers_http2_and_http11(certificates: Certificates) -> None:
    token = ShutdownToken()
    app = sse_app(lambda: one_event)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            urls = await group.start(
                functools.partial(
                    serve,
                    app,
                    port=0,
                    shutdown=token,
                    handle_signals=False,
                    certfile=certificates.server_cert,
                    keyfile=certificates.server_key,
                )
            )
            assert urls[0].startswith("https://127.0.0.1:")
            context = certificates.client_context()
            for http2, version in [(True, "HTTP/2"), (False, "HTTP/1.1")]:
                async with httpx.AsyncClient(http2=http2, verify=context) as client:
                    assert await first_event(client, urls[0] + "/") == (version, "hello")
            token.trigger("test")


@pytest.mark.parametrize("client_cert", ["required", "optional"])
async def test_client_certificates(certificates: Certificates, client_cert: ClientCert) -> None:
    token = ShutdownToken()
    app = sse_app(lambda: one_event)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            urls = await group.start(
                functools.partial(
                    serve,
                    app,
                    port=0,
                    shutdown=token,
                    handle_signals=False,
                    certfile=str(certificates.server_cert),
                    keyfile=str(certificates.server_key),
                    ca_certs=certificates.ca_file,
                    client_cert=client_cert,
                )
            )
            with_cert = certificates.client_context(with_certificate=True)
            async with httpx.AsyncClient(http2=True, verify=with_cert) as client:
                assert await first_event(client, urls[0] + "/") == ("HTTP/2", "hello")
            without = certificates.client_context()
            async with httpx.AsyncClient(http2=True, verify=without) as client:
                if client_cert == "optional":
                    assert await first_event(client, urls[0] + "/") == ("HTTP/2", "hello")
                else:
                    # TLS 1.3: the refusal arrives after the client's side of the handshake.
                    with pytest.raises(httpx.TransportError):
                        await first_event(client, urls[0] + "/")
            token.trigger("test")


@pytest.mark.parametrize("client", ["leaves", "stays"])
async def test_sigterm_ends_every_http2_stream_cleanly(
    anyio_backend: str, certificates: Certificates, tmp_path: Path, client: str
) -> None:
    """The runner on the same backend as the test's client: trio, then asyncio. The client
    then closes its connection, or keeps it open and idle until the process is gone (the
    asyncio runner's loop does not wait 30 s for its close_notify: trio_sse._asyncio_loop)."""
    port, count = free_port(), tmp_path / "count.txt"
    command = [
        *(sys.executable, "-m", "trio_sse", "serve", "tests.servers.sse_app:app"),
        *("--backend", anyio_backend, "--port", str(port), "--grace", str(GRACE)),
        *("--certfile", str(certificates.server_cert), "--keyfile", str(certificates.server_key)),
    ]
    env = {"SSE_COUNT_FILE": str(count), "SSE_GRACE": "1"}
    context = certificates.client_context()
    with server_process(command, port, tmp_path / "server.log", env=env) as process:
        async with httpx.AsyncClient(http2=True, verify=context, timeout=20) as http:
            streams: list[list[ServerSentEvent]] = [[] for _ in range(STREAMS)]
            with anyio.fail_after(30):
                async with anyio.create_task_group() as group:
                    for events in streams:
                        await group.start(collect, http, f"https://127.0.0.1:{port}/sse", events)
                    process.send_signal(signal.SIGTERM)
                    signalled = time.monotonic()
                ended = time.monotonic() - signalled
            if client == "stays":
                exited = await anyio.to_thread.run_sync(wait_exit, process, signalled)
        if client == "leaves":
            exited = await anyio.to_thread.run_sync(wait_exit, process, signalled)
    assert process.returncode == 0, (tmp_path / "server.log").read_text()
    assert exited < GRACE + MARGIN
    for events in streams:
        assert events[-1].event == "shutdown", events[-3:]
        assert [event.id for event in events[:-1]] == [str(n) for n in range(len(events) - 1)]
    assert count.read_text().split() == ["sse"] * STREAMS  # every producer saw the token
    print(f"{anyio_backend}, client {client}: streams ended {ended:.2f} s, exit {exited:.2f} s")


def wait_exit(process: subprocess.Popen[bytes], since: float) -> float:
    """Wait for *process* (at most GRACE + MARGIN); the seconds from *since* to its exit."""
    process.wait(timeout=GRACE + MARGIN)
    return time.monotonic() - since


async def collect(
    client: httpx.AsyncClient,
    url: str,
    events: list[ServerSentEvent],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Read *url*'s stream into *events* until the server ends it (over HTTP/2); started
    once the first event arrived."""
    decoder = EventDecoder()
    async with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.http_version == "HTTP/2"
        async for chunk in response.aiter_raw():
            events.extend(decoder.feed(chunk))
            if events and events[0] is events[-1]:
                task_status.started()
