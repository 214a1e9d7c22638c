"""``benchmarks.publish_latency`` measures real publishes (never how fast they are)."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
from benchmarks import publish_latency


@pytest.fixture(params=["trio", "asyncio"])
def loop(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "trio":
        pytest.importorskip("trio")
    return name


def test_every_subscriber_receives_every_published_event(loop: str) -> None:
    row = publish_latency.measure(loop, 7, events=4, warmup=2)
    assert row["received"] == 7 * (4 + 2)
    assert (row["backend"], row["subscribers"], row["events"], row["gc"]) == (loop, 7, 4, True)
    for part in publish_latency.PARTS:
        figures = row[part]
        assert 0 <= figures["p50"] <= figures["p99"] <= figures["max"]
    # The publisher's wait is its fan-out plus the pass after it, publish by publish; the
    # last subscriber takes the event after it was queued.
    assert row["publish"]["max"] >= row["fan_out"]["p50"]
    assert row["delivered"]["max"] >= row["fan_out"]["p50"]


def test_no_subscriber_no_delivery_and_the_collector_comes_back(loop: str) -> None:
    row = publish_latency.measure(loop, 0, events=3, warmup=0, collect=False)
    assert row["received"] == 0 and row["gc"] is False
    assert gc.isenabled()


def test_summarise_takes_percentiles_per_part() -> None:
    timings = [[float(n), float(n) / 2, float(n) / 2, float(n) * 2] for n in range(1, 101)]
    summary = publish_latency.summarise(timings)
    assert summary["publish"] == {"p50": 50.5, "p99": 99.0, "max": 100.0}
    assert summary["fan_out"]["max"] == 50.0
    assert summary["delivered"]["p99"] == 198.0


def test_main_prints_json_and_writes_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "table.md"
    publish_latency.main(
        ["--backends", "asyncio", "--subscribers", "0", "5", "--events", "3", "--warmup", "1",
         "--no-gc", "--output", str(out)]
    )  # fmt: skip
    results = json.loads(capsys.readouterr().out)["results"]
    assert [(r["subscribers"], r["gc"]) for r in results] == [
        (0, True),
        (5, True),
        (0, False),
        (5, False),
    ]
    assert [r["received"] for r in results] == [0, 20, 0, 20]
    table = out.read_text().splitlines()
    assert len(table) == 2 + 4
    assert table[3].startswith("| asyncio | on | 5 |") and table[3].count("; ") == 1
    assert table[2].endswith("| — |")
