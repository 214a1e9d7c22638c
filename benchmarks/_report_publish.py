"""The report's sections of issue 18's two added scenarios: ``idle10k`` and ``publish``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._report import Row, _fmt, _median, _table, idle_table

if TYPE_CHECKING:
    from ._runner import Results

__all__ = ["idle10k_section", "publish_section"]


def idle10k_section(results: Results) -> list[str]:
    """Idle memory per stream with 10,000 streams open on one server process."""
    data = results.idle10k
    if not data:
        return []
    held = [
        f"{server} / {name} round {index + 1}: {row.get('alive', 0):,} of "
        f"{row.get('connections', 0):,} open"
        for server, table in data.items()
        for name, rows in table.items()
        for index, row in enumerate(rows)
        if "error" not in row and row.get("alive", 0) < row.get("connections", 0)
    ]
    return [
        "## Idle streams held at 10,000",
        "",
        "10,000 idle subscriptions on one server process (its own file-descriptor limit, "
        "raised to 20,000), opened by one client process; otherwise as the idle scenario. "
        f"Medians of {results.settings['reps']} rounds. better-sse: the Node process, same "
        "client.",
        "",
        *idle_table(data, ["trio_sse", "trio_sse-producer", "raw", "better-sse"]),
        *(["Not every stream stayed open:", *(f"- {line}" for line in held), ""] if held else []),
    ]


def _ms(rows: Sequence[Row], part: str, at: str) -> str:
    return _fmt(_median([row[part][at] for row in rows]) / 1000, ",.2f")


def publish_section(results: Results) -> list[str]:
    """``await hub.publish()`` with 0, 1,000 and 10,000 subscribers, beside its fan-out."""
    data = results.publish
    if not data:
        return []
    rows = [
        [
            loop,
            f"{int(count):,}",
            _ms(r, "publish", "p50"),
            _ms(r, "publish", "p99"),
            _ms(r, "fan_out", "p50"),
            _ms(r, "fan_out", "p99"),
            _ms(r, "after", "p50"),
            _ms(r, "delivered", "p50") if all("delivered" in row for row in r) else "-",
        ]
        for loop, counts in data.items()
        for count, r in counts.items()
    ]
    header = ["loop", "subscribers", "publish p50 ms", "p99", "fan-out p50 ms", "p99",
              "rest after delivery p50 ms", "delivered p50 ms"]  # fmt: skip
    events = results.settings.get("publish_events", "?")
    return [
        "## Publish latency: what the publisher waits",
        "",
        "`python -m benchmarks.publish_latency` in one process, no sockets: a memory "
        f"`Broadcaster`, subscribers draining their channels, {events} publishes one at a "
        "time. *fan-out*: until every subscriber was offered the event (the cost of "
        "queueing); *rest after delivery*: what `publish` spends once it delivered (a memory "
        "`publish` takes no scheduling pass there: about nothing); *delivered*: until the "
        "last subscriber took the event, at the publisher's next checkpoint. Default GC "
        f"settings; medians of {results.settings['reps']} "
        "runs.",
        "",
        *_table(header, rows),
        "",
    ]
