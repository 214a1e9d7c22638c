"""In-process throughput of one stream: the app's cost per event with no server and no socket.

``python -m benchmarks.throughput_probe [--events N] [--rounds R] [--backend asyncio|trio]
[--path producer|gen] [--profile]`` prints one JSON object.

The benchmark app's two throughput routes, called as ASGI apps: ``producer`` is
``EventSourceResponse(producer_function)`` where the producer builds one
``ServerSentEvent(data, id=str(i))`` per event and ``await send.send(...)``\\ s it (``/stream``);
``gen`` yields the same events from an async generator (``/stream-gen``, ``max_prefetch=16``).
The ASGI ``send`` returns at once (it only counts bodies and bytes) and ``receive`` waits for
ever, so what is timed is trio_sse's own work per event: build, send into the channel, take,
encode, batch. The figure is the median of *rounds* (events per second); ``--profile`` runs
one more round under cProfile and prints its top entries to stderr.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import anyio

from trio_sse import EventSourceResponse

from ._common import make_payload
from .app_trio_sse import _generate, _produce  # the benchmark app's own routes' code

__all__ = ["run_round"]

_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/stream",
    "raw_path": b"/stream",
    "query_string": b"",
    "root_path": "",
    "headers": [],
    "client": ("127.0.0.1", 1),
    "server": ("127.0.0.1", 2),
}


async def run_round(path: str, n: int, size: int = 32) -> dict[str, float]:
    """Stream *n* events through one response; its events per second, bodies and bytes."""
    data = make_payload(size)
    response = (
        EventSourceResponse(_produce, n, data)
        if path == "producer"
        else EventSourceResponse(_generate(n, data), max_prefetch=16)
    )
    counts = {"bodies": 0, "bytes": 0}
    never = anyio.Event()

    async def receive() -> dict[str, Any]:
        await never.wait()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            counts["bodies"] += 1
            counts["bytes"] += len(message.get("body", b""))

    start = time.perf_counter()
    await response(dict(_SCOPE), receive, send)
    elapsed = time.perf_counter() - start
    return {"events_per_s": n / elapsed, "bodies": counts["bodies"], "bytes": counts["bytes"]}


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    rates = []
    last: dict[str, float] = {}
    for _ in range(args.rounds):
        last = await run_round(args.path, args.events)
        rates.append(last["events_per_s"])
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        await run_round(args.path, args.events)
        profile.disable()
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    return {
        "backend": args.backend,
        "path": args.path,
        "events": args.events,
        "events_per_s": statistics.median(rates),
        "rounds": [round(r) for r in rates],
        "bodies_last_round": last.get("bodies"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--path", choices=("producer", "gen"), default="producer")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)
    result = anyio.run(_main, args, backend=args.backend)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
