"""The README's "## FastAPI" section: its code runs as written, streams and is documented."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest

from trio_sse import ServerSentEvent
from trio_sse.testing import open_event_stream

from .processes import REPO

pytestmark = pytest.mark.anyio


def fastapi_section() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## FastAPI\n")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def section_app() -> dict[str, Any]:
    """The section's python blocks, run in order in one namespace (as a reader would)."""
    blocks: list[str] = re.findall(r"```python\n(.*?)```", fastapi_section(), re.DOTALL)
    assert len(blocks) == 2, blocks
    namespace: dict[str, Any] = {}
    for index, block in enumerate(blocks):
        exec(compile(block, f"README.md (FastAPI, block {index + 1})", "exec"), namespace)
    return namespace


async def test_the_readme_yield_path_operations_stream_and_are_documented() -> None:
    namespace = section_app()
    app = namespace["app"]
    with anyio.fail_after(10):
        async with open_event_stream(app, "/ticks") as stream:
            ticks = await stream.read_events(2)
        async with open_event_stream(app, "/alerts") as stream:
            alerts = [event async for event in stream]
            assert stream.complete
    assert [event.data for event in ticks] == ['{"n":0}', '{"n":1}']
    assert alerts == [ServerSentEvent('{"n":1}', event="alert", id=1)]

    content = app.openapi()["paths"]["/alerts"]["get"]["responses"]["200"]["content"]
    schema = content["text/event-stream"]["itemSchema"]
    assert schema["properties"]["data"]["contentSchema"] == {"$ref": "#/components/schemas/Tick"}
    assert schema["properties"]["event"] == {"type": "string", "enum": ["alert"]}
    assert schema["required"] == ["data", "event"]


async def test_the_readme_subclass_sets_the_options_of_a_yield_path_operation() -> None:
    namespace = section_app()
    stream_class = namespace["Stream"]
    response = stream_class(iter(()))
    assert response.ping_interval == 5
    assert response.send_timeout == 10
    assert response.farewell == ServerSentEvent("bye", event="bye")
    with anyio.fail_after(10):
        async with open_event_stream(namespace["app"], "/slow-ticks") as stream:
            [tick] = await stream.read_events(1)
    assert tick.data == '{"n":0}'
    # FastAPI's OpenAPI reads the subclass's status_code default (the README says why).
    responses = namespace["app"].openapi()["paths"]["/slow-ticks"]["get"]["responses"]
    assert "itemSchema" in responses["200"]["content"]["text/event-stream"]
