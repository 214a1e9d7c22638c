"""Issue 18's verdicts (``benchmarks._targets``) on synthetic results, and the producer-path
route the idle scenarios measure (never how fast anything is)."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio
import pytest
from benchmarks import _node, _runner, _targets, app_trio_sse
from benchmarks._report import render
from benchmarks._runner import Results

from trio_sse.testing import open_event_stream

from .test_benchmarks_smoke import get, lifespan

Rounds = list[dict[str, Any]]


def rounds(key: str, *values: float) -> Rounds:
    return [{key: value} for value in values]


def by_title(rows: list[_targets.TargetRow], start: str, server: str) -> _targets.TargetRow:
    (row,) = [r for r in rows if r.target.startswith(start) and r.server == server]
    return row


def fanout_results() -> dict[str, Any]:
    """Fan-out on uvicorn only: trio_sse 1.0x, 1.5x, 1.1x of the floor's p99 round by round."""
    table = {
        "trio_sse": rounds("p99_ms", 10, 30, 22),
        "raw": rounds("p99_ms", 10, 20, 20),
        "better-sse": rounds("p99_ms", 10, 10, 10),
    }
    return {"fanout": {"uvicorn": table}}


def test_the_ratio_is_the_median_of_per_round_ratios() -> None:
    rows = _targets.target_rows(fanout_results())
    row = by_title(rows, "fan-out p99 (hub) ≤ 1.2x raw floor", "uvicorn")
    # medians of the figures would give 22 ÷ 20 = 1.10x; the rounds' ratios 1.0, 1.5, 1.1
    assert row.ratio == "1.10x" and row.ratio_value == pytest.approx(1.1)
    assert row.verdict == "met"
    assert row.trio_sse == "22.0 ms"
    assert row.references == "raw floor 20.0 ms; better-sse push 10.0 ms"
    worse = by_title(rows, "fan-out p99 (hub) ≤ better-sse push", "uvicorn")
    assert (worse.ratio, worse.verdict) == ("2.20x", "not met")


def test_servers_and_references_not_run_have_no_verdict() -> None:
    results = fanout_results()
    del results["fanout"]["uvicorn"]["better-sse"]  # as with --no-node
    rows = _targets.target_rows(results)
    for server in ("hypercorn-asyncio", "hypercorn-trio"):  # not selected
        row = by_title(rows, "fan-out p99 (hub) ≤ 1.2x raw floor", server)
        assert (row.trio_sse, row.ratio, row.verdict) == ("not run", "", "not run")
    row = by_title(rows, "fan-out p99 (hub) ≤ better-sse push", "uvicorn")
    assert (row.trio_sse, row.verdict, row.ratio_value) == ("22.0 ms", "not run", None)
    assert row.references == "better-sse push not run; raw floor 20.0 ms"
    # Scenarios that were not run at all: every one of their rows, the publish rows too.
    assert all(r.verdict == "not run" for r in rows if not r.target.startswith("fan-out"))


def test_rounds_that_failed_give_no_figure_not_a_verdict() -> None:
    table = {"trio_sse": [{"error": "boom"}], "raw": rounds("server_us_per_event", 20)}
    rows = _targets.target_rows({"fanout": {"hypercorn-trio": table}})
    row = by_title(rows, "fan-out server CPU per event (hub) ≤ 1.1x", "hypercorn-trio")
    assert (row.trio_sse, row.verdict) == ("n/a", "no figure")


def idle_rows(ours: float, better_sse: float, alive: int = 10_000) -> list[_targets.TargetRow]:
    def run(value: float, held: int = 10_000) -> Rounds:
        return [{"bytes_per_connection": value * 1024, "connections": 10_000, "alive": held}]

    table = {
        "trio_sse": run(ours, alive),
        "trio_sse-producer": run(ours * 2),
        "raw": run(20.0),
        "better-sse": run(better_sse),
    }
    return _targets.target_rows({"idle10k": {"hypercorn-trio": table}})


