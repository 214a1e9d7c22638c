"""What the three benchmark apps share: the routes, their parameters and the event payloads.

Every app (trio_sse, sse-starlette, raw ASGI) serves the same routes with the same meaning,
so that one client drives them all:

* ``GET /stream?n=N&size=S``: ``n`` events of ``S`` bytes of data, each with an id, as fast as
  the producer can make them, then the end of the body (throughput);
* ``GET /subscribe?topic=T``: a subscription to a broadcast topic; idle until something is
  published (fan-out, idle memory);
* ``GET /publish?topic=T&n=N&rate=R&seq=K``: publish ``n`` events at ``R`` per second (``0``:
  back to back) numbered from ``K``; each event's data is ``"<seq> <time.monotonic_ns()>"``
  taken just before it is published, so that the client can measure delivery latency
  (``CLOCK_MONOTONIC`` is one clock for every process on the machine); answers the number of
  subscribers the last event went to;
* ``GET /endless?interval=S``: an event every ``S`` seconds until the server shuts down
  (shutdown);
* ``GET /stats``: ``{"impl": ...}``, which fan-out implementation the app uses.

Standard library only: the apps import their own SSE library, this module imports none.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import parse_qsl

__all__ = [
    "DEFAULT_TOPIC",
    "ENDLESS_INTERVAL",
    "SHUTDOWN_GRACE",
    "SUBSCRIBER_BUFFER",
    "float_arg",
    "int_arg",
    "make_payload",
    "publish_data",
    "publish_schedule",
    "query",
]

DEFAULT_TOPIC = "bench"

#: Events a subscriber may have waiting before the publisher gives up on it (every app).
SUBSCRIBER_BUFFER = 256

#: Seconds between the events of ``/endless``.
ENDLESS_INTERVAL = 0.5

#: The per-response grace period the shutdown scenario gives trio_sse and sse-starlette.
SHUTDOWN_GRACE = 1.0

_ALPHABET = "abcdefghijklmnopqrstuvwxyz012345"


def make_payload(size: int) -> str:
    """``size`` characters of ASCII data (no line breaks)."""
    return (_ALPHABET * (size // len(_ALPHABET) + 1))[:size]


def query(scope: Mapping[str, Any]) -> dict[str, str]:
    """The query string of an ASGI scope as a dict (last value wins)."""
    raw: bytes = scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1")))


def int_arg(params: Mapping[str, str], name: str, default: int) -> int:
    return int(params.get(name, default))


def float_arg(params: Mapping[str, str], name: str, default: float) -> float:
    return float(params.get(name, default))


def publish_data(seq: int) -> str:
    """The data of published event ``seq``: its number and the publishing instant."""
    return f"{seq} {time.monotonic_ns()}"


def publish_schedule(n: int, rate: float) -> list[float]:
    """Offsets (seconds from the start) at which the ``n`` events of a publish run are due."""
    if rate <= 0:
        return [0.0] * n
    return [i / rate for i in range(n)]


async def paced_sequence(params: Mapping[str, str]) -> AsyncIterator[int]:
    """The sequence numbers a ``/publish`` request asks for (``n``, ``seq``), each yielded at the
    time its ``rate`` schedules it: the pacing every app's publish route shares."""
    import anyio

    first = int_arg(params, "seq", 0)
    start = anyio.current_time()
    for index, offset in enumerate(
        publish_schedule(int_arg(params, "n", 1), float_arg(params, "rate", 0))
    ):
        delay = start + offset - anyio.current_time()
        if delay > 0:
            await anyio.sleep(delay)
        yield first + index
