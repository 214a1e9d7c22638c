"""Issue 18's targets, judged on one run: one row per target and server, never a guess.

Pure: ``target_rows(results)`` reads a run's results (``Results``, or the dict of a saved
``--json``) and returns one :class:`TargetRow` per target and server; ``targets_section``
renders them as the report's first section. A row whose scenario, server or reference was
not run says ``not run``; one whose rounds gave no figure (errors) says ``no figure``.
Ratios are medians of per-round ratios (``_report._ratio``): each round's figures side by
side, as the contestants took turns.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ._report import Row, _fmt, _median, _ratio, _table, _values

__all__ = [
    "PUBLISH_LIMIT",
    "SERVERS",
    "TARGETS",
    "Measure",
    "Target",
    "TargetRow",
    "summary",
    "target_rows",
    "targets_section",
]

#: the Python servers every target is judged on (a row each, ``not run`` if not selected)
SERVERS = ("uvicorn", "hypercorn-asyncio", "hypercorn-trio")

#: publish p50 at most this times the fan-out p50 (the cost of queueing): "publish ≈ fan-out"
PUBLISH_LIMIT = 1.2

Section = Mapping[str, Mapping[str, Sequence[Row]]]


@dataclass(frozen=True)
class Measure:
    """A figure of a scenario: *key* of each round's result in results' *section*."""

    name: str
    section: str
    key: str
    unit: str
    spec: str = ".1f"
    scale: float = 1.0


@dataclass(frozen=True)
class Target:
    """*ours* ÷ *reference* (contestants of one server's table) compared by *op* to *limit*."""

    measure: Measure
    ours: str
    reference: str
    op: str  # "<=", ">=" or "<"
    limit: float
    servers: tuple[str, ...] = SERVERS


@dataclass(frozen=True)
class TargetRow:
    """One line of the targets table (and of the ``--json``'s ``targets``)."""

    target: str
    server: str
    measure: str
    trio_sse: str
    references: str
    ratio: str
    target_ratio: str
    verdict: str  # "met", "not met", "not run" or "no figure"
    ratio_value: float | None = None


FANOUT_P99 = Measure("fan-out p99", "fanout", "p99_ms", "ms")
FANOUT_CPU = Measure("fan-out server CPU per event", "fanout", "server_us_per_event", "µs")
IDLE = Measure("idle memory per stream", "idle", "bytes_per_connection", "KiB", scale=1 / 1024)
IDLE10K = Measure(
    "idle memory per stream, 10,000 streams", "idle10k", "bytes_per_connection", "KiB",
    scale=1 / 1024,
)  # fmt: skip
THROUGHPUT = Measure(
    "throughput, a ServerSentEvent per event", "throughput", "rate", "ev/s", ",.0f"
)

UVICORN = ("uvicorn",)

TARGETS: tuple[Target, ...] = (
    Target(FANOUT_P99, "trio_sse", "raw", "<=", 1.2),
    Target(FANOUT_P99, "trio_sse", "better-sse", "<=", 1.0, UVICORN),
    Target(FANOUT_CPU, "trio_sse", "raw", "<=", 1.1),
    Target(FANOUT_CPU, "trio_sse", "better-sse", "<=", 1.2),
    *(
        Target(measure, path, reference, op, limit)
        for measure in (IDLE, IDLE10K)
        for path in ("trio_sse", "trio_sse-producer")
        for reference, op, limit in (("raw", "<=", 1.5), ("better-sse", "<", 1.0))
    ),
    Target(THROUGHPUT, "trio_sse", "better-sse", ">=", 1.0, UVICORN),
    Target(THROUGHPUT, "trio_sse", "node-raw", ">=", 0.85, UVICORN),
    Target(THROUGHPUT, "trio_sse-gen", "trio_sse", ">=", 0.9),
)

_OPS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    "<=": ("≤", operator.le),
    ">=": ("≥", operator.ge),
    "<": ("<", operator.lt),
}