def test_idle_at_10000_streams_hub_and_producer_paths() -> None:
    rows = idle_rows(30.0, 40.0)
    hub = by_title(rows, "idle memory per stream, 10,000 streams (hub) ≤ 1.5x", "hypercorn-trio")
    assert (hub.trio_sse, hub.ratio, hub.verdict) == ("30.0 KiB", "1.50x", "met")  # at the limit
    producer = by_title(
        rows, "idle memory per stream, 10,000 streams (producer path) ≤", "hypercorn-trio"
    )
    assert (producer.ratio, producer.verdict) == ("3.00x", "not met")
    below = by_title(
        rows, "idle memory per stream, 10,000 streams (hub) < better", "hypercorn-trio"
    )
    assert below.verdict == "met"
    # "below better-sse's" is strict: level is not below
    level = idle_rows(40.0, 40.0)
    assert by_title(
        level, "idle memory per stream, 10,000 streams (hub) <", "hypercorn-trio"
    ).verdict == ("not met")


def test_idle_streams_that_were_not_held_fail_the_target() -> None:
    rows = idle_rows(21.0, 40.0, alive=9_990)
    for start in (
        "idle memory per stream, 10,000 streams (hub) ≤",
        "idle memory per stream, 10,000 streams (hub) <",
    ):
        assert by_title(rows, start, "hypercorn-trio").verdict == "not met"


def test_throughput_targets_on_uvicorn_and_the_generator_on_every_server() -> None:
    table = {
        "trio_sse": rounds("rate", 600_000),
        "trio_sse-gen": rounds("rate", 530_000),
        "better-sse": rounds("rate", 650_000),
        "node-raw": rounds("rate", 700_000),
    }
    rows = _targets.target_rows({"throughput": {"uvicorn": table, "hypercorn-trio": table}})
    titles = [(r.target, r.server) for r in rows if r.target.startswith("throughput")]
    assert (
        titles.count(
            ("throughput, a ServerSentEvent per event (producer fn) ≥ better-sse push", "uvicorn")
        )
        == 1
    )
    assert not any(server == "hypercorn-trio" and "better-sse" in t for t, server in titles)
    push = by_title(
        rows, "throughput, a ServerSentEvent per event (producer fn) ≥ better", "uvicorn"
    )
    assert (push.ratio, push.verdict) == ("0.92x", "not met")
    node = by_title(
        rows, "throughput, a ServerSentEvent per event (producer fn) ≥ 0.85x", "uvicorn"
    )
    assert (node.ratio, node.verdict) == ("0.86x", "met")
    gen = by_title(rows, "throughput, a ServerSentEvent per event (async gen)", "hypercorn-trio")
    assert (gen.ratio, gen.target_ratio, gen.verdict) == ("0.88x", "≥ 0.9x", "not met")
    assert gen.trio_sse == "530,000 ev/s"


def publish_run(publish_p50: float, fan_out_p50: float) -> dict[str, Any]:
    def part(p50: float) -> dict[str, float]:
        return {"p50": p50, "p99": 2 * p50, "max": 3 * p50}

    return {"publish": part(publish_p50), "fan_out": part(fan_out_p50), "after": part(1.0)}


def test_publish_is_met_within_1_2x_of_the_fan_out() -> None:
    publish = {
        "trio": {
            "1000": [publish_run(1100, 1000), publish_run(1300, 1000), publish_run(1150, 1000)]
        },
        "asyncio": {"1000": [publish_run(4000, 1000)], "10000": [publish_run(5000, 0)]},
    }
    rows = _targets.target_rows({"publish": publish})
    trio = by_title(rows, "publish with 1,000 subscribers", "in process, trio")
    assert (trio.ratio, trio.verdict) == ("1.15x", "met")
    assert trio.trio_sse == "1.15 / 2.30 ms" and trio.references == "fan-out 1.00 / 2.00 ms"
    slow = by_title(rows, "publish with 1,000 subscribers", "in process, asyncio")
    assert (slow.ratio, slow.verdict) == ("4.00x", "not met")
    assert by_title(rows, "publish with 10,000", "in process, asyncio").verdict == "no figure"
    assert by_title(rows, "publish with 10,000", "in process, trio").verdict == "not run"


