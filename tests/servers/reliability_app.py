"""The app that tests/reliability/ serves from real server processes (issue #8).

Routes:

* ``GET /debug[?gc=1]``: the process's live task count (trio: every task under
  ``trio.lowlevel.current_root_task()``; asyncio: ``len(asyncio.all_tasks())``), open file
  descriptors (``/proc/self/fd``), RSS (``/proc/self/statm``), the producers started and
  finished, and the broadcast hub's counters, as JSON. ``gc=1`` runs a full collection first,
  so that whatever is unreachable is finalised (and warns, if it would) before counting.
* ``GET /events?size=&interval=&delay=``: a producer that waits ``delay`` seconds, then sends
  events of ``size`` bytes of data (ids 0, 1, ...) every ``interval`` seconds (0: as fast as the
  client reads) until the client leaves.
* ``GET /broadcast/{topic}?buffer=&ping=``: the topic of the in-memory hub, resuming from
  ``Last-Event-ID`` (or ``?lastEventId=``), with a subscriber buffer of ``buffer`` events.
* ``POST /publish/{topic}?count=&size=&interval=``: publish ``count`` events whose data is
  ``"<time.monotonic()> <n> <padding to size>"``, ``interval`` seconds apart; answers the ids.
* ``GET /limited/events``: a stream under ``StreamLimitMiddleware`` (``RELIABILITY_MAX_STREAMS``).
* ``GET /huge?mb=``: one event of ``mb`` MiB of data, then the end of the stream.
* ``GET /hostile``: events built from hostile user data (CR/LF/NUL, fake fields).
* ``GET /plain``: a plain-text answer, to check that the server still serves.

Every stream's producer is counted (started, finished) whatever ends it.
Environment: ``RELIABILITY_SEND_TIMEOUT`` (seconds; unset: none), ``RELIABILITY_RESPONSE_BUFFER``
(the responses' ``max_buffer_size``, default 256), ``RELIABILITY_HISTORY`` (hub history per
topic, default 64), ``RELIABILITY_MAX_STREAMS`` (default 3), ``RELIABILITY_GC_THRESHOLD``
(``gc.set_threshold`` arguments, comma-separated; unset: Python's defaults).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from trio_sse import Broadcaster, EventSourceResponse, ServerSentEvent, StreamLimitMiddleware

Send = MemoryObjectSendStream[Any]
Producer = Callable[[Send], Awaitable[None]]

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _env_float(name: str) -> float | None:
    value = os.environ.get(name)
    return float(value) if value else None


SEND_TIMEOUT = _env_float("RELIABILITY_SEND_TIMEOUT")
if os.environ.get("RELIABILITY_GC_THRESHOLD"):
    # e.g. "50000,20,100": for measuring a server tuned to hold many streams (see test_load).
    gc.set_threshold(*(int(part) for part in os.environ["RELIABILITY_GC_THRESHOLD"].split(",")))
RESPONSE_BUFFER = int(os.environ.get("RELIABILITY_RESPONSE_BUFFER", "256"))
HISTORY = int(os.environ.get("RELIABILITY_HISTORY", "64"))
MAX_STREAMS = int(os.environ.get("RELIABILITY_MAX_STREAMS", "3"))


class Counters:
    started = 0
    finished = 0


HUB: Broadcaster | None = None


def counted(producer: Producer) -> Producer:
    """Wrap *producer* so that its start and its end (however it ends) are counted."""

    async def run(send: Send) -> None:
        Counters.started += 1
        try:
            await producer(send)
        finally:
            Counters.finished += 1

    return run


def task_count() -> int:
    if "trio" in sys.modules and sys.modules["trio"].lowlevel.in_trio_run():
        import trio

        root = trio.lowlevel.current_root_task()
        assert root is not None
        count = 0
        stack = [root]
        while stack:
            task = stack.pop()
            count += 1
            for nursery in task.child_nurseries:
                stack.extend(nursery.child_tasks)
        return count
    return len(asyncio.all_tasks())


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as file:
        return int(file.read().split()[1]) * PAGE_SIZE


async def debug(request: Request) -> Response:
    if request.query_params.get("gc"):
        gc.collect()
        await anyio.lowlevel.checkpoint()  # let finalisers that scheduled callbacks run them
        gc.collect()
    hub_stats: dict[str, Any] = {}
    if HUB is not None:
        stats = HUB.stats()
        hub_stats = {
            "subscribers": stats.total_subscribers,
            "published": stats.published,
            "delivered": stats.delivered,
            "dropped": stats.dropped,
            "disconnected": stats.disconnected,
        }
    return JSONResponse(
        {
            "tasks": task_count(),
            "fds": len(os.listdir("/proc/self/fd")),
            "rss": rss_bytes(),
            "producers_started": Counters.started,
            "producers_finished": Counters.finished,
            "limit_active": LIMITED.limit.active,
            "limit_rejected": LIMITED.limit.rejected,
            "hub": hub_stats,
            "loop": "trio" if "trio" in sys.modules and _in_trio() else "asyncio",
        }
    )


def _in_trio() -> bool:
    return bool(sys.modules["trio"].lowlevel.in_trio_run())


def _number(request: Request, name: str, default: float) -> float:
    value = request.query_params.get(name)
    return float(value) if value else default


def _response(producer: Producer, *, ping: float = 15) -> EventSourceResponse:
    return EventSourceResponse(
        counted(producer), ping=ping, send_timeout=SEND_TIMEOUT, max_buffer_size=RESPONSE_BUFFER
    )


async def events(request: Request) -> Response:
    size = int(_number(request, "size", 64))
    interval = _number(request, "interval", 0.01)
    delay = _number(request, "delay", 0)
    padding = "x" * size

    async def producer(send: Send) -> None:
        async with send:
            if delay:
                await anyio.sleep(delay)
            number = 0
            while True:
                await send.send(ServerSentEvent(padding, id=number))
                number += 1
                if interval:
                    await anyio.sleep(interval)

    return _response(producer, ping=_number(request, "ping", 15))


async def broadcast(request: Request) -> Response:
    assert HUB is not None
    producer = HUB.stream(
        request.path_params["topic"], request, max_buffer_size=int(_number(request, "buffer", 256))
    )
    return _response(producer, ping=_number(request, "ping", 15))


async def publish(request: Request) -> Response:
    assert HUB is not None
    topic = request.path_params["topic"]
    count = int(_number(request, "count", 1))
    size = int(_number(request, "size", 0))
    interval = _number(request, "interval", 0)
    padding = "x" * size
    ids = []
    for number in range(count):
        ids.append(await HUB.publish(topic, f"{time.monotonic():.6f} {number} {padding}"))
        if interval:
            await anyio.sleep(interval)
    return JSONResponse(ids)


async def huge(request: Request) -> Response:
    size = int(_number(request, "mb", 4) * 1024 * 1024)

    async def producer(send: Send) -> None:
        async with send:
            # Lines of 1000 characters: several MB of data in one event, many data lines.
            line = "y" * 999 + "\n"
            data = (line * (size // len(line) + 1))[:size]
            await send.send(ServerSentEvent(data, id="huge", event="huge"))

    return _response(producer)


HOSTILE = [
    "x\n\nevent: evil\ndata: y",
    "a\r\nid: 666\r\n\r\nretry: 1",
    "nul\0inside\0",
    "\r\r\n\n",
    ": not a comment\ndata: nor this",
]


async def hostile(request: Request) -> Response:
    async def producer(send: Send) -> None:
        async with send:
            for number, data in enumerate(HOSTILE):
                await send.send(ServerSentEvent(data, id=number, event="user"))
                await send.send(ServerSentEvent(comment=data))

    return _response(producer)


async def plain(request: Request) -> Response:
    return PlainTextResponse("ok")


async def limited_events(request: Request) -> Response:
    async def producer(send: Send) -> None:
        async with send:
            await send.send(ServerSentEvent("admitted"))
            await anyio.sleep_forever()

    return _response(producer, ping=_number(request, "ping", 15))


LIMITED = StreamLimitMiddleware(
    Starlette(routes=[Route("/events", limited_events)]), max_streams=MAX_STREAMS, retry_after=2
)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global HUB
    async with Broadcaster(history=HISTORY) as hub:
        HUB = hub
        try:
            yield
        finally:
            HUB = None


app = Starlette(
    routes=[
        Route("/debug", debug),
        Route("/events", events),
        Route("/broadcast/{topic}", broadcast),
        Route("/publish/{topic}", publish, methods=["POST"]),
        Route("/huge", huge),
        Route("/hostile", hostile),
        Route("/plain", plain),
        Mount("/limited", app=LIMITED),
    ],
    lifespan=lifespan,
)
