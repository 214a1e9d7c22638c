"""A client that stops reading costs bounded memory, is dropped, and never slows the others.

A real server broadcasts 16 KiB events to ``FAST`` readers and to one *stuck* client: a raw
socket with a 4 KiB receive buffer that sends its request and never reads again. While the
stuck client holds its connection and events keep being published:

* the server's RSS stays within ``RSS_BOUND`` of what it was once the stuck client's buffers
  had filled (publishing the same events without a bound would take ~2 * ``PHASE_TWO`` *
  16 KiB more: the data and its encoding);
* the Broadcaster drops the stuck subscriber by its overflow policy (``disconnect``) once its
  buffer of ``STUCK_BUFFER`` events is full; on asyncio the response's ``send_timeout`` also
  ends the stuck stream (on hypercorn's trio worker a socket write is shielded, so the stream
  waits, bounded, until the client goes: a documented limitation);
* every fast reader receives every event, in order. Delivery latency is reported, not
  asserted.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from ._support import (
    MIB,
    Server,
    SseReader,
    percentile,
    reliability_server,
    report,
    request_bytes,
    until,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

FAST = 3
EVENT_SIZE = 16 * 1024
PHASE_ONE = 300  # events that fill the stuck client's buffers (and get it dropped)
PHASE_TWO = 2500  # events published while it is stuck: what the RSS must not grow with
INTERVAL = 0.001
STUCK_BUFFER = 32
SEND_TIMEOUT = 2.0
RSS_BOUND = 24 * MIB

ENV = {
    "RELIABILITY_SEND_TIMEOUT": str(SEND_TIMEOUT),
    "RELIABILITY_RESPONSE_BUFFER": "32",
    "RELIABILITY_HISTORY": "64",
}


def stuck_client(port: int) -> socket.socket:
    """Connect with a tiny receive window, send the request, and never read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    sock.connect(("127.0.0.1", port))
    sock.sendall(request_bytes("GET", f"/broadcast/slow?buffer={STUCK_BUFFER}&ping=0"))
    return sock


async def hub_count(server: Server, name: str, at_least: int) -> bool:
    """Has the hub's counter *name* reached *at_least*?"""
    return int((await server.debug())["hub"][name]) >= at_least


async def producers_are(server: Server, count: int) -> bool:
    return await active_producers(server) == count


async def active_producers(server: Server) -> int:
    state = await server.debug()
    return int(state["producers_started"] - state["producers_finished"])


async def test_a_stuck_client_is_bounded_dropped_and_harmless(
    anyio_backend: str, tmp_path: Path
) -> None:
    async with reliability_server(anyio_backend, tmp_path, env=ENV) as server:
        # Fast readers get room for half a second of events: on a loaded machine (the whole
        # suite on Python 3.10) the server can fall a few hundred ms behind without anyone
        # being stuck; the stuck client, with its small buffer, is still dropped.
        readers = [SseReader(server.port, "/broadcast/slow?buffer=512&ping=0") for _ in range(FAST)]
        with anyio.fail_after(90):
            async with anyio.create_task_group() as group:
                for reader in readers:
                    group.start_soon(reader.run)
                for reader in readers:
                    await reader.ready.wait()
                    assert reader.status == 200
                sock = await anyio.to_thread.run_sync(stuck_client, server.port)
                try:
                    await until(lambda: hub_count(server, "subscribers", FAST + 1))
                    response = await server.post(
                        f"/publish/slow?count={PHASE_ONE}&size={EVENT_SIZE}&interval={INTERVAL}"
                    )
                    assert response.status == 200
                    published = json.loads(response.body)
                    # Dropped by the hub: its subscriber buffer overflowed.
                    await until(lambda: hub_count(server, "disconnected", 1))
                    filled = await server.debug(collect=True)
                    samples: list[int] = []

                    async def sample_rss() -> None:
                        while True:
                            samples.append((await server.debug())["rss"])
                            await anyio.sleep(0.1)

                    async with anyio.create_task_group() as sampling:
                        sampling.start_soon(sample_rss)
                        response = await server.post(
                            f"/publish/slow?count={PHASE_TWO}&size={EVENT_SIZE}&interval={INTERVAL}"
                        )
                        assert response.status == 200
                        published += json.loads(response.body)
                        sampling.cancel_scope.cancel()
                    after = await server.debug(collect=True)
                    total = PHASE_ONE + PHASE_TWO
                    for reader in readers:
                        await reader.wait_for(total)
                    # The stuck stream: ended by send_timeout (asyncio), or still waiting on its
                    # shielded socket write (hypercorn's trio worker), bounded either way.
                    stuck_active = await active_producers(server) - FAST
                    if anyio_backend == "asyncio":
                        with anyio.fail_after(SEND_TIMEOUT + 5):
                            while stuck_active:
                                await anyio.sleep(0.05)
                                stuck_active = await active_producers(server) - FAST
                    stuck_state = "ended (send_timeout)" if stuck_active == 0 else "waiting"
                    assert stuck_active in (0, 1)
                finally:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                    sock.close()
                # Once the stuck client is gone, its stream ends on every backend.
                with anyio.fail_after(10):
                    await until(lambda: producers_are(server, FAST))
                group.cancel_scope.cancel()
        latencies = [value for reader in readers for value in reader.latencies]
        growth = max([*samples, after["rss"]]) - filled["rss"]
        figures = {
            "backend": anyio_backend,
            "events": total,
            "event_bytes": EVENT_SIZE,
            "fast_readers": FAST,
            "stuck_subscriber_dropped": after["hub"]["disconnected"],
            "stuck_stream": stuck_state,
            "rss_mib_when_filled": round(filled["rss"] / MIB, 1),
            "rss_growth_mib_while_stuck": round(growth / MIB, 1),
            "unbounded_would_be_mib": round(2 * PHASE_TWO * EVENT_SIZE / MIB),
            "latency_ms_p50": round(percentile(latencies, 50) * 1000, 2),
            "latency_ms_p99": round(percentile(latencies, 99) * 1000, 2),
            "latency_ms_max": round(max(latencies) * 1000, 2),
        }
        report(f"slow-client-{anyio_backend}", figures)
        for reader in readers:
            assert [event_id for event_id, _ in reader.events] == published
        assert after["hub"]["disconnected"] >= 1, figures
        assert after["hub"]["subscribers"] == FAST, figures
        assert growth < RSS_BOUND, figures
        server.assert_running()
        # A send timeout is an error of that ASGI call: the server logs it with its traceback.
        server.assert_clean_log(expected_errors=["SendTimeoutError"])
