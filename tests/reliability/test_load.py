"""10,000 concurrent idle streams on one server process, then a broadcast to all of them.

The clients (raw sockets, in this process) connect ``CONNECTING`` at a time to one topic of
the reliability app's in-memory Broadcaster, with ``ping=5``. Once every stream is open and has
had at least one ping, ``EVENTS`` events are published ``INTERVAL`` seconds apart, and every
client must receive every event, in order. Reported, not asserted: the RSS of the server per
connection, the time to connect them all, and the delivery latency (publication by the server
to decoding by the client; the client process is one Python thread reading every socket, so
its own queueing is part of the figure) at p50/p99/max.

The server runs with raised GC thresholds (``SERVER_GC_THRESHOLD``, and why); set
``TRIO_SSE_RELIABILITY_GC=default`` to measure Python's defaults instead.

File descriptors: the test raises its own ``RLIMIT_NOFILE`` (``resource.setrlimit``) and the
server's (``tests/reliability/nofile.py`` wraps the server command); when the hard limit is
below what ``LOAD_STREAMS`` needs, the test runs with as many streams as fit and says so.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from ._support import MIB, Server, SseReader, percentile, reliability_server, report, until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

LOAD_STREAMS = int(os.environ.get("TRIO_SSE_RELIABILITY_STREAMS") or 10_000)
"""Concurrent streams held by the one server process (``TRIO_SSE_RELIABILITY_STREAMS``)."""

SERVER_GC_THRESHOLD = os.environ.get("TRIO_SSE_RELIABILITY_GC") or "50000,20,100"
"""The server's ``gc.set_threshold`` (``TRIO_SSE_RELIABILITY_GC``; ``default``: Python's own).

