"""Declared topic patterns on the memory backend, and their pure rules (issue #16)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from trio_sse import Access, Broadcaster, ServerSentEvent, _gate
from trio_sse._access import Guard
from trio_sse._cursor import format_cursor, topic_key
from trio_sse._patterns import Patterns, check_patterns, index_id, is_pattern, split_index_id
from trio_sse.backends import MemoryBackend

from .broadcast_suite import MakeHub, take
from .patterns_suite import PatternsSuite, pattern_name
from .topics_suite import until

pytestmark = pytest.mark.anyio


@pytest.fixture
def make_hub() -> MakeHub:
    def make(**options: Any) -> Broadcaster:
        return Broadcaster(**options)

    return make


class TestMemoryPatterns(PatternsSuite):
    FOREIGN_ID = "0badcafe-1"  # the format of a memory id, from another epoch


# -- the rules, pure ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a*", "a/*/b", "*/a/*", "a/**", "", "a/b", "a/*x", "**"])
def test_a_bad_pattern_is_a_value_error_naming_it(bad: str) -> None:
    with pytest.raises(ValueError, match="bad pattern"):
        Broadcaster(patterns=[bad])


@pytest.mark.parametrize("bad", ["a/*", 3, [1], {"a/*"}])
def test_patterns_of_the_wrong_type_are_a_type_error(bad: Any) -> None:
    with pytest.raises(TypeError, match="pattern"):
        Broadcaster(patterns=bad)


def test_declaring_a_pattern_twice_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="declared twice"):
        check_patterns(["a/*", "b/*", "a/*"])
    assert check_patterns(None) is None and check_patterns([]) is None


def test_a_backend_without_indexes_cannot_take_patterns() -> None:
    class Bare(MemoryBackend):
        declare_patterns = None  # type: ignore[assignment]

    with pytest.raises(TypeError, match="cannot keep pattern indexes"):
        Broadcaster(Bare(), patterns=["a/*"])
    Broadcaster(Bare())  # no pattern: nothing asked of it


def test_a_pattern_matches_exactly_one_more_segment() -> None:
    patterns = Patterns(["orders/*", "*", "a/b/*"])
    assert list(patterns) == ["orders/*", "*", "a/b/*"]
    assert patterns.match("orders/42") == "orders/*"
    assert patterns.match("orders/4~2 x") == "orders/*"
    assert patterns.match("orders") == "*"  # one segment: the root pattern
    assert patterns.match("orders/") is None
    assert patterns.match("orders/42/lines") is None
    assert patterns.match("a/b/c") == "a/b/*"
    assert patterns.match("a/c") is None
    assert "orders/*" in patterns and "orders/x" not in patterns and 3 not in patterns
    assert Patterns(["x/*"]).match("y") is None


def test_what_is_written_as_a_pattern() -> None:
    assert is_pattern("a/*") and is_pattern("*") and is_pattern("a/*/b")
    assert not is_pattern("a*b") and not is_pattern("a/b") and not is_pattern("a/b*")


@pytest.mark.parametrize("topic", ["orders/42", "a~b", "50%", "line\nbreak", "é/ü", "a/*"])
def test_an_index_id_says_its_position_and_its_topic(topic: str) -> None:
    event_id = index_id("1733-7", topic)
    assert not {"\r", "\n", "\0"} & set(event_id)
    assert split_index_id(event_id) == ("1733-7", topic)


# -- memory specifics ---------------------------------------------------------------------------


async def test_no_pattern_no_index(make_hub: MakeHub) -> None:
    async with make_hub() as hub:
        await hub.publish("orders/1", "x")
        assert list(hub.backend._topics) == ["orders/1"]  # type: ignore[attr-defined]
    pattern = pattern_name()
    async with make_hub(patterns=[pattern]) as hub:
        await hub.publish(pattern[:-1] + "1", "x")
        assert list(hub.backend._topics) == [pattern[:-1] + "1", pattern]  # type: ignore[attr-defined]


async def test_an_expired_index_position_resets_the_pattern(make_hub: MakeHub) -> None:
    pattern = pattern_name()
    a = pattern[:-1] + "a"
    async with make_hub(patterns=[pattern], history=2) as hub:
        async with hub.subscribe(pattern) as events:
            await hub.publish(a, "a0")
            (first,) = await take(events, 1)
        for number in range(1, 5):
            await hub.publish(a, f"a{number}")
        async with hub.subscribe(pattern, last_event_id=first.id) as events:
            received = await take(events, 3)
    assert json.loads(received[0].data or "")["reason"] == "expired"
    assert [event.data for event in received[1:]] == ["a3", "a4"]


async def test_topic_of_names_only_what_came_through_a_pattern(make_hub: MakeHub) -> None:
    pattern, long = pattern_name(), "x" * 300
    topic = pattern[:-1] + long
    async with make_hub(patterns=[pattern]) as hub:
        async with hub.subscribe(pattern) as events, hub.subscribe(["plain"]) as plain:
            await hub.publish(topic, "long")
            await hub.publish(pattern[:-1] + "a b", "short")
            await hub.publish("plain", ServerSentEvent("p", id="own~id"))
            long_event, short_event = await take(events, 2)
            (plain_event,) = await take(plain, 1)
        # Too long to be named in the cursor: unnamed, but resuming from it is still exact.
        assert hub.topic_of(long_event) is None
        assert (
            hub.topic_of(short_event) == hub.topic_of(short_event.id or "") == pattern[:-1] + "a b"
        )
        assert hub.topic_of(plain_event) is None  # its own id holds a "~"
        assert hub.topic_of("not a cursor") is None
        assert hub.topic_of(ServerSentEvent("no id")) is None
        async with hub.subscribe(pattern, last_event_id=long_event.id) as events:
            await hub.publish(topic, "next")
            assert [event.data for event in await until(events, "next")] == ["short", "next"]
    async with make_hub() as bare:
        assert bare.topic_of(short_event) is None
    cursor = format_cursor(topic_key("x/*"), {topic_key("x/*"): "1-1~x/a"})
    assert hub.topic_of(cursor) is None  # not one of this hub's patterns


async def test_a_gate_remembers_a_bounded_number_of_topics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_gate, "MAX_GATE_TOPICS", 2)
    asked: list[str] = []

    def allow_event(event: ServerSentEvent) -> bool:
        if event.data == "boom":
            raise RuntimeError("a broken filter")
        return True

    async def authorize(topic: str) -> Access | None:
        asked.append(topic)
        return None if topic == "no" else Access(allow_event=allow_event)

    gate = _gate.TopicGate(Guard(authorize, 5.0))
    event = ServerSentEvent("x")
    assert await gate.allows("a", event) and await gate.allows("a", event)
    assert not await gate.allows("no", event)
    assert not await gate.allows("a", ServerSentEvent("boom"))  # fails closed
    assert await gate.allows("b", event)  # forgets "a", the oldest
    assert await gate.allows("a", event)
    assert asked == ["a", "no", "b", "a"]


async def test_concurrent_publishes_keep_the_index_in_commit_order(make_hub: MakeHub) -> None:
    pattern = pattern_name()
    topics = [pattern[:-1] + name for name in "abc"]
    async with (
        make_hub(patterns=[pattern]) as hub,
        hub.subscribe(pattern, max_buffer_size=1, on_overflow="block") as slow,
    ):
        # The slow subscriber holds the index's lock: the other publishes queue for it.
        async with anyio.create_task_group() as group:
            for number in range(9):
                group.start_soon(hub.publish, topics[number % 3], f"e{number}")
            live = await take(slow, 9)
        async with hub.subscribe(pattern, last_event_id="t1,x") as events:
            replayed = await take(events, 10)
    assert [event.data for event in replayed[1:]] == [event.data for event in live]
    assert sorted(event.data or "" for event in live) == [f"e{n}" for n in range(9)]


async def test_an_own_id_in_a_matched_topic_is_kept_and_refused_twice(make_hub: MakeHub) -> None:
    pattern = pattern_name()
    a = pattern[:-1] + "a"
    async with make_hub(patterns=[pattern], history=2) as hub:
        async with hub.subscribe(pattern) as events:
            assert await hub.publish(a, {"data": "mine", "id": "order-1"}) == "order-1"
            (event,) = await take(events, 1)
            with pytest.raises(ValueError, match="already in the history"):
                await hub.publish(a, {"data": "again", "id": "order-1"})
        for number in range(3):  # evicts order-1 from the topic and from the index
            await hub.publish(a, f"a{number}")
        assert await hub.publish(a, {"data": "back", "id": "order-1"}) == "order-1"
        assert hub.topic_of(event) == a
        async with hub.subscribe(pattern, last_event_id=event.id) as events:
            received = await take(events, 3)
    assert json.loads(received[0].data or "")["reason"] == "expired"
    assert [event.data for event in received[1:]] == ["a2", "back"]
