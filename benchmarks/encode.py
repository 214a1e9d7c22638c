"""Encoder microbenchmark: events built and encoded per second, trio_sse vs sse-starlette.

``python -m benchmarks.encode [--quick]`` prints one JSON object; ``python -m benchmarks
--scenarios encode`` runs it (in its own process) and puts it in the report.

What is timed is what a stream does per event: build the event object, then encode it
(``ServerSentEvent(...).encode()`` in both libraries), for three typical events:

* ``small``: 32 bytes of data and an id;
* ``multiline``: five lines of data, an event type and an id;
* ``json``: a small dict, through each library's ``JSONServerSentEvent``, with an id.

The two libraries alternate (ABAB...), each round timing a loop of ``n`` events; the figure
is the median round. trio_sse caches an event's encoding, so encoding *the same object*
again (the fan-out path) is also shown, for trio_sse only: sse-starlette has no cache.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["CASES", "run"]

_DATA = "abcdefghijklmnopqrstuvwxyz012345"
_LINES = "first line of text\nsecond line\nthird line, a bit longer\nfourth\nfifth and last"
_OBJECT = {"user": "ada", "action": "update", "values": [1, 2, 3], "ok": True, "ratio": 0.25}

CASES = ("small", "multiline", "json")


def _factories(lib: str) -> dict[str, Callable[[int], bytes]]:
    if lib == "trio_sse":
        from trio_sse import JSONServerSentEvent, ServerSentEvent
    else:
        from sse_starlette import JSONServerSentEvent, ServerSentEvent  # type: ignore[assignment]

    def small(i: int) -> bytes:
        return ServerSentEvent(_DATA, id=str(i)).encode()

    def multiline(i: int) -> bytes:
        return ServerSentEvent(_LINES, event="update", id=str(i)).encode()

    def json_event(i: int) -> bytes:
        return JSONServerSentEvent(_OBJECT, id=str(i)).encode()

    return {"small": small, "multiline": multiline, "json": json_event}


def _time_loop(function: Callable[[int], bytes], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        function(i)
    return n / (time.perf_counter() - start)


def _cached_loop(n: int) -> float:
    from trio_sse import ServerSentEvent

    event = ServerSentEvent(_DATA, id="1")
    encode = event.encode
    start = time.perf_counter()
    for _ in range(n):
        encode()
    return n / (time.perf_counter() - start)


def run(*, quick: bool = False) -> dict[str, Any]:
    """Events per second for each case and library: medians of the rounds."""
    # Many short rounds, the libraries alternating: a burst of load from elsewhere on the
    # machine spoils a round or two of each, and the median ignores them.
    n = 10_000 if quick else 20_000
    rounds = 5 if quick else 15
    libraries = {lib: _factories(lib) for lib in ("trio_sse", "sse-starlette")}
    for lib in libraries:  # same output, checked before anything is timed
        for case in CASES:
            libraries[lib][case](1)
    samples: dict[str, dict[str, list[float]]] = {
        case: {lib: [] for lib in libraries} for case in CASES
    }
    gc.collect()
    for _ in range(rounds):
        for case in CASES:
            for lib, factories in libraries.items():
                samples[case][lib].append(_time_loop(factories[case], n))
    cached = [_cached_loop(n) for _ in range(rounds)]
    result: dict[str, Any] = {"n": n, "rounds": rounds, "cases": {}}
    for case in CASES:
        result["cases"][case] = {
            lib: statistics.median(values) for lib, values in samples[case].items()
        }
    result["cached_encode_trio_sse"] = statistics.median(cached)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.encode", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    json.dump(run(quick=args.quick), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