Why not Python's defaults (700, 10, 10): every ping and every event allocates objects that
live until the next one (the new wait scopes of the stream's tasks, with their trio state),
so they outlive the young generations and pile up in the oldest, which then triggers full
collections, and a full collection traverses every object of every stream. Measured on
hypercorn's trio worker, 2,000 streams pinging every second: 8 full collections in 10 s, 0.4 s
each over ~680,000 objects, 57 % of the server's CPU; 0.49 ms of CPU per ping with the
defaults, 0.22 ms with these thresholds (about what it is with the collector off). At 10,000
streams with ``ping=5`` the defaults leave the pings most of a core and the streams take 40
to over 180 s to open on a 2-core machine, against ~15 s here, which is what lets this test
fit the suite's couple of minutes. We recommend the same for servers that hold thousands of
streams (see the README).
"""

EVENTS = 5
INTERVAL = 0.5
PING = 5
CONNECTING = 64  # connections being set up at once (the server's listen backlog is 100)
SPARE_FDS = 500  # what each process needs besides one descriptor per stream


@contextmanager
def raised_nofile(wanted: int) -> Iterator[int]:
    """Raise this process's soft RLIMIT_NOFILE towards *wanted*; yield what it is."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
    try:
        yield max(soft, target)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process *pid* so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def progress(text: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {text}", flush=True)


async def subscribers(server: Server, count: int) -> bool:
    """Has the hub *count* subscribers?"""
    return int((await server.debug())["hub"]["subscribers"]) >= count


async def test_ten_thousand_idle_streams_then_a_broadcast(
    anyio_backend: str, tmp_path: Path
) -> None:
    wanted = LOAD_STREAMS
    gc_threshold = "" if SERVER_GC_THRESHOLD == "default" else SERVER_GC_THRESHOLD
    with raised_nofile(wanted + SPARE_FDS) as limit:
        count = min(wanted, limit - SPARE_FDS)
        async with reliability_server(
            anyio_backend,
            tmp_path,
            nofile=count + SPARE_FDS,
            env={"RELIABILITY_HISTORY": "16", "RELIABILITY_GC_THRESHOLD": gc_threshold},
        ) as server:
            before = await server.debug(collect=True)
            readers = [SseReader(server.port, f"/broadcast/load?ping={PING}") for _ in range(count)]
            connecting = anyio.CapacityLimiter(CONNECTING)
            with anyio.fail_after(240):
                async with anyio.create_task_group() as group:
                    started = time.monotonic()
                    client_cpu = time.process_time()
                    server_cpu = cpu_seconds(server.process.pid)
                    for reader in readers:
                        group.start_soon(reader.run, connecting)
                    for reader in readers:
                        await reader.ready.wait()
                    connect_seconds = time.monotonic() - started
                    client_cpu = time.process_time() - client_cpu
                    server_cpu = cpu_seconds(server.process.pid) - server_cpu
                    progress(f"{count} streams open after {connect_seconds:.1f} s")
                    failed = [reader.status for reader in readers if reader.status != 200]
                    assert not failed, f"{len(failed)} streams refused: {failed[:5]}"
                    await until(lambda: subscribers(server, count), interval=0.1)
                    held = await server.debug(collect=True)
                    # Pings flow on every idle stream (the first one PING seconds after it opened).
                    last_connected = max(reader.connected_at for reader in readers)
                    with anyio.fail_after(60):
                        await until(lambda: all(reader.pings for reader in readers), interval=0.2)
                    pinged_after = time.monotonic() - last_connected
                    progress(f"every stream had a ping {pinged_after:.1f} s after the last opened")
                    cpu_before = cpu_seconds(server.process.pid)
                    broadcast_started = time.monotonic()
                    response = await server.post(
                        f"/publish/load?count={EVENTS}&interval={INTERVAL}"
                    )
                    assert response.status == 200
                    published = json.loads(response.body)
                    with anyio.fail_after(60):
                        for reader in readers:
                            await reader.wait_for(EVENTS)
                    delivered_after = time.monotonic() - broadcast_started
                    progress(f"{EVENTS} events reached every stream in {delivered_after:.1f} s")
                    cpu_broadcast = cpu_seconds(server.process.pid) - cpu_before
                    after = await server.debug()
                    group.cancel_scope.cancel()
            latencies = [value for reader in readers for value in reader.latencies]
            figures = {
                "backend": anyio_backend,
                "streams": count,
                "streams_wanted": wanted,
                "server_gc_threshold": gc_threshold or "default",
                "nofile_limit": limit,
                "connect_seconds": round(connect_seconds, 1),
                "connections_per_second": round(count / connect_seconds),
                "connect_retries": sum(reader.retries for reader in readers),
                "connect_cpu_seconds": {
                    "server": round(server_cpu, 1),
                    "client": round(client_cpu, 1),
                },
                "server_rss_mib": [round(before["rss"] / MIB, 1), round(held["rss"] / MIB, 1)],
                "rss_kib_per_connection": round((held["rss"] - before["rss"]) / count / 1024, 1),
                "server_tasks": held["tasks"],
                "server_fds": held["fds"],
                "first_ping_seconds_after_last_connect": round(pinged_after, 1),
                "pings_received": sum(reader.pings for reader in readers),
                "events": EVENTS,
                "deliveries": len(latencies),
                "broadcast_seconds": round(delivered_after, 2),
                "deliveries_per_second": round(len(latencies) / delivered_after),
                "server_cpu_seconds_during_broadcast": round(cpu_broadcast, 2),
                "latency_ms_p50": round(percentile(latencies, 50) * 1000, 1),
                "latency_ms_p99": round(percentile(latencies, 99) * 1000, 1),
                "latency_ms_max": round(max(latencies) * 1000, 1),
                "hub_disconnected": after["hub"]["disconnected"],
                "load_average": os.getloadavg()[0],
            }
            report(f"load-{anyio_backend}", figures)
            if count < wanted:
                print(f"[reliability] only {count} streams fit RLIMIT_NOFILE ({limit})")
            for reader in readers:
                assert [event_id for event_id, _ in reader.events] == published
            assert after["hub"]["disconnected"] == 0, figures
            server.assert_running()
            server.assert_clean_log()
