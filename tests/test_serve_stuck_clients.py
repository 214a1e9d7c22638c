"""``trio_sse.serve``'s ``send_timeout`` (``--send-timeout``): a client that stops reading is
dropped by the kernel (``TCP_USER_TIMEOUT`` on the runner's listening sockets), on hypercorn's
trio worker, where a stream's own ``send_timeout`` cannot interrupt a write, and on asyncio.

A real ``python -m trio_sse serve`` process serves ``tests.servers.stuck_app``; the client
opens ``/flood`` on a socket with a small receive buffer and never reads. Once the server's
sends stall (``sent`` stops growing), the stream's producer must end within the timeout plus
a margin; with ``--send-timeout 0`` it is still running well after that.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from ._backends import requires_trio
from .processes import free_port, server_process

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not hasattr(socket, "TCP_USER_TIMEOUT"), reason="TCP_USER_TIMEOUT is Linux's"
    ),
]

TIMEOUT = 1.0
MARGIN = 8.0  # the kernel's retransmission and zero-window probe schedule, and the polling


def state(client: httpx.Client) -> dict[str, int]:
    result: dict[str, int] = client.get("/state").json()
    return result


def wait_until_stalled(client: httpx.Client) -> float:
    """Poll until the server's sends stop making progress; return when they stopped."""
    deadline = time.monotonic() + 20
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        sent = state(client)["sent"]
        if sent != last:
            last, since = sent, time.monotonic()
        elif time.monotonic() - since > 0.5:
            return since
        time.sleep(0.05)
    pytest.fail("the server never stalled: the client's buffers took everything")


def stuck_client(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /flood HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock  # and never read from it


@pytest.mark.parametrize("backend", [pytest.param("trio", marks=requires_trio), "asyncio"])
@pytest.mark.parametrize("send_timeout", [TIMEOUT, 0.0], ids=["timeout", "no-timeout"])
def test_a_client_that_stops_reading_is_dropped(
    backend: str, send_timeout: float, tmp_path: Path
) -> None:
    port = free_port()
    command = [
        *(sys.executable, "-m", "trio_sse", "serve", "tests.servers.stuck_app:app"),
        *("--backend", backend, "--port", str(port), "--send-timeout", str(send_timeout)),
    ]
    with (
        server_process(command, port, tmp_path / "stuck.log"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client,
    ):
        sock = stuck_client(port)
        try:
            stalled_at = wait_until_stalled(client)
            assert state(client)["active"] == 1
            if send_timeout:
                deadline = stalled_at + send_timeout + MARGIN
                while state(client)["ended"] == 0:
                    assert time.monotonic() < deadline, "the stuck client was never dropped"
                    time.sleep(0.05)
                assert state(client)["active"] == 0
            else:
                time.sleep(send_timeout + 4.0)
                assert state(client)["active"] == 1  # no limit: it waits for the client
        finally:
            sock.close()
