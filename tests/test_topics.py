"""Streams of several topics on the memory backend, and the cursor's parsing (issue #16)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_sse import Access, Broadcaster, Forbidden, _topics
from trio_sse._cursor import (
    MAX_CURSOR_ID_LENGTH,
    MAX_CURSOR_LENGTH,
    MAX_STREAM_TOPICS,
    format_cursor,
    parse_cursor,
    topic_key,
)
from trio_sse.backends import MemoryBackend
from trio_sse.testing import open_event_stream

from .broadcast_suite import MakeHub
from .topics_suite import TopicsSuite, topics_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def make_hub() -> MakeHub:
    def make(**options: Any) -> Broadcaster:
        return Broadcaster(**options)

    return make


class TestMemoryTopics(TopicsSuite):
    FOREIGN_ID = "0badcafe-1"  # the format of a memory id, from another epoch


# -- the cursor, pure ---------------------------------------------------------------------------

ids = st.text(st.characters(blacklist_characters="\r\n\0", blacklist_categories=["Cs"]))


@given(st.dictionaries(st.text(min_size=1), ids, min_size=1, max_size=MAX_STREAM_TOPICS))
def test_a_cursor_reads_back_what_it_was_written_from(positions: dict[str, str]) -> None:
    keyed = {topic_key(topic): event_id for topic, event_id in positions.items()}
    first = next(iter(keyed))
    cursor = format_cursor(first, keyed)
    assert cursor.isascii() and len(cursor) <= MAX_CURSOR_LENGTH
    kept = {
        key: event_id
        for key, event_id in keyed.items()
        if len(quote(event_id, safe="-._~")) <= MAX_CURSOR_ID_LENGTH
    }
    assert parse_cursor(cursor) == kept
    if first in kept:
        assert cursor.split(",")[1].startswith(f"{first}:")


def test_cursor_format_and_limits() -> None:
    key = topic_key("orders")
    assert key == "1f6a4f5d"[: len(key)] or len(key) == 8
    assert format_cursor(key, {key: "1-0", "00000000": "", "11111111": None}) == (
        f"t1,{key}:1-0,00000000:"
    )
    assert format_cursor(key, {key: "a,b:é"}) == f"t1,{key}:a%2Cb%3A%C3%A9"
    assert format_cursor(key, {key: "x" * (MAX_CURSOR_ID_LENGTH + 1)}) == "t1"  # left out
    assert parse_cursor(None) is None and parse_cursor("") is None and parse_cursor(b"") is None
    assert parse_cursor(b"t1,00000000:a") == {"00000000": "a"}
    assert parse_cursor("t1,00000000:" + "a" * (MAX_CURSOR_ID_LENGTH + 1)) == {}
    assert parse_cursor(b"t1,00000000:\xc3\xa9") == {}  # not ASCII
    assert parse_cursor("t1,00000000") == {}  # no colon
    assert parse_cursor("t1,00000000:%FF") == {}  # an escape of bytes that are not UTF-8
    biggest = "t1" + "".join(f",{n:08x}:" + "a" * MAX_CURSOR_ID_LENGTH for n in range(16))
    assert len(biggest) <= MAX_CURSOR_LENGTH and len(parse_cursor(biggest) or {}) == 16


def test_topics_are_checked() -> None:
    hub = Broadcaster()
    with pytest.raises(TypeError, match="topic must be a str, got bytes"):
        hub.subscribe(b"ab")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="topic must be a str, got set"):
        hub.stream({"a"}, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="topic must be a str"):
        hub.subscribe(["a", 1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="1 to 16 topics, got 0"):
        hub.subscribe([])
    with pytest.raises(ValueError, match="1 to 16 topics, got 17"):
        hub.subscribe([str(n) for n in range(17)])
    with pytest.raises(ValueError, match="'a' is given twice"):
        hub.subscribe(["a", "b", "a"])
    with pytest.raises(TypeError, match="last_event_id must be a str, bytes or None, got int"):
        hub.subscribe(["a"], last_event_id=3)  # type: ignore[arg-type]


def test_topics_whose_keys_collide_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_topics, "topic_key", lambda topic: "00000000")
    with pytest.raises(ValueError, match="'b' is given with the same key as 'a'"):
        Broadcaster().subscribe(["a", "b"])


def test_a_backend_without_head_cannot_serve_several_topics() -> None:
    class Old(MemoryBackend):
        head = None  # type: ignore[assignment]

    hub = Broadcaster(Old())  # type: ignore[arg-type]
    hub.subscribe("a")  # one topic needs no head()
    with pytest.raises(TypeError, match="needs a backend with head\\(\\); Old has none"):
        hub.stream(["a", "b"])


async def test_a_single_topic_stream_is_unchanged() -> None:
    async with Broadcaster() as hub:
        event_id = await hub.publish("a", "x")
        async with hub.subscribe("a", last_event_id="nope") as events:
            reset = await events.receive()
            replayed = await events.receive()
        assert reset.data == '{"reason":"unknown-id","last_event_id":"nope"}'
        assert replayed.id == event_id


async def test_entering_twice_and_closing_the_receive_end() -> None:
    async with Broadcaster() as hub:
        subscription = hub.subscribe(["a", "b"])
        async with subscription as events:
            with pytest.raises(RuntimeError, match="entered only once"):
                await subscription.__aenter__()
            events.close()  # nobody listens: the merge stops, nothing raises
            await hub.publish("a", "x")
            await hub.publish("b", "y")
            with anyio.fail_after(10):
                await anyio.wait_all_tasks_blocked()  # the merge has met the closed channel
            assert hub.stats().subscribers == {"a": 1, "b": 1}
        assert hub.stats().subscribers == {}


async def test_a_refused_topic_is_never_looked_at() -> None:
    looked_at: list[str] = []

    class Recording(MemoryBackend):
        async def head(self, topic: str) -> str | None:
            looked_at.append(topic)
            return await super().head(topic)

    async def authorize(topic: str) -> Access | None:
        return Access() if topic != "secret" else None

    async with Broadcaster(Recording()) as hub:
        await hub.publish("secret", "s0")
        with anyio.fail_after(10), pytest.raises(Forbidden):
            async with hub.subscribe(["a", "secret", "b"], authorize=authorize):
                pass
        assert looked_at == ["a"]
        assert hub.stats().subscribers == {}


async def test_a_query_parameter_cursor_resumes_and_a_single_topic_id_resets() -> None:
    async with Broadcaster() as hub:
        app = topics_app(hub)
        await hub.publish("a", "a0")
        with anyio.fail_after(10):
            async with open_event_stream(app, "/multi?topics=a,b") as stream:
                await hub.publish("b", "b0")
                (event,) = await stream.read_events(1)
            await hub.publish("a", "a1")
            query = urlencode({"topics": "a,b", "lastEventId": event.id})
            async with open_event_stream(app, f"/multi?{query}") as stream:
                assert [event.data for event in await stream.read_events(1)] == ["a1"]
            single = await hub.publish("a", "a2")  # an id of a one-topic stream: not a cursor
            async with open_event_stream(
                app, "/multi?topics=a,b", headers={"last-event-id": single}
            ) as stream:
                events = await stream.read_events(2)
                assert [event.event for event in events] == ["reset", "reset"]
