"""The README's "## Middleware" table names tests: each one exists in tests/middleware/."""

from __future__ import annotations

import re

from ..processes import REPO


def middleware_section() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Middleware\n")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def test_every_test_the_middleware_table_names_exists() -> None:
    section = middleware_section()
    named = set(re.findall(r"`(test_\w+)`", section))
    defined = {
        match
        for path in (REPO / "tests" / "middleware").glob("test_*.py")
        for match in re.findall(r"^(?:async )?def (test_\w+)\(", path.read_text(), re.MULTILINE)
    }
    assert len(named) >= 10, named
    assert named <= defined, sorted(named - defined)
    # Each row of the table (one per middleware kind) names at least one test.
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 6, rows  # the header and five middleware kinds
    for row in rows[1:]:
        assert "test_" in row or "the shared ones" in row, row
