"""Streams of several topics with one resume cursor (issue #16), run against every backend.

``tests/test_topics.py`` runs it on memory, ``tests/test_topics_redis.py`` on Redis Streams;
each subclass provides ``make_hub`` as in ``broadcast_suite``. Events of a stream are grouped
by topic through their cursor's first entry (``topic_key``), and each topic's sequence is
compared with what was published to it: order kept, nothing lost, nothing repeated.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import Access, EventSourceResponse, Forbidden, ServerSentEvent
from trio_sse._cursor import MAX_CURSOR_LENGTH, format_cursor, topic_key
from trio_sse.testing import open_event_stream

from .broadcast_suite import Events, MakeHub, drain, grant, take, topic_name


def topic_of(event: ServerSentEvent, topics: list[str]) -> str:
    """The topic of a stream's event: its reset's ``topic``, or its cursor's first entry."""
    if event.id is None:
        topic = json.loads(event.data or "")["topic"]
        assert isinstance(topic, str)
        return topic
    assert event.id.startswith("t1,")
    key = event.id.split(",")[1].partition(":")[0]
    (topic,) = [topic for topic in topics if topic_key(topic) == key]
    return topic


def by_topic(events: list[ServerSentEvent], topics: list[str]) -> dict[str, list[str | None]]:
    """topic -> the data of its events, in stream order (a reset is ``"<reset:reason>"``)."""
    grouped: dict[str, list[str | None]] = {topic: [] for topic in topics}
    for event in events:
        if event.event == "reset":
            assert event.id is None
            grouped[topic_of(event, topics)].append(
                f"<reset:{json.loads(event.data or '')['reason']}>"
            )
        else:
            grouped[topic_of(event, topics)].append(event.data)
    return grouped


async def until(events: Events, data: str, within: float = 10) -> list[ServerSentEvent]:
    """Events up to and including the first whose data is *data*."""
    received: list[ServerSentEvent] = []
    with anyio.fail_after(within):
        while not received or received[-1].data != data:
            received.append(await events.receive())
    return received


def topics_app(hub: Any, **options: Any) -> Starlette:
    """``/multi?topics=a,b``: ``EventSourceResponse(hub.stream([a, b], request, **options))``."""

    async def endpoint(request: Request) -> EventSourceResponse:
        topics = request.query_params["topics"].split(",")
        return EventSourceResponse(hub.stream(topics, request, **options))

    return Starlette(routes=[Route("/multi", endpoint)])


def only(*allowed: str) -> Any:
    """An ``authorize`` hook granting *allowed* topics only; it records what it was asked."""

    async def authorize(topic: str) -> Access | None:
        authorize.asked.append(topic)  # type: ignore[attr-defined]
        return Access() if topic in allowed else None

    authorize.asked = []  # type: ignore[attr-defined]
    return authorize


