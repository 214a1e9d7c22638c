"""examples/metrics_prometheus.py on a real uvicorn: what Prometheus would scrape (issue 17)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from trio_sse import EventDecoder

from .processes import REPO, free_port, server_process

pytest.importorskip("opentelemetry.exporter.prometheus", reason="needs the test extra")


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of *name* whose labels include *labels*, if any."""
    for match in re.finditer(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", text, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(match.group(2))
    return None


def scrape_until(client: httpx.Client, base: str, name: str, value: float, **labels: str) -> str:
    """Scrape ``/metrics`` until *name* with *labels* is *value* (10 s at most); the text."""
    deadline = time.monotonic() + 10
    while True:
        text = client.get(f"{base}/metrics").text
        if sample(text, name, **labels) == value or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_the_prometheus_example_serves_the_streams_and_hub_metrics(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = ["python", str(REPO / "examples" / "metrics_prometheus.py")]
    with (
        server_process(command, port, tmp_path / "metrics.log", env={"PORT": str(port)}),
        httpx.Client(timeout=10) as client,
    ):
        ticks = client.get(f"{base}/ticks?count=3").text
        assert ticks.count("data: tick") == 3
        text = scrape_until(client, base, "trio_sse_streams_closed_total", 1.0, route="/ticks")
        assert sample(text, "trio_sse_events_sent_total", route="/ticks") == 3.0
        assert sample(text, "trio_sse_bytes_sent_bytes_total", route="/ticks") == len(ticks)
        assert sample(text, "trio_sse_send_duration_seconds_count", route="/ticks") == 3.0
        assert sample(text, "trio_sse_streams_closed_total", reason="completed") == 1.0

        decoder = EventDecoder()
        with client.stream("GET", f"{base}/news") as news:
            client.post(f"{base}/news", content=b"hello")
            chunks = news.iter_raw()
            events = decoder.feed(next(chunks))
            while not events:
                events = decoder.feed(next(chunks))
            assert [event.data for event in events] == ["hello"]
            text = scrape_until(client, base, "trio_sse_streams_active", 1.0, route="/news")
            assert sample(text, "trio_sse_hub_subscribers", hub="news") == 1.0
            assert sample(text, "trio_sse_hub_delivered_total", hub="news") == 1.0
        # The client left: uvicorn tells the stream, which ends for that reason.
        text = scrape_until(
            client, base, "trio_sse_streams_closed_total", 1.0, reason="client_disconnect"
        )
        assert sample(text, "trio_sse_streams_active", route="/news") == 0.0
        assert sample(text, "trio_sse_hub_published_total", hub="news") == 1.0