def test_the_report_opens_with_the_targets_and_the_json_keeps_them() -> None:
    settings = asdict(_runner.Settings.make(True, None, _targets.SERVERS))
    results = Results(settings=settings, **fanout_results())
    report = render(results)
    assert report.index("## Targets (issue 18)") < report.index("## Fan-out")
    assert "Met: 1 of 2 judged" in report  # p99 vs raw (met) and vs better-sse; CPU: no figure
    assert "| fan-out p99 (hub) ≤ better-sse push | uvicorn | 22.0 ms |" in report
    assert "**not met**" in report
    assert [row.verdict for row in _targets.target_rows(results)][:2] == ["met", "not run"]


def test_quick_runs_leave_out_idle10k_unless_named() -> None:
    assert "idle10k" in _runner.SCENARIOS and _runner.MAIN_SERVERS == _targets.SERVERS
    assert "idle10k" not in _runner.choose_scenarios(None, quick=True)
    assert "idle10k" in _runner.choose_scenarios(None, quick=False)
    assert _runner.choose_scenarios(["idle10k"], quick=True) == ("idle10k",)


@pytest.mark.anyio
@pytest.mark.parametrize("fan_out", ["broadcaster", "local"])
async def test_the_producer_path_route_forwards_published_events(
    fan_out: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if fan_out == "local":
        monkeypatch.setenv("TRIO_SSE_BENCH_FANOUT", "local")
    app = app_trio_sse.app
    with anyio.fail_after(10):
        async with lifespan(app), open_event_stream(app, "/subscribe-producer?topic=p") as stream:
            await anyio.wait_all_tasks_blocked()  # the producer has subscribed
            status, body = await get(app, "/publish?topic=p&n=2&rate=0&seq=3")
            assert status == 200 and int(body) in (1, -1)
            events = await stream.read_events(2)
            assert [(event.data or "").split(" ")[0] for event in events] == ["3", "4"]


def test_the_summary_has_a_cell_per_target_and_server() -> None:
    rows = _targets.target_rows(fanout_results())
    lines = _targets.summary(rows)
    assert lines[0] == "| target | uvicorn | hypercorn-asyncio | hypercorn-trio |"
    assert "| fan-out p99 (hub) ≤ 1.2x raw floor | 1.10x met | not run | not run |" in lines
    # a uvicorn-only target has no cell on the other servers
    assert "| fan-out p99 (hub) ≤ better-sse push | 2.20x **not met** | — | — |" in lines
    assert "| target | trio (in process) | asyncio (in process) |" in lines


def test_node_versions_name_node_and_better_sse(tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: apt-get install nodejs")
    marker = tmp_path / "node_modules" / "better-sse" / "package.json"
    assert _node.node_versions(tmp_path)["better-sse"] == "not installed"
    marker.parent.mkdir(parents=True)
    marker.write_text('{"version": "9.8.7"}')
    found = _node.node_versions(tmp_path)
    assert found["better-sse"] == "9.8.7" and found["node"][0].isdigit()


def test_the_publish_section_names_its_rounds_and_parts() -> None:
    from benchmarks._report_publish import publish_section

    run = publish_run(1100, 1000)
    run["delivered"] = {"p50": 3000.0, "p99": 4000.0, "max": 5000.0}
    results = Results(settings={"reps": 3, "publish_events": 200})
    results.publish = {"trio": {"1000": [run, run, run]}}
    text = "\n".join(publish_section(results))
    assert "medians of 3 runs" in text
    assert "{" not in text  # every placeholder filled in
    assert "| trio | 1,000 | 1.10 |" in text
    assert text.rstrip().endswith("| 3.00 |")