#: how the table names a contestant
NAMES = {
    "raw": "raw floor",
    "better-sse": "better-sse push",
    "node-raw": "node:http raw",
    "trio_sse-gen": "async gen",
    "trio_sse-producer": "producer path",
}

#: the references a row lists beside trio_sse's figure, where the table has them
REFERENCES = ("raw", "better-sse", "node-raw")


def _path(target: Target) -> str:
    """Which trio_sse path a target is about, in the table's words."""
    if target.ours == "trio_sse":
        return "producer fn" if target.measure.section == "throughput" else "hub"
    return NAMES[target.ours]


def _name(contestant: str) -> str:
    """A reference's name (trio_sse itself is one: the producer fn, for the async gen)."""
    return "producer fn" if contestant == "trio_sse" else NAMES[contestant]


def _title(target: Target) -> str:
    symbol = _OPS[target.op][0]
    bound = "" if target.limit == 1 else f"{target.limit:g}x "
    return f"{target.measure.name} ({_path(target)}) {symbol} {bound}{_name(target.reference)}"


def _figure(measure: Measure, rows: Sequence[Row] | None) -> str:
    value = _median(_values(rows, measure.key)) * measure.scale
    return f"{_fmt(value, measure.spec)} {measure.unit}" if not math.isnan(value) else "n/a"


def _references(target: Target, table: Mapping[str, Sequence[Row]]) -> str:
    """The reference figures the table has (the target's own first, ``not run`` if absent)."""
    names = dict.fromkeys([target.reference, *REFERENCES])
    return "; ".join(
        f"{_name(name)} {_figure(target.measure, table[name])}"
        if name in table
        else f"{_name(name)} not run"
        for name in names
        if name in table or name == target.reference
    )


def _dropped(measure: Measure, rows: Sequence[Row]) -> bool:
    """Whether an idle round held fewer streams than it opened."""
    if not measure.section.startswith("idle"):
        return False
    return any(row.get("alive", 0) < row.get("connections", 0) for row in rows)


def judge(target: Target, server: str, section: Section) -> TargetRow:
    """The row of *target* on *server*, from *section* (server -> contestant -> rounds)."""
    table = section.get(server)
    symbol, compare = _OPS[target.op]
    row = TargetRow(_title(target), server, target.measure.name, "not run", "", "",
                    f"{symbol} {target.limit:g}x", "not run")  # fmt: skip
    if table is None or target.ours not in table:
        return row
    row = replace(
        row, trio_sse=_figure(target.measure, table[target.ours]),
        references=_references(target, table),
    )  # fmt: skip
    if target.reference not in table:
        return row
    ratio = _ratio(table[target.ours], table[target.reference], target.measure.key)
    if math.isnan(ratio):
        return replace(row, verdict="no figure")
    met = compare(ratio, target.limit) and not _dropped(target.measure, table[target.ours])
    verdict = "met" if met else "not met"
    return replace(row, ratio=f"{ratio:.2f}x", verdict=verdict, ratio_value=ratio)


def _publish_ratio(rows: Sequence[Row]) -> float:
    """Median over rounds of publish p50 ÷ fan-out p50."""
    ratios = [r["publish"]["p50"] / r["fan_out"]["p50"] for r in rows if r["fan_out"]["p50"] > 0]
    return _median(ratios)


def _publish_row(loop: str, count: int, rows: Sequence[Row] | None) -> TargetRow:
    """The publish-latency row of *count* subscribers on *loop* (in one process)."""
    row = TargetRow(f"publish with {count:,} subscribers ≈ fan-out (queueing)",
                    f"in process, {loop}", "publish p50 / p99", "not run", "", "",
                    f"≤ {PUBLISH_LIMIT:g}x", "not run")  # fmt: skip
    if not rows:
        return row

    def ms(part: str, at: str) -> str:
        return f"{_median([r[part][at] for r in rows]) / 1000:,.2f}"

    row = replace(
        row, trio_sse=f"{ms('publish', 'p50')} / {ms('publish', 'p99')} ms",
        references=f"fan-out {ms('fan_out', 'p50')} / {ms('fan_out', 'p99')} ms",
    )  # fmt: skip
    ratio = _publish_ratio(rows)
    if math.isnan(ratio):
        return replace(row, verdict="no figure")
    verdict = "met" if ratio <= PUBLISH_LIMIT else "not met"
    return replace(row, ratio=f"{ratio:.2f}x", verdict=verdict, ratio_value=ratio)


