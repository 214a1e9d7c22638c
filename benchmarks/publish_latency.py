"""``python -m benchmarks.publish_latency``: how long ``await hub.publish(...)`` takes (issue 18).

In one process, no sockets: a memory :class:`~trio_sse.Broadcaster`, ``--subscribers`` counts
of subscribers to one topic (default 0, 1,000 and 10,000), each draining its channel in its
own task, on trio and on asyncio (``--backends``). Each count runs in a fresh event loop:
``--events`` publishes of a 32-byte event after a warm-up, one at a time, each once every
subscriber has drained the previous one and parked (``wait_all_tasks_blocked``), so every
publish finds the same state. For each publish it records:

* ``publish``: from the call to its return, what the publisher waits;
* ``fan_out``: the part until the backend's delivery returned (every subscriber offered the
  event: the cost of queueing it, plus the checkpoint that ``publish`` takes first, cheap
  here since every task is parked);
* ``after``: the rest. Since 2026-12-07 the memory backend takes no scheduling pass after
  delivering, so this is next to nothing; before, it was that pass, during which the loop
  ran the tasks that were ready: the subscribers just woken;
* ``delivered``: from the call until the last subscriber took the event from its channel,
  wherever that happens (inside ``publish``, or at the publisher's next checkpoint, here the
  ``wait_all_tasks_blocked`` that follows each publish): the event's latency to every
  subscriber, which a pass inside ``publish`` does not shorten, only moves.

and reports p50, p99 and max of each (µs) and the µs per subscriber of the p50s, beside the
count with no subscriber. Prints one JSON object; ``--output`` also writes the Markdown
tables. (The fan-out is timed by wrapping the memory backend's delivery callback: a private
attribute, read only here.)
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from typing import Any

import anyio
import anyio.abc

from trio_sse import Broadcaster, ServerSentEvent
from trio_sse.backends import MemoryBackend

__all__ = ["main", "measure", "render", "summarise"]

TOPIC = "latency"
PARTS = ("publish", "fan_out", "after", "delivered")


class _Tally:
    """Events taken by all subscribers, and when the take that reached ``goal`` happened."""

    __slots__ = ("count", "goal", "last", "subscribers")

    def __init__(self) -> None:
        self.count = self.goal = self.subscribers = 0
        self.last = 0.0


async def _subscriber(
    hub: Broadcaster, tally: _Tally, task_status: anyio.abc.TaskStatus[None]
) -> None:
    """One subscriber: enters, says so, and drains its channel (counting into *tally*)
    until cancelled."""
    async with hub.subscribe(TOPIC, max_buffer_size=64) as events:
        task_status.started()
        async for _ in events:
            tally.count += 1
            if tally.count == tally.goal:
                tally.last = time.perf_counter()


def _time_fan_out(backend: MemoryBackend, marks: list[float]) -> None:
    """Record, in *marks*, when each delivery by *backend* returned (see the docstring)."""
    deliver = backend._deliver
    assert deliver is not None

    async def timed(topic: str, entry: Any) -> None:
        await deliver(topic, entry)
        marks.append(time.perf_counter())

    backend._deliver = timed


async def _publish_all(
    hub: Broadcaster, events: int, marks: list[float], tally: _Tally
) -> list[list[float]]:
    """Publish *events* events one at a time; the µs of each part (``PARTS``) of each."""
    event = ServerSentEvent("x" * 32)
    timings: list[list[float]] = []
    await anyio.wait_all_tasks_blocked()
    for _ in range(events):
        marks.clear()
        tally.goal = tally.count + tally.subscribers
        start = time.perf_counter()
        await hub.publish(TOPIC, event)
        end = time.perf_counter()
        await anyio.wait_all_tasks_blocked()  # every subscriber took it, and parked again
        fanned = marks[0] if marks else end
        taken = tally.last if tally.subscribers else end
        timings.append([(end - start) * 1e6, (fanned - start) * 1e6, (end - fanned) * 1e6])
        timings[-1].append((taken - start) * 1e6)
    return timings


async def _run(subscribers: int, events: int, warmup: int) -> tuple[list[list[float]], int]:
    """The timings of *events* publishes, and how many events the subscribers received."""
    backend = MemoryBackend()
    marks: list[float] = []
    tally = _Tally()
    tally.subscribers = subscribers
    async with Broadcaster(backend, history=100) as hub, anyio.create_task_group() as group:
        _time_fan_out(backend, marks)
        for _ in range(subscribers):
            await group.start(_subscriber, hub, tally)
        await _publish_all(hub, warmup, marks, tally)
        timings = await _publish_all(hub, events, marks, tally)
        group.cancel_scope.cancel()
    return timings, tally.count


def measure(
    backend: str, subscribers: int, events: int, warmup: int = 20, *, collect: bool = True
) -> dict[str, Any]:
    """One count on one loop, in a fresh ``anyio.run``: the percentiles of each part (µs).

    *collect* ``False``: with the garbage collector disabled (a diagnostic: how much of the
    time is the collector's, whose full passes grow with the subscribers' live objects)."""
    gc.collect()
    if not collect:
        gc.disable()
    try:
        timings, received = anyio.run(_run, subscribers, events, warmup, backend=backend)
    finally:
        gc.enable()
    row = {
        "backend": backend,
        "subscribers": subscribers,
        "events": events,
        "gc": collect,
        "received": received,  # by all subscribers, the warm-up's included
    }
    return {**row, **summarise(timings)}


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summarise(timings: list[list[float]]) -> dict[str, dict[str, float]]:
    """p50, p99 and max (µs) of each part (``PARTS``) of *timings* (one row per publish)."""
    summary: dict[str, dict[str, float]] = {}
    for column, part in enumerate(PARTS):
        values = [row[column] for row in timings]
        summary[part] = {
            "p50": statistics.median(values),
            "p99": _percentile(values, 0.99),
            "max": max(values),
        }
    return summary


def render(results: list[dict[str, Any]]) -> str:
    """The Markdown table of *results* (``measure``'s), with µs per subscriber of the p50s."""
    lines = [
        "| loop | GC | subscribers | publish p50 µs | p99 | max | fan-out p50 µs | p99 | "
        "pass after p50 µs | p99 | delivered p50 µs | p99 | "
        "µs per subscriber (publish p50; fan-out p50) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    base: dict[str, dict[str, Any]] = {}
    for row in results:
        key = f"{row['backend']} {row['gc']}"
        base.setdefault(key, row)
        zero, count = base[key], row["subscribers"]
        per = "—"
        if count and not zero["subscribers"]:
            pub = (row["publish"]["p50"] - zero["publish"]["p50"]) / count
            fan = (row["fan_out"]["p50"] - zero["fan_out"]["p50"]) / count
            per = f"{pub:.2f}; {fan:.2f}"
        p, f, a, d = row["publish"], row["fan_out"], row["after"], row["delivered"]
        lines.append(
            f"| {row['backend']} | {'on' if row['gc'] else 'off'} | {count:,} | {p['p50']:,.1f} | {p['p99']:,.1f} | "
            f"{p['max']:,.1f} | {f['p50']:,.1f} | {f['p99']:,.1f} | {a['p50']:,.1f} | "
            f"{a['p99']:,.1f} | {d['p50']:,.1f} | {d['p99']:,.1f} | {per} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.publish_latency")
    parser.add_argument("--backends", nargs="+", default=["trio", "asyncio"])
    parser.add_argument("--subscribers", nargs="+", type=int, default=[0, 1000, 10_000])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--output", help="also write the Markdown table here")
    parser.add_argument(
        "--no-gc", action="store_true", help="also measure with the collector disabled"
    )
    args = parser.parse_args(argv)
    results = [
        measure(backend, count, args.events, args.warmup, collect=collect)
        for collect in ((True, False) if args.no_gc else (True,))
        for backend in args.backends
        for count in args.subscribers
    ]
    json.dump({"results": results}, sys.stdout, indent=1)
    sys.stdout.write("\n")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(render(results))


if __name__ == "__main__":
    main()
