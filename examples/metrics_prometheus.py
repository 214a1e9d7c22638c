"""Prometheus metrics of every event stream and of a broadcaster, served at /metrics.

``trio_sse.metrics.OpenTelemetryHooks`` records each stream (open streams, events, bytes,
send times, why streams ended) and the hub's counters into OpenTelemetry's SDK; the SDK's
Prometheus reader (opentelemetry-exporter-prometheus) hands them to prometheus_client's
registry, which the same app serves. A subclass's ``DEFAULT_HOOKS`` observes all its
streams without passing ``hooks=`` to each.

Run:   python examples/metrics_prometheus.py          (PORT=8000; uvicorn)
Try:   curl -N 'http://127.0.0.1:8000/ticks?count=5'
       curl -N http://127.0.0.1:8000/news   and   curl -X POST -d hello http://127.0.0.1:8000/news
       curl http://127.0.0.1:8000/metrics | grep trio_sse
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import uvicorn
from anyio.streams.memory import MemoryObjectSendStream
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from trio_sse import Broadcaster, EventSourceResponse
from trio_sse.metrics import OpenTelemetryHooks

metrics = OpenTelemetryHooks(MeterProvider(metric_readers=[PrometheusMetricReader()]))


class ObservedResponse(EventSourceResponse):
    DEFAULT_HOOKS = metrics  # every stream of this class is measured


async def ticks(request: Request) -> ObservedResponse:
    count = int(request.query_params.get("count", "10"))

    async def producer(send: MemoryObjectSendStream[str]) -> None:
        async with send:
            for number in range(count):
                await send.send(f"tick {number}")
                await anyio.sleep(0.01)

    return ObservedResponse(producer)


async def news(request: Request) -> ObservedResponse | PlainTextResponse:
    hub: Broadcaster = request.app.state.hub
    if request.method == "POST":
        event_id = await hub.publish("news", (await request.body()).decode())
        return PlainTextResponse(event_id)
    return ObservedResponse(hub.stream("news", request))  # resumes from Last-Event-ID


async def scrape(request: Request) -> Response:
    """What Prometheus scrapes: prometheus_client's registry, which the reader fills."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with Broadcaster() as hub:
        metrics.observe(hub, name="news")
        app.state.hub = hub
        yield


app = Starlette(
    routes=[
        Route("/ticks", ticks),
        Route("/news", news, methods=["GET", "POST"]),
        Route("/metrics", scrape),
    ],
    lifespan=lifespan,
)

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_level="warning"
    )
