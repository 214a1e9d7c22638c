"""The FastAPI yield-route plumbing: what an item annotation declares (``_item_types``) and
how the endpoint's generator is read (``_fastapi_items``).

The behaviour of yield routes end to end (items, validation, OpenAPI, servers) is tested in
``tests/fastapi/``.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from fastapi import FastAPI

from trio_sse import EventSourceResponse, JSONServerSentEvent, ServerSentEvent
from trio_sse._item_types import EventMember, item_types, stream_item_annotation
from trio_sse.testing import open_event_stream


@dataclass
class Tick:
    n: int


class TickEvent(JSONServerSentEvent[Tick], event="tick"):
    pass


class Note(ServerSentEvent[str]):
    pass


def test_stream_item_annotation_reads_every_iterator_kind() -> None:
    async def agen() -> AsyncIterator[Tick]:
        yield Tick(1)

    def gen() -> Iterator[int]:
        yield 1

    def bare() -> AsyncIterator:  # type: ignore[type-arg]
        raise NotImplementedError

    def plain() -> int:
        return 1

    assert stream_item_annotation(agen) is Tick
    assert stream_item_annotation(gen) is int
    assert stream_item_annotation(bare) is Any
    assert stream_item_annotation(plain) is None


def test_item_types_split_data_from_events() -> None:
    types = item_types(Tick | TickEvent | JSONServerSentEvent[int] | Note)
    assert types.plain == (Tick,)
    assert types.events == (
        EventMember(TickEvent, Tick, json=True, name="tick"),
        EventMember(JSONServerSentEvent, int, json=True, name=None),
        EventMember(Note, str, json=False, name=None),
    )
    assert types.data_types == (Tick, int)  # a Note's data is text, not JSON
    assert item_types(None).untyped and item_types(Any).untyped


def test_member_for_picks_the_most_derived_class() -> None:
    types = item_types(JSONServerSentEvent[int] | TickEvent)
    member = types.member_for(TickEvent(Tick(1)))
    assert member is not None and member.cls is TickEvent
    assert types.member_for(ServerSentEvent("x")) is None


def test_fixed_event_name() -> None:
    assert TickEvent(Tick(1)).event == "tick"
    assert TickEvent.fixed_event == "tick" and JSONServerSentEvent.fixed_event is None
    assert TickEvent(Tick(1), event="tick").encode("\n") == b'event: tick\ndata: {"n":1}\n\n'
    with pytest.raises(ValueError, match="TickEvent events are named 'tick'; got event='tock'"):
        TickEvent(Tick(1), event="tock")
    with pytest.raises(ValueError, match="event"):

        class Bad(ServerSentEvent[str], event="two\nlines"):
            pass


@pytest.mark.anyio
async def test_the_endpoint_generator_is_read_without_fastapis_wrapper() -> None:
    # FastAPI wraps a yield endpoint's generator in one that passes (anyio.sleep(0)) after
    # every item; trio_sse reads the endpoint's own generator (two to three times the events
    # per second). If a FastAPI release changes that wrapper, this fails: the stream still
    # works (it is read through the wrapper), but slower.
    callers: list[str] = []
    app = FastAPI()

    @app.get("/s", response_class=EventSourceResponse)
    async def stream() -> AsyncIterator[int]:
        for number in range(2):
            callers.append(sys._getframe(1).f_code.co_name)
            yield number

    with anyio.fail_after(10):
        async with open_event_stream(app, "/s") as events:
            received = [event.data async for event in events]
    assert received == ["0", "1"]
    assert callers == ["__anext__", "__anext__"]  # trio_sse's reader, not _async_stream_raw


@pytest.mark.anyio
async def test_untyped_items_are_json_as_fastapi_writes_them_and_others_end_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = FastAPI()

    @app.get("/s", response_class=EventSourceResponse)
    async def stream():  # type: ignore[no-untyped-def]  # untyped, on purpose
        yield None
        yield {"x": float("nan")}
        yield object()  # not JSON: ends the stream
        yield "never"

    with anyio.fail_after(10), caplog.at_level("ERROR", logger="trio_sse"):
        async with open_event_stream(app, "/s") as events:
            received = [event.data async for event in events]
    assert received == ["null", '{"x":null}']  # as fastapi.sse writes None and NaN
    records = [record for record in caplog.records if record.name == "trio_sse"]
    assert len(records) == 1 and records[0].exc_info is None
    assert "GET /s (stream): stream item 3" in records[0].getMessage()


def test_replace_keeps_the_class_and_its_fixed_event() -> None:
    event = TickEvent(Tick(1), id="1")
    copied = event.replace(id="2")
    assert type(copied) is TickEvent
    assert copied.encode("\n") == b'id: 2\nevent: tick\ndata: {"n":1}\n\n'  # not encoded twice
    assert type(JSONServerSentEvent({"a": 1}).replace(id="3")) is JSONServerSentEvent
    with pytest.raises(ValueError, match="TickEvent events are named 'tick'"):
        event.replace(event="tock")
