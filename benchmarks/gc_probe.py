"""``python -m benchmarks.gc_probe``: GC-tracked objects per open stream, and a full pass's time.

Starts the app (``--app``: trio_sse, sse-starlette, raw) on a server (``--server``) with the
``/gc`` route of ``benchmarks._gc_app``, opens ``--streams`` idle ``/subscribe`` streams after
a warm-up of 20, and prints one JSON object: the objects the collector tracks before and
after (each counted after ``gc.collect()``), per stream, the bytes those objects take
themselves per stream (``sys.getsizeof``: a proxy for memory that moves with the object
count and with their sizes, such as a coroutine's frame), the types that grew most per
stream, and seven timed full collections with the streams open (issue 18: one full pass with
a thousand streams' objects live is what sets the fan-out p99). ``--src`` runs another
checkout's ``src`` (a before/after comparison). Counts are exact; times are the machine's.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
import urllib.request
from typing import Any

from ._servers import Server, running
from .client import Pump, ResponseParser, open_connection

__all__ = ["main", "probe"]


def _gc(port: int, query: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/gc?{query}", timeout=60) as reply:
        found: dict[str, Any] = json.loads(reply.read())
        return found


def _open(pump: Pump, port: int, topic: str, count: int) -> None:
    opened = [
        open_connection(port, f"/subscribe?topic={topic}", ResponseParser()) for _ in range(count)
    ]
    for connection in opened:
        pump.add(connection)
    if not pump.run(lambda: all(c.parser.headers_done for c in opened), 60):
        raise RuntimeError("the streams did not all get their response headers")


def probe(server: Server, streams: int, top: int = 25) -> dict[str, Any]:
    """Measure *server* (running ``gc-probe``); see the module docstring."""
    pump = Pump()
    _open(pump, server.port, "warm", 20)
    pump.close_all()
    time.sleep(0.5)
    pump = Pump()
    before = _gc(server.port, "collect=1&types=1")
    _open(pump, server.port, "idle", streams)
    pump.run(lambda: False, 0.5)
    after = _gc(server.port, "collect=1&types=1&time=1")
    pump.close_all()
    grown = collections.Counter(after["types"])
    grown.subtract(before["types"])
    return {
        "objects_before": before["objects"],
        "objects_after": after["objects"],
        "per_stream": (after["objects"] - before["objects"]) / streams,
        "bytes_per_stream": (after["bytes"] - before["bytes"]) / streams,
        "full_collect_ms": [round(ms, 1) for ms in after["full_ms"]],
        "types_per_stream": {name: n / streams for name, n in grown.most_common(top)},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gc_probe", description=__doc__)
    parser.add_argument("--app", default="trio_sse", choices=("trio_sse", "sse-starlette", "raw"))
    parser.add_argument(
        "--server", default="uvicorn", choices=("uvicorn", "hypercorn-asyncio", "hypercorn-trio")
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25, help="how many types to list")
    parser.add_argument("--src", default="", help="another checkout's src/ to import trio_sse from")
    args = parser.parse_args(argv)
    env = {"TRIO_SSE_BENCH_GC_APP": args.app}
    server = Server(args.server, "gc-probe", env=env, src=args.src or None)
    with running([server]):
        result = probe(server, args.streams, args.top)
    json.dump(
        {"app": args.app, "server": args.server, "src": args.src, **result}, sys.stdout, indent=1
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