class TopicsSuite:
    FOREIGN_ID = "unknown"  # a well-formed id that this backend never issued

    async def test_live_events_of_every_topic_in_per_topic_order(self, make_hub: MakeHub) -> None:
        a, b, c = topic_name(), topic_name(), topic_name()
        async with make_hub() as hub, hub.subscribe([a, b, c]) as events:
            published: dict[str, list[str | None]] = {a: [], b: [], c: []}
            for number in range(30):
                topic = (a, b, c)[number * 7 % 3]
                await hub.publish(topic, ServerSentEvent(f"{topic}-{number}", event="tick"))
                published[topic].append(f"{topic}-{number}")
            received = await take(events, 30)
        assert by_topic(received, [a, b, c]) == published
        assert {event.event for event in received} == {"tick"}  # kept as published
        # Each id is a cursor: this event's topic first, then every topic seen so far.
        assert all(event.id is not None and event.id.startswith("t1,") for event in received)
        assert received[-1].id is not None and len(received[-1].id.split(",")) == 4

    async def test_resume_every_topic_with_no_gap_and_no_duplicate(self, make_hub: MakeHub) -> None:
        a, b = topic_name(), topic_name()
        topics = [a, b]
        async with make_hub() as hub:
            await hub.publish(a, "old-a")  # before the first stream: never sent to it
            await hub.publish(b, "old-b")
            sent: dict[str, list[str | None]] = {a: [], b: []}
            async with hub.subscribe(topics) as events:
                for number in range(6):
                    topic = topics[number % 2]
                    await hub.publish(topic, f"{topic}{number}")
                    sent[topic].append(f"{topic}{number}")
                first = await take(events, 4)  # two are still buffered: the client never saw them
            later: dict[str, list[str | None]] = {a: [], b: []}
            for number in range(6, 9):  # while the client is away: only topic a gets events
                await hub.publish(a, f"{a}{number}")
                later[a].append(f"{a}{number}")
            async with hub.subscribe(topics, last_event_id=first[-1].id) as events:
                await hub.publish(b, "sentinel")
                rest = await take(events, 6)  # a4, b5, a6-a8, the sentinel: equal lists below
        seen, resumed = by_topic(first, topics), by_topic(rest, topics)
        for topic in topics:
            assert seen[topic] + resumed[topic] == sent[topic] + later[topic] + (
                ["sentinel"] if topic == b else []
            )

    @settings(
        max_examples=10,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(data=st.data())
    async def test_reconnecting_anywhere_loses_and_repeats_nothing(
        self, make_hub: MakeHub, data: st.DataObject
    ) -> None:
        topics = [topic_name() for _ in range(3)]
        published: dict[str, list[str | None]] = {topic: [] for topic in topics}
        received: list[ServerSentEvent] = []
        counter = 0
        cursor: str | None = None
        async with make_hub() as hub:
            for _connection in range(data.draw(st.integers(1, 4), label="connections")):
                async with hub.subscribe(topics, last_event_id=cursor) as events:
                    for topic in data.draw(st.lists(st.sampled_from(topics), max_size=8)):
                        counter += 1
                        await hub.publish(topic, f"{topic}#{counter}")
                        published[topic].append(f"{topic}#{counter}")
                    pending = sum(map(len, published.values())) - len(received)
                    read = await take(events, data.draw(st.integers(0, pending), label="read"))
                received += read
                if received:
                    cursor = received[-1].id
                for topic in data.draw(st.lists(st.sampled_from(topics), max_size=4)):
                    counter += 1  # while the client is away
                    await hub.publish(topic, f"{topic}#{counter}")
                    published[topic].append(f"{topic}#{counter}")
                if cursor is None:  # it saw nothing: it has no cursor, and starts live again
                    published = {topic: [] for topic in topics}
            async with hub.subscribe(topics, last_event_id=cursor) as events:
                received += await take(events, sum(map(len, published.values())) - len(received))
        assert by_topic(received, topics) == published

    async def test_a_stream_that_never_saw_a_topic_misses_none_of_it(
        self, make_hub: MakeHub
    ) -> None:
        a, b = topic_name(), topic_name()
        async with make_hub() as hub:
            await hub.publish(b, "b-history")  # before the stream: not replayed on resume
            async with hub.subscribe([a, b]) as events:
                await hub.publish(a, "a0")
                (event,) = await take(events, 1)
            await hub.publish(b, "b-while-away")
            empty = topic_name()  # empty when the stream began: all of it on resume, no reset
            async with hub.subscribe([a, empty]) as events:
                await hub.publish(a, "a1")
                (other,) = await take(events, 1)
            await hub.publish(empty, "e0")
            async with (
                hub.subscribe([a, b], last_event_id=event.id) as events,
                hub.subscribe([a, empty], last_event_id=other.id) as others,
            ):
                await hub.publish(a, "sentinel")
                assert by_topic(await take(events, 3), [a, b]) == {
                    a: ["a1", "sentinel"],
                    b: ["b-while-away"],
                }
                assert by_topic(await take(others, 2), [a, empty]) == {
                    a: ["sentinel"],
                    empty: ["e0"],
                }

    async def test_a_stale_topic_resets_alone(self, make_hub: MakeHub) -> None:
        a, b = topic_name(), topic_name()
        async with make_hub() as hub:
            await hub.publish(a, "a0")
            b0 = await hub.publish(b, "b0")
            await hub.publish(b, "b1")
            cursor = format_cursor(topic_key(b), {topic_key(b): b0, topic_key(a): self.FOREIGN_ID})
            async with hub.subscribe([a, b], last_event_id=cursor) as events:
                await hub.publish(b, "sentinel")
                received = await take(events, 4)
        resets = [event for event in received if event.event == "reset"]
        assert [json.loads(event.data or "") for event in resets] == [
            {"reason": "unknown-id", "last_event_id": self.FOREIGN_ID, "topic": a}
        ]
        assert by_topic(received, [a, b]) == {
            a: ["<reset:unknown-id>", "a0"],
            b: ["b1", "sentinel"],
        }

    @pytest.mark.parametrize(
        "cursor",
        [
            "t1,zzzzzzzz:1",  # a bad key
            "t2,00000000:1",  # another version
            "t1,",  # no entry
            "t1,0000000:1",  # a short key
            "t1,00000000:%41",  # a needless escape (two spellings of one cursor)
            "t1,00000000:%zz",  # a broken escape
            "t1,00000000:%ff",  # not UTF-8
            "t1,00000000:a,00000000:b",  # one key twice
            "t1" + "".join(f",{n:08x}:a" for n in range(17)),  # more entries than topics
            "t1,00000000:" + "a" * (MAX_CURSOR_LENGTH + 1),  # oversized
            "1-0",  # a single topic's id
            "t1,00000000:a\r\nevent: forged",  # a line break
        ],
    )
    async def test_a_malformed_cursor_resets_every_topic_and_is_never_an_error(
        self, make_hub: MakeHub, cursor: str
    ) -> None:
        a, b = topic_name(), topic_name()
        async with make_hub() as hub:
            await hub.publish(a, "a0")
            await hub.publish(b, "b0")
            async with hub.subscribe([a, b], last_event_id=cursor) as events:
                await hub.publish(a, "sentinel")
                received = await take(events, 5)
        assert by_topic(received, [a, b]) == {
            a: ["<reset:unknown-id>", "a0", "sentinel"],
            b: ["<reset:unknown-id>", "b0"],
        }
        for event in received[:2]:  # the client's cursor is never echoed
            assert json.loads(event.data or "")["last_event_id"] is None

    async def test_a_forged_entry_never_reads_a_topic_outside_the_stream(
        self, make_hub: MakeHub
    ) -> None:
        a, secret = topic_name(), topic_name()
        async with make_hub() as hub:
            first = await hub.publish(secret, "s0")
            await hub.publish(secret, "s1")
            a0 = await hub.publish(a, "a0")
            # An entry for the forbidden topic, and that topic's own id as a's position.
            cursor = format_cursor(topic_key(a), {topic_key(a): a0, topic_key(secret): first})
            hook = only(a)
            async with hub.subscribe([a], last_event_id=cursor, authorize=hook) as events:
                await hub.publish(secret, "s2")
                await hub.publish(a, "sentinel")
                received = await until(events, "sentinel")
            assert hook.asked == [a]
            forged = format_cursor(topic_key(a), {topic_key(a): first})
            async with hub.subscribe([a], last_event_id=forged, authorize=hook) as events:
                await hub.publish(a, "sentinel2")
                replayed = await until(events, "sentinel2")
        assert [event.data for event in received] == ["sentinel"]
        # Memory: an unknown id (a reset, then a's history). Redis: each stream numbers its own
        # ids, so the id may be a position in a too: what follows it there. Never the secret.
        kept = [event.data for event in replayed if event.event != "reset"]
        assert set(kept) <= {"a0", "sentinel", "sentinel2"}
        assert kept[-1] == "sentinel2"

    async def test_a_refused_topic_refuses_the_stream_before_anything_is_sent(
        self, make_hub: MakeHub
    ) -> None:
        a, secret = topic_name(), topic_name()
        async with make_hub() as hub:
            await hub.publish(secret, "s0")
            hook = only(a)
            with anyio.fail_after(10), pytest.raises(Forbidden):
                async with hub.subscribe([a, secret], authorize=hook):
                    pass
            assert hook.asked == [a, secret]
            app = topics_app(hub, authorize=hook)
            with anyio.fail_after(10):
                async with open_event_stream(
                    app, f"/multi?topics={a},{secret}", headers={"last-event-id": "t1,x"}
                ) as stream:
                    assert stream.status_code == 403
                    assert [chunk async for chunk in stream.iter_bytes()] == [b"Forbidden\n"]
            assert hub.stats().subscribers == {}

    async def test_a_filter_applies_per_topic(self, make_hub: MakeHub) -> None:
        a, b = topic_name(), topic_name()
        async with make_hub() as hub:
            async with hub.subscribe([a, b], authorize=grant(public_only=True)) as events:
                await hub.publish(a, ServerSentEvent("hidden", event="secret"))
                await hub.publish(b, "b0")
                await hub.publish(a, ServerSentEvent("hidden", event="secret"))
                await hub.publish(a, "sentinel")
                received = await take(events, 2)
            assert by_topic(received, [a, b]) == {a: ["sentinel"], b: ["b0"]}
            assert hub.stats().withheld == 2

    async def test_stream_resumes_from_the_header_and_survives_hostile_cursors(
        self, make_hub: MakeHub
    ) -> None:
        a, b = topic_name(), topic_name()
        async with make_hub() as hub:
            app = topics_app(hub)
            with anyio.fail_after(10):
                async with open_event_stream(app, f"/multi?topics={a},{b}") as stream:
                    await hub.publish(a, "a0")
                    await hub.publish(b, "b0")
                    assert [event.data for event in await stream.read_events(2)] == ["a0", "b0"]
                    cursor = stream.last_event_id
                await hub.publish(a, "a1")
                async with open_event_stream(
                    app, f"/multi?topics={a},{b}", headers={"last-event-id": cursor or ""}
                ) as stream:
                    assert [event.data for event in await stream.read_events(1)] == ["a1"]
                for hostile in ("t1," + "0" * 5000, "t1,%", "\u00e9" * 300):
                    async with open_event_stream(
                        app, f"/multi?topics={a},{b}", headers={"last-event-id": hostile}
                    ) as stream:
                        assert stream.status_code == 200
                        events = await stream.read_events(4)
                        assert [event.event for event in events[:2]] == ["reset", "reset"]

    async def test_one_topic_disconnected_ends_the_stream_then_resume_is_lossless(
        self, make_hub: MakeHub
    ) -> None:
        a, b = topic_name(), topic_name()
        async with make_hub() as hub:
            async with hub.subscribe([a, b], max_buffer_size=2) as events:
                for number in range(12):
                    await hub.publish(a, f"a{number}")
                await hub.publish(b, "b0")
                received = await drain(events)
                assert 0 < len(received) < 13
            async with hub.subscribe([a, b], last_event_id=received[-1].id) as events:
                await hub.publish(b, "sentinel")
                rest = await take(events, 14 - len(received))
        got = by_topic(received + rest, [a, b])
        assert got[a] == [f"a{number}" for number in range(12)]
        assert got[b] == ["b0", "sentinel"]

    async def test_revoke_and_closing_the_hub_end_the_stream(self, make_hub: MakeHub) -> None:
        a, b = topic_name(), topic_name()
        async with make_hub() as hub:
            async with hub.subscribe([a, b], authorize=grant("alice")) as events:
                await hub.publish(b, "b0")
                await take(events, 1)
                assert hub.revoke("alice") == 2  # one per topic
                rest = await drain(events)
            # Each topic's farewell; the first one ends the stream, the other may follow it.
            assert {event.event for event in rest} == {"revoked"}
            assert hub.stats().subscribers == {}
        hub = make_hub()
        await hub.__aenter__()
        try:
            async with hub.subscribe([a, b]) as events:
                await hub.publish(a, "a-last")
                await take(events, 1)
                await hub.__aexit__(None, None, None)
                assert await drain(events) == []
        finally:
            await hub.__aexit__(None, None, None)