def _get(results: Any, name: str) -> Any:
    return results.get(name) if isinstance(results, Mapping) else getattr(results, name)


def target_rows(results: Any) -> list[TargetRow]:
    """Every target's row on every server it applies to, in the issue's order."""
    rows = [
        judge(target, server, _get(results, target.measure.section) or {})
        for target in TARGETS
        for server in target.servers
    ]
    publish = _get(results, "publish") or {}
    rows += [
        _publish_row(loop, count, (publish.get(loop) or {}).get(str(count)))
        for loop in ("trio", "asyncio")
        for count in (1000, 10_000)
    ]
    return rows


_INTRO = (
    "One row per target of issue 18 and server. *ratio* is trio_sse's figure ÷ the "
    "reference's, the median of per-round ratios (the contestants take turns within a round); "
    "*met* compares it with the target ratio. The Node.js references (better-sse, node:http "
    "raw) are one Node process, measured in the same rounds as each Python server. *not run*: "
    "the scenario, the server or the reference was not part of this run (e.g. `--no-node`, "
    "`--servers`), so there is no verdict; *no figure*: it ran but its rounds gave no figure "
    "(see the scenario's errors). Idle rows also fail when fewer streams stayed open than "
    "were opened. Publish: `await hub.publish()` in one process (`benchmarks.publish_latency`), "
    "its p50 and p99 beside those of the fan-out part (queueing the event for every "
    f"subscriber); *met* when publish p50 ≤ {PUBLISH_LIMIT:g}x the fan-out p50, i.e. the "
    "publisher waits for little beyond queueing. The issue's last target, that nothing else "
    "in the targets table gets worse, takes two runs: compare this report with an earlier one."
)


def _cell(row: TargetRow) -> str:
    if row.verdict in ("met", "not met"):
        return f"{row.ratio} {_mark(row.verdict)}"
    return row.verdict


def _matrix(rows: Sequence[TargetRow], columns: Sequence[str], names: Sequence[str]) -> list[str]:
    """One line per target, one column per server in *columns* (headed *names*)."""
    cells: dict[str, dict[str, str]] = {}
    for row in rows:
        if row.server in columns:
            cells.setdefault(row.target, {})[row.server] = _cell(row)
    body = [[target, *(found.get(c, "—") for c in columns)] for target, found in cells.items()]
    return _table(["target", *names], body) if body else []


def summary(rows: Sequence[TargetRow]) -> list[str]:
    """The targets at a glance: the ratio and verdict per server (``—``: not a target there),
    then the publish targets per event loop. The README's table is this one."""
    loops = ("in process, trio", "in process, asyncio")
    return [
        *_matrix(rows, SERVERS, SERVERS),
        "",
        *_matrix(rows, loops, ("trio (in process)", "asyncio (in process)")),
    ]


def targets_section(results: Any) -> list[str]:
    """The report's "Targets (issue 18)" section."""
    rows = target_rows(results)
    met = sum(row.verdict == "met" for row in rows)
    judged = sum(row.verdict in ("met", "not met") for row in rows)
    header = ["target", "server", "trio_sse", "references", "ratio", "target", "met"]
    body = [
        [r.target, r.server, r.trio_sse, r.references, r.ratio, r.target_ratio, _mark(r.verdict)]
        for r in rows
    ]
    return [
        "## Targets (issue 18)",
        "",
        _INTRO,
        "",
        f"Met: {met} of {judged} judged ({len(rows) - judged} not run or without a figure).",
        "",
        *summary(rows),
        "",
        "Each row with its figures:",
        "",
        *_table(header, body),
        "",
    ]


def _mark(verdict: str) -> str:
    return "**not met**" if verdict == "not met" else verdict
