"""The models and typed events the FastAPI tests stream, and helpers to read their streams."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from trio_sse import JSONServerSentEvent, ServerSentEvent
from trio_sse.testing import open_event_stream

# Every stream of these tests ends within this (a hung stream fails, it does not hang).
TIMEOUT = 10.0


class Tick(BaseModel):
    n: int
    note: str | None = None


class Alert(BaseModel):
    level: str


class TickEvent(JSONServerSentEvent[Tick], event="tick"):
    """An event named ``tick`` whose data is a ``Tick`` as JSON."""


class AlertEvent(JSONServerSentEvent[Alert], event="alert"):
    """An event named ``alert`` whose data is an ``Alert`` as JSON."""


async def read_all(
    app: Any,
    path: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    comments: bool = False,
) -> tuple[int, list[ServerSentEvent], bool]:
    """The status, every event and whether the body ended cleanly, for one request to *app*.
    A checkpoint; the caller bounds it (``anyio.fail_after``)."""
    async with open_event_stream(
        app, path, method=method, headers=headers, comments=comments
    ) as stream:
        events = [event async for event in stream]
        return stream.status_code, events, stream.complete


def data_json(events: Sequence[ServerSentEvent]) -> list[Any]:
    """Each event's ``data`` parsed as JSON."""
    return [json.loads(event.data or "") for event in events]


def fields(event: ServerSentEvent) -> tuple[object, ...]:
    """What a client sees of *event* besides its data: (event, id, retry, comment)."""
    return (event.event, event.id, event.retry, event.comment)
