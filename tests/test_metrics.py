"""``trio_sse.metrics``: the OpenTelemetry instruments, read from the SDK's in-memory reader."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectSendStream

pytest.importorskip("opentelemetry.sdk.metrics", reason="needs opentelemetry-sdk (test extra)")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from trio_sse import Broadcaster, ServerSentEvent, ShutdownToken
from trio_sse.metrics import SEND_DURATION_BUCKETS, OpenTelemetryHooks
from trio_sse.testing import open_event_stream

from .helpers import sse_app

pytestmark = pytest.mark.anyio

Sender = MemoryObjectSendStream[Any]
Points = dict[str, list[tuple[dict[str, Any], Any]]]


def collected(reader: InMemoryMetricReader) -> Points:
    """name -> [(attributes, value or histogram point)] of what the reader holds now."""
    data = reader.get_metrics_data()
    points: Points = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "trio_sse"
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", point)
                    points.setdefault(metric.name, []).append((dict(point.attributes or {}), value))
    return points


async def test_a_stream_records_its_events_bytes_and_close_reason() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    hooks = OpenTelemetryHooks(provider)
    token = ShutdownToken()

    async def producer(send: Sender) -> None:
        async with send:
            for number in range(4):
                await send.send(str(number))
            await token.wait()

    app = sse_app(lambda: producer, ping=0, shutdown=token, hooks=hooks)
    try:
        with anyio.fail_after(5):
            async with open_event_stream(app) as stream:
                await stream.read_events(4)
                during = collected(reader)
                token.trigger()
                assert [event async for event in stream] == []
        after = collected(reader)
    finally:
        provider.shutdown()
    route = {"route": "/"}
    assert during["trio_sse.streams.active"] == [(route, 1)]
    assert after["trio_sse.streams.active"] == [(route, 0)]
    assert after["trio_sse.streams.closed"] == [({"route": "/", "reason": "shutdown"}, 1)]
    assert after["trio_sse.events.sent"] == [(route, 4)]
    size = sum(len(ServerSentEvent(str(n)).encode()) for n in range(4))
    assert after["trio_sse.bytes.sent"] == [(route, size)]
    [(attributes, histogram)] = after["trio_sse.send.duration"]
    assert attributes == route
    assert 1 <= histogram.count <= 4  # one per body message, not per event
    assert tuple(histogram.explicit_bounds) == SEND_DURATION_BUCKETS


async def test_a_hub_s_counters_are_read_when_collected() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    hooks = OpenTelemetryHooks(provider)
    try:
        async with Broadcaster() as hub:
            hooks.observe(hub, name="chat")
            hooks.observe(hub, name="chat")  # the same name: replaced, not counted twice
            with anyio.fail_after(5):
                async with hub.subscribe("room", max_buffer_size=1, on_overflow="drop_oldest"):
                    for number in range(3):
                        await hub.publish("room", str(number))
                    points = collected(reader)
    finally:
        provider.shutdown()
    chat = {"hub": "chat"}
    assert points["trio_sse.hub.published"] == [(chat, 3)]
    assert points["trio_sse.hub.delivered"] == [(chat, 3)]
    assert points["trio_sse.hub.dropped"] == [(chat, 2)]
    assert points["trio_sse.hub.disconnected"] == [(chat, 0)]
    assert points["trio_sse.hub.revoked"] == [(chat, 0)]
    assert points["trio_sse.hub.subscribers"] == [(chat, 1)]


def test_without_a_provider_the_global_one_is_used() -> None:
    hooks = OpenTelemetryHooks()  # the API's default: a no-op until an SDK is installed
    assert hooks._meter is not None
