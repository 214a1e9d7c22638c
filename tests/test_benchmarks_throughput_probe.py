"""``benchmarks.throughput_probe`` streams real events in process; ``throughput_compare``'s
summary takes per-round ratios (never how fast anything is)."""

from __future__ import annotations

import anyio
import pytest
from benchmarks import throughput_compare, throughput_probe

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("path", ["producer", "gen"])
async def test_a_round_streams_every_event(path: str) -> None:
    with anyio.fail_after(20):
        row = await throughput_probe.run_round(path, 500, size=10)
    # One event: "id: N\r\n" + "data: " + 10 characters + "\r\n\r\n"; then the empty end.
    assert row["bytes"] == sum(len(f"id: {i}\r\ndata: ") + 14 for i in range(500))
    assert row["bodies"] >= 2  # at least one body of events, and the last empty one
    assert row["events_per_s"] > 0


def test_the_summary_takes_medians_of_per_round_ratios() -> None:
    rates = {
        "before": [100.0, 200.0, 300.0],
        "after": [150.0, 260.0, 300.0],
        "better-sse": [100.0, 100.0, 100.0],
    }
    summary = throughput_compare._summary(rates)
    assert summary["median_rate"] == {"before": 200, "after": 260, "better-sse": 100}
    # after/before per round: 1.5, 1.3, 1.0 -> 1.3 (not 260 / 200 from the medians, also 1.3)
    assert summary["ratios"]["after/before"] == 1.3
    assert summary["ratios"]["after/better-sse"] == 2.6
    assert "after-gen/after" not in summary["ratios"]  # no gen rows in this run
