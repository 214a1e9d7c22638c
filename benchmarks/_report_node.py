"""The report's Node.js section: the reference stacks' figures beside trio_sse's, same rounds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._report import Row, _fmt, _median, _ratio, _table, _values

if TYPE_CHECKING:
    from ._runner import Results

__all__ = ["NODE_NAMES", "node_section"]

#: contestant -> how the report names it
NODE_NAMES = {
    "node-raw": "node:http raw",
    "better-sse": "better-sse push",
    "better-sse-batch": "better-sse batch",
}


def _present(section: dict[str, dict[str, list[Row]]]) -> list[str]:
    return [name for name in NODE_NAMES if any(name in table for table in section.values())]


def _side_by_side(
    section: dict[str, dict[str, list[Row]]], key: str, spec: str, scale: float = 1.0
) -> list[str]:
    """One row per server: trio_sse's and each Node contestant's median, then trio_sse ÷ each."""
    names = _present(section)
    if not names:
        return []
    rows = []
    for server, table in section.items():
        figures = [
            _fmt(_median(_values(table.get(name), key)) * scale, spec)
            for name in ("trio_sse", "raw", *names)
        ]
        ratios = [_fmt(_ratio(table.get("trio_sse"), table.get(name), key), ".2f", "x")
                  for name in names]  # fmt: skip
        rows.append([server, *figures, *ratios])
    header = ["server", "trio_sse", "raw ASGI floor", *(NODE_NAMES[name] for name in names)]
    header += [f"trio_sse ÷ {NODE_NAMES[name]}" for name in names]
    return [*_table(header, rows), ""]


def node_section(results: Results) -> list[str]:
    """Throughput, fan-out and idle memory of the Node stacks, with trio_sse's ratios to them."""
    parts: list[tuple[str, Any, str, str, float]] = [
        ("Throughput, events per second", results.throughput, "rate", ",.0f", 1.0),
        ("Fan-out p99 latency, ms", results.fanout, "p99_ms", ".1f", 1.0),
        ("Fan-out server CPU per delivered event, µs", results.fanout, "server_us_per_event",
         ".1f", 1.0),
        ("Idle memory per connection, KiB", results.idle, "bytes_per_connection", ".1f",
         1 / 1024),
    ]  # fmt: skip
    body: list[str] = []
    for title, section, key, spec, scale in parts:
        table = _side_by_side(section, key, spec, scale)
        if table:
            body += [f"### {title}", "", *table]
    if not body:
        return []
    return [
        "## Node.js reference (node:http, better-sse)",
        "",
        "The same routes served by Node.js (`benchmarks/node/`): *node:http raw* writes "
        "pre-formatted SSE strings (one `res.write` per event, or per subscriber per event); "
        "*better-sse push* is `session.push` per event and `channel.broadcast` for fan-out; "
        "*better-sse batch* sends `EventBuffer`s with `session.batch` (up to ~64 KiB per write "
        "for throughput, one buffer encoded once per published event for fan-out). Measured in "
        "the same interleaved rounds as the Python rows of each server (the Node process is the "
        "same whichever Python server it is listed with), same client; ratios are medians of "
        "per-round ratios (throughput: higher is better for trio_sse; latency, CPU, memory: "
        "lower is).",
        "",
        *body,
    ]
