"""Streams of declared topic patterns (issue #16), run against every backend.

``tests/test_patterns.py`` runs it on memory, ``tests/test_patterns_redis.py`` on Redis. Each
test declares a pattern ``<unique>/*`` on its hub. An event that came through a pattern is
grouped by the topic the hub says it came from (``hub.topic_of``); a reset by its ``topic``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import Access, EventSourceResponse, Forbidden, ServerSentEvent
from trio_sse._cursor import format_cursor, topic_key
from trio_sse.testing import open_event_stream

from .broadcast_suite import MakeHub, drain, take, topic_name
from .topics_suite import only, until


def pattern_name() -> str:
    return f"p{uuid.uuid4().hex[:10]}/*"


def grouped(hub: Any, events: list[ServerSentEvent], plain: str = "") -> dict[str, list[Any]]:
    """concrete topic (or *plain*, or a reset's topic) -> the data of its events, in order."""
    out: dict[str, list[Any]] = {}
    for event in events:
        if event.event == "reset":
            data = json.loads(event.data or "")
            out.setdefault(data["topic"], []).append(f"<reset:{data['reason']}>")
            continue
        topic = hub.topic_of(event) or plain
        out.setdefault(topic, []).append(event.data)
    return out


def pattern_app(hub: Any, **options: Any) -> Starlette:
    """``/p?topics=a,b``: ``EventSourceResponse(hub.stream(topics, request, **options))``."""

    async def endpoint(request: Request) -> EventSourceResponse:
        topics = request.query_params["topics"].split(",")
        topic = topics if len(topics) > 1 else topics[0]
        return EventSourceResponse(hub.stream(topic, request, **options))

    return Starlette(routes=[Route("/p", endpoint)])


class PatternsSuite:
    FOREIGN_ID = "unknown"  # a well-formed id that this backend never issued

    async def test_live_fan_out_through_a_pattern(self, make_hub: MakeHub) -> None:
        pattern = pattern_name()
        base = pattern[:-1]
        a, b, other, deep = base + "a", base + "b", topic_name(), base + "a/deep"
        async with (
            make_hub(patterns=[pattern]) as hub,
            hub.subscribe(pattern) as one,
            hub.subscribe([pattern]) as two,
        ):
            for number in range(6):
                await hub.publish((a, b)[number % 2], f"e{number}")
                await hub.publish(other, "not matched")
                await hub.publish(deep, "not matched either")
            await hub.publish(a, "last")
            first = await take(one, 7)
            second = await take(two, 7)
        expected = {a: ["e0", "e2", "e4", "last"], b: ["e1", "e3", "e5"]}
        assert grouped(hub, first) == grouped(hub, second) == expected
        assert all(event.id is not None and event.id.startswith("t1,") for event in first)

    async def test_resume_with_no_gap_no_duplicate_per_topic_order(self, make_hub: MakeHub) -> None:
        pattern = pattern_name()
        a, b = pattern[:-1] + "a", pattern[:-1] + "b"
        async with make_hub(patterns=[pattern]) as hub:
            await hub.publish(a, "before")  # before the first stream: never sent to it
            sent: list[tuple[str, str]] = []
            async with hub.subscribe(pattern) as events:
                for number in range(6):
                    topic = (a, b)[number % 3 == 0]
                    await hub.publish(topic, f"x{number}")
                    sent.append((topic, f"x{number}"))
                first = await take(events, 4)  # two are still buffered: never seen
            for number in range(6, 9):  # while the client is away
                await hub.publish((a, b)[number % 2], f"x{number}")
                sent.append(((a, b)[number % 2], f"x{number}"))
            async with hub.subscribe(pattern, last_event_id=first[-1].id) as events:
                await hub.publish(a, "sentinel")
                rest = await until(events, "sentinel")
        sent.append((a, "sentinel"))
        # Exactly what was published after the first stream began, in commit order.
        assert [(hub.topic_of(e), e.data) for e in first + rest] == sent

    @settings(
        max_examples=10,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(data=st.data())
    async def test_reconnecting_anywhere_loses_repeats_and_leaks_nothing(
        self, make_hub: MakeHub, data: st.DataObject
    ) -> None:
        pattern, plain = pattern_name(), topic_name()
        a, b, secret = (pattern[:-1] + name for name in ("a", "b", "secret"))
        stream, targets = [pattern, plain], [a, b, secret, plain]
        hook = only(pattern, plain, a, b)
        published: list[tuple[str, str]] = []  # what the client may see, in commit order
        received: list[ServerSentEvent] = []
        cursor: str | None = None

        async def publish(topic: str) -> None:
            data_ = f"{topic}#{len(published)}#{uuid.uuid4().hex[:4]}"
            await hub.publish(topic, data_)
            if topic != secret:
                published.append((topic, data_))

        async with make_hub(patterns=[pattern]) as hub:
            for _connection in range(data.draw(st.integers(1, 4), label="connections")):
                async with hub.subscribe(stream, last_event_id=cursor, authorize=hook) as events:
                    for topic in data.draw(st.lists(st.sampled_from(targets), max_size=8)):
                        await publish(topic)
                    pending = len(published) - len(received)
                    read = await take(events, data.draw(st.integers(0, pending), label="read"))
                received += read
                if received:
                    cursor = received[-1].id
                for topic in data.draw(st.lists(st.sampled_from(targets), max_size=4)):
                    await publish(topic)  # while the client is away
                if cursor is None:  # it saw nothing: no cursor, it starts live again
                    published.clear()
            async with hub.subscribe(stream, last_event_id=cursor, authorize=hook) as events:
                received += await take(events, len(published) - len(received))
        got = [(hub.topic_of(event) or plain, event.data) for event in received]
        for topic in (a, b, plain):  # per topic: exactly what was published, in order
            assert [d for t, d in got if t == topic] == [d for t, d in published if t == topic]
        # Through the index, events of the pattern come in commit order too.
        in_pattern = [pair for pair in published if pair[0] != plain]
        assert [pair for pair in got if pair[0] != plain] == in_pattern

    async def test_a_stale_pattern_position_resets_it_alone(self, make_hub: MakeHub) -> None:
        pattern, plain = pattern_name(), topic_name()
        a = pattern[:-1] + "a"
        async with make_hub(patterns=[pattern]) as hub:
            await hub.publish(a, "a0")
            p0 = await hub.publish(plain, "p0")
            await hub.publish(plain, "p1")
            cursor = format_cursor(
                topic_key(plain), {topic_key(plain): p0, topic_key(pattern): self.FOREIGN_ID}
            )
            async with hub.subscribe([pattern, plain], last_event_id=cursor) as events:
                await hub.publish(a, "sentinel")
                received = await until(events, "sentinel")
        assert grouped(hub, received, plain) == {
            pattern: ["<reset:unknown-id>"],
            a: ["a0", "sentinel"],
            plain: ["p1"],
        }

    async def test_a_pattern_and_a_plain_topic_in_one_stream(self, make_hub: MakeHub) -> None:
        pattern, plain = pattern_name(), topic_name()
        a = pattern[:-1] + "a"
        async with make_hub(patterns=[pattern]) as hub:
            async with hub.subscribe([plain, pattern]) as events:
                await hub.publish(a, "a0")
                await hub.publish(plain, "p0")
                await hub.publish(a, "a1")
                first = await take(events, 3)
            await hub.publish(plain, "p1")
            await hub.publish(a, "a2")
            async with hub.subscribe([plain, pattern], last_event_id=first[-1].id) as events:
                await hub.publish(plain, "sentinel")
                rest = await until(events, "sentinel")
        assert grouped(hub, first + rest, plain) == {
            a: ["a0", "a1", "a2"],
            plain: ["p0", "p1", "sentinel"],
        }

    async def test_a_forbidden_topic_never_leaks_live_by_replay_or_reset(
        self, make_hub: MakeHub
    ) -> None:
        pattern = pattern_name()
        ok, secret = pattern[:-1] + "ok", pattern[:-1] + "secret"
        hook = only(pattern, ok)
        async with make_hub(patterns=[pattern]) as hub:
            await hub.publish(secret, "SECRET-old")
            await hub.publish(ok, "ok-old")
            async with hub.subscribe(pattern, authorize=hook) as events:  # live
                await hub.publish(secret, "SECRET-0")
                await hub.publish(ok, "ok0")
                await hub.publish(secret, "SECRET-1")
                await hub.publish(ok, "sentinel")
                live = await until(events, "sentinel")
            assert hook.asked == [pattern, secret, ok]  # each concrete topic once
            for cursor in (live[0].id, "t1,garbage", "x" * 5000):  # by replay, by reset
                async with hub.subscribe(pattern, last_event_id=cursor, authorize=hook) as events:
                    await hub.publish(ok, "end")
                    replayed = await until(events, "end")
                assert not [event for event in replayed if "SECRET" in (event.data or "")]
                assert replayed[-1].data == "end"
        assert [event.data for event in live] == ["ok0", "sentinel"]

    async def test_a_per_topic_filter_and_a_failing_hook(self, make_hub: MakeHub) -> None:
        pattern = pattern_name()
        a, bad = pattern[:-1] + "a", pattern[:-1] + "bad"

        async def authorize(topic: str) -> Access | None:
            if topic == bad:
                raise RuntimeError("the database is down")
            return Access(allow_event=lambda event: event.event != "secret")

        async with (
            make_hub(patterns=[pattern]) as hub,
            hub.subscribe(pattern, authorize=authorize) as events,
        ):
            await hub.publish(a, ServerSentEvent("hidden", event="secret"))
            await hub.publish(a, "a0")
            await hub.publish(bad, "b0")  # the hook fails: the stream ends, no leak
            received = await drain(events)
        assert [event.data for event in received] == ["a0"]

    async def test_a_refused_pattern_is_refused_before_anything_is_sent(
        self, make_hub: MakeHub
    ) -> None:
        pattern = pattern_name()
        async with make_hub(patterns=[pattern]) as hub:
            await hub.publish(pattern[:-1] + "a", "a0")
            hook = only("nothing")
            with anyio.fail_after(10), pytest.raises(Forbidden):
                async with hub.subscribe(pattern, authorize=hook):
                    pass
            assert hook.asked == [pattern]
            app = pattern_app(hub, authorize=hook)
            with anyio.fail_after(10):
                async with open_event_stream(app, f"/p?topics={pattern}") as stream:
                    assert stream.status_code == 403
            assert hub.stats().subscribers == {}

    async def test_stream_resumes_and_forged_cursors_are_never_an_error(
        self, make_hub: MakeHub
    ) -> None:
        pattern = pattern_name()
        a, secret = pattern[:-1] + "a", pattern[:-1] + "secret"
        async with make_hub(patterns=[pattern]) as hub:
            app = pattern_app(hub, authorize=only(pattern, a))
            s0 = await hub.publish(secret, "s0")
            with anyio.fail_after(10):
                async with open_event_stream(app, f"/p?topics={pattern}") as stream:
                    await hub.publish(a, "a0")
                    assert [event.data for event in await stream.read_events(1)] == ["a0"]
                    cursor = stream.last_event_id
                await hub.publish(secret, "s1")
                await hub.publish(a, "a1")
                async with open_event_stream(
                    app, f"/p?topics={pattern}", headers={"last-event-id": cursor or ""}
                ) as stream:
                    assert [event.data for event in await stream.read_events(1)] == ["a1"]
                forged = format_cursor(topic_key(pattern), {topic_key(pattern): f"{s0}~{a}"})
                hostile = ("t1," + "0" * 5000, forged, "t1,%", "\u00e9" * 300, "t1,x:y")
                for number, cursor in enumerate(hostile):
                    async with open_event_stream(
                        app, f"/p?topics={pattern}", headers={"last-event-id": cursor}
                    ) as stream:
                        assert stream.status_code == 200
                        await hub.publish(a, f"end{number}")
                        seen: list[str | None] = []
                        while not seen or seen[-1] != f"end{number}":
                            seen += [event.data for event in await stream.read_events(1)]
                        # A reset and the history, or (forged: a real position) what follows
                        # it; never the secret topic's events.
                        assert not {"s0", "s1"} & set(seen) and "a1" in seen

    async def test_undeclared_patterns_and_pattern_names_are_refused(
        self, make_hub: MakeHub
    ) -> None:
        pattern = pattern_name()
        async with make_hub(patterns=[pattern]) as hub:
            for name in ("other/*", "*", [pattern, "x/*"]):
                with pytest.raises(ValueError, match="not a pattern this hub declares"):
                    hub.subscribe(name)
                with pytest.raises(ValueError, match="not a pattern this hub declares"):
                    hub.stream(name)
            with pytest.raises(ValueError, match="is a pattern, not a topic"):
                await hub.publish(pattern, "x")
            with pytest.raises(ValueError, match="covered by the pattern"):
                hub.subscribe([pattern[:-1] + "a", pattern])
        async with make_hub() as hub:
            with pytest.raises(ValueError, match=r"declared: \[\]"):
                hub.stream("orders/*")
            assert await hub.publish("orders/*", "a literal topic, as before")

    async def test_revoking_the_patterns_principal_ends_the_stream(self, make_hub: MakeHub) -> None:
        pattern = pattern_name()
        async with make_hub(patterns=[pattern]) as hub:

            async def authorize(topic: str) -> Access:
                return Access("alice")

            async with hub.subscribe(pattern, authorize=authorize) as events:
                await hub.publish(pattern[:-1] + "a", "a0")
                await take(events, 1)
                assert hub.revoke("alice") == 1
                assert [event.event for event in await drain(events)] == ["revoked"]
