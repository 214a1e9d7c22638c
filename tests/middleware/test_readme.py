"""The README's "## Middleware" section: the tests its table names exist in tests/middleware/,
and its example runs in front of a stream."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trio_sse import EventSourceResponse
from trio_sse.testing import open_event_stream

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


def readme_block() -> str:
    """The python block of the Middleware section."""
    blocks: list[str] = re.findall(r"```python\n(.*?)```", middleware_section(), re.DOTALL)
    [block] = blocks
    return block


@pytest.mark.anyio
async def test_the_middleware_example_runs_in_front_of_a_stream() -> None:
    namespace: dict[str, Any] = {}
    exec(compile(readme_block(), "README.md (Middleware)", "exec"), namespace)

    async def producer(send: MemoryObjectSendStream[Any]) -> None:
        async with send:
            await send.send("one")
            await send.send("two")

    async def endpoint(request: Request) -> Response:
        return EventSourceResponse(producer)

    app = Starlette(routes=[Route("/", endpoint)], middleware=namespace["middleware"])
    with anyio.fail_after(5):
        async with open_event_stream(app) as stream:
            assert stream.headers["x-served-by"] == "trio_sse"
            assert [event.data async for event in stream] == ["one", "two"]
            assert stream.complete
