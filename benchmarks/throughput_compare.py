"""Throughput before/after a change, side by side: two trio_sse checkouts, the raw floor, Node.

``python -m benchmarks.throughput_compare --before SRC [--server uvicorn] [--rounds 7]
[--events 100000] [--no-node]`` prints one JSON object.

The ``throughput`` scenario of ``python -m benchmarks`` with one more contestant: the same
benchmark app (``benchmarks.app_trio_sse``) imported from *SRC* (another checkout's ``src``,
*before*) beside this checkout's (*after*), on both of its routes (``/stream``: a producer
function building a ``ServerSentEvent`` per event; ``/stream-gen``: an async generator), with
the raw ASGI floor and, when ``node`` is on PATH, raw ``node:http`` and ``better-sse``. Every
round runs every contestant once, in the same order (interleaved), so that a change in the
machine's load hits all of them alike: the figures to compare are the per-round ratios, whose
medians are reported beside each contestant's median rate.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Any

from ._node import node_ready
from ._runner import NODE_CONTESTANTS, run_client
from ._servers import Server, running

__all__ = ["main"]


def _contestants(before: Server, after: Server, raw: Server, node: list[Server]) -> list[Any]:
    rows = [
        ("before", before, "/stream", "crlf"),
        ("after", after, "/stream", "crlf"),
        ("before-gen", before, "/stream-gen", "crlf"),
        ("after-gen", after, "/stream-gen", "crlf"),
        ("raw", raw, "/stream", "crlf"),
    ]
    by_app = {server.app: server for server in node}
    for name, (app, path, _publish, newline) in NODE_CONTESTANTS.items():
        if app in by_app:
            rows.append((name, by_app[app], path, newline))
    return rows


def _summary(rates: dict[str, list[float]]) -> dict[str, Any]:
    """Median rate per contestant, and medians of per-round ratios against the references."""
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ratios: dict[str, float] = {}
    pairs = [("after", "before"), ("after-gen", "before-gen"), ("after-gen", "after")]
    pairs += [("before-gen", "before")]
    pairs += [(who, ref) for who in ("before", "after") for ref in ("better-sse", "node-raw")]
    for who, ref in pairs:
        if who in rates and ref in rates:
            per_round = [a / b for a, b in zip(rates[who], rates[ref], strict=True) if b]
            ratios[f"{who}/{ref}"] = round(statistics.median(per_round), 3)
    return {"median_rate": {k: round(v) for k, v in medians.items()}, "ratios": ratios}


def run(before_src: str, server_name: str, rounds: int, events: int, node: bool) -> dict[str, Any]:
    before = Server(server_name, "trio_sse", src=before_src)
    after = Server(server_name, "trio_sse")
    raw = Server(server_name, "raw")
    ready = node and node_ready(lambda line: print(line, file=sys.stderr))
    node_servers = [Server("node", app) for app in ("node-raw", "better-sse")] if ready else []
    rates: dict[str, list[float]] = {}
    with running([before, after, raw, *node_servers]):
        contestants = _contestants(before, after, raw, node_servers)
        for _name, server, path, newline in contestants:  # warm-up, not recorded
            run_client(
                "throughput", 120, port=server.port, path=f"{path}?n=2000&size=32",
                expect=2000, pids=server.pids, newline=newline,
            )  # fmt: skip
        for _round in range(rounds):
            for name, server, path, newline in contestants:
                result = run_client(
                    "throughput", 300, port=server.port, path=f"{path}?n={events}&size=32",
                    expect=events, pids=server.pids, newline=newline,
                )  # fmt: skip
                rates.setdefault(name, []).append(float(result.get("rate", 0.0)))
    return {
        "server": server_name,
        "events": events,
        "rounds": rounds,
        "before_src": before_src,
        "rates": {name: [round(r) for r in values] for name, values in rates.items()},
        **_summary(rates),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", required=True, help="the other checkout's src/ directory")
    parser.add_argument("--server", default="uvicorn")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--no-node", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.before, args.server, args.rounds, args.events, not args.no_node)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
