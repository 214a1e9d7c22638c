"""The runner on a Unix socket, under a root path, behind a proxy (issue 17 item 2):
``serve(uds=..., root_path=..., proxy_headers=...)`` in process, and a real
``python -m trio_sse serve --uds ...`` process that drains its stream on SIGTERM."""

from __future__ import annotations

import functools
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trio_sse import EventDecoder, EventSourceResponse, ServerSentEvent, ShutdownToken, serve
from trio_sse._proxy import ProxyHeaders

from ._backends import BACKENDS
from .processes import child_env, kill_group, spawn

Send = MemoryObjectSendStream[Any]

# As two proxies would set them: the outer one saw the client 198.51.100.1 over https for
# example.test, the inner one saw the outer one (203.0.113.7) over http for inner.test.
FORWARDED = {
    "x-forwarded-for": "198.51.100.1, 203.0.113.7",
    "x-forwarded-proto": "https, http",
    "x-forwarded-host": "example.test, inner.test",
    "forwarded": "for=198.51.100.1;proto=https;host=example.test, "
    "for=203.0.113.7;proto=http;host=inner.test",
}


async def who(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "client": request.client.host if request.client else None,
            "scheme": request.url.scheme,
            "url": str(request.url),
            "root_path": request.scope.get("root_path"),
        }
    )


async def one_event(send: Send) -> None:
    async with send:
        await send.send(ServerSentEvent("over uds", id=1))


async def sse(request: Request) -> EventSourceResponse:
    return EventSourceResponse(one_event)


app = Starlette(routes=[Route("/who", who), Route("/sse", sse)])


@contextmanager
def short_socket_path(tmp_path: Path) -> Iterator[Path]:
    """tmp_path can be longer than a Unix socket path may be (108 bytes)."""
    path = tmp_path / "s.sock"
    if len(str(path)) < 100:
        yield path
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sse") as folder:
        yield Path(folder) / "s.sock"


async def ask(uds: Path, **options: Any) -> tuple[dict[str, Any], list[ServerSentEvent]]:
    """Serve ``app`` on *uds* with *options*; GET /prefix/who (forwarded) and /prefix/sse."""
    token = ShutdownToken()
    transport = httpx.AsyncHTTPTransport(uds=str(uds))
    async with anyio.create_task_group() as group:
        urls = await group.start(
            functools.partial(
                serve, app, uds=uds, root_path="/prefix", shutdown=token, handle_signals=False,
                **options,
            )
        )  # fmt: skip
        assert urls == [f"http+unix://{uds}"]
        async with httpx.AsyncClient(
            transport=transport, base_url="http://proxy.internal"
        ) as client:
            seen = (await client.get("/prefix/who", headers=FORWARDED)).json()
            response = await client.get("/prefix/sse")
            assert response.headers["content-type"].startswith("text/event-stream")
            events = EventDecoder().feed(response.content)
        token.trigger("test")
    return seen, events


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("mode", "hops", "client", "origin"),
    [
        ("legacy", 1, "203.0.113.7", "http://inner.test"),
        ("legacy", 2, "198.51.100.1", "https://example.test"),
        ("modern", 1, "203.0.113.7", "http://inner.test"),
        ("modern", 2, "198.51.100.1", "https://example.test"),
    ],
)
async def test_proxy_headers_over_a_unix_socket(
    tmp_path: Path, mode: ProxyHeaders, hops: int, client: str, origin: str
) -> None:
    with short_socket_path(tmp_path) as uds, anyio.fail_after(15):
        seen, events = await ask(uds, proxy_headers=mode, proxy_trusted_hops=hops)
    assert seen == {
        "client": client,
        "scheme": origin.partition(":")[0],
        "url": f"{origin}/prefix/who",
        "root_path": "/prefix",
    }
    assert [(event.id, event.data) for event in events] == [("1", "over uds")]


@pytest.mark.anyio
async def test_without_proxy_headers_forwarded_headers_are_ignored(tmp_path: Path) -> None:
    with short_socket_path(tmp_path) as uds, anyio.fail_after(15):
        seen, events = await ask(uds)
    assert seen["scheme"] == "http"
    assert seen["url"] == "http://proxy.internal/prefix/who"
    assert seen["client"] not in ("203.0.113.7", "198.51.100.1")
    assert len(events) == 1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"proxy_headers": "x"}, ValueError, "proxy_headers must be one of 'legacy', 'modern'"),
        ({"proxy_trusted_hops": 0}, ValueError, r"proxy_trusted_hops must be >= 1 .*got 0"),
        ({"proxy_trusted_hops": "1"}, TypeError, "proxy_trusted_hops must be an int, got '1'"),
    ],
)
async def test_bad_proxy_options_name_themselves(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with short_socket_path(tmp_path) as uds, anyio.fail_after(5):
        with pytest.raises(error, match=match):
            await serve(app, uds=uds, handle_signals=False, **options)
        assert not uds.exists()  # checked before anything listens


def wait_for_socket(path: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the server did not start:\n" + log.read_text()
        with socket.socket(socket.AF_UNIX) as sock:
            if sock.connect_ex(str(path)) == 0:
                return
        time.sleep(0.05)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_command_line_serves_a_unix_socket_and_drains_it(tmp_path: Path, backend: str) -> None:
    log = tmp_path / "server.log"
    with short_socket_path(tmp_path) as uds:
        command = [
            *(sys.executable, "-m", "trio_sse", "serve", "tests.servers.sse_app:app"),
            *("--backend", backend, "--uds", str(uds), "--root-path", "/p", "--proxy-headers"),
        ]
        process = spawn(command, log, child_env({"SSE_GRACE": "1"}))
        try:
            wait_for_socket(uds, process, log)
            transport = httpx.HTTPTransport(uds=str(uds))
            with httpx.Client(transport=transport, timeout=15) as client:
                decoder, events = EventDecoder(), []
                with client.stream("GET", "http://local/p/sse") as response:
                    for chunk in response.iter_raw():
                        events.extend(decoder.feed(chunk))
                        if len(events) == 1:
                            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0, log.read_text()
        finally:
            kill_group(process)
    assert events[-1].event == "shutdown"
    assert "http+unix://" in log.read_text()
