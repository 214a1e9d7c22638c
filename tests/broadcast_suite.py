"""The behavioural suite of ``Broadcaster``, run against every backend.

``tests/test_broadcast.py`` runs it on the memory backend and ``tests/test_broadcast_redis.py``
on Redis Streams: each subclasses :class:`BroadcastSuite` and provides the ``make_hub``
fixture (``make_hub(history=...) -> Broadcaster``, not yet entered).

Live delivery on Redis goes through the hub's reader, so it is asynchronous: the tests wait
for events (always under ``fail_after``) rather than assume they are already buffered, and
prove that nothing else is pending by publishing a sentinel that must come next.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import Access, EventSourceResponse, Forbidden, JSONServerSentEvent, ServerSentEvent
from trio_sse._broadcast import Broadcaster
from trio_sse.testing import open_event_stream

MakeHub = Callable[..., Broadcaster]
Events = MemoryObjectReceiveStream[ServerSentEvent]


async def take(events: Events, count: int, within: float = 10) -> list[ServerSentEvent]:
    """Exactly *count* events (fails if the channel ends first or they do not come in time)."""
    with anyio.fail_after(within):
        return [await events.receive() for _ in range(count)]


async def drain(events: Events, within: float = 10) -> list[ServerSentEvent]:
    """Everything until the channel ends."""
    with anyio.fail_after(within):
        return [event async for event in events]


def ids_of(events: list[ServerSentEvent]) -> list[str | None]:
    return [event.id for event in events]


def reset_data(event: ServerSentEvent) -> Any:
    assert event.event == "reset"
    assert event.id is None
    return json.loads(event.data or "")


def topic_name() -> str:
    return f"topic-{uuid.uuid4().hex[:12]}"


def broadcast_app(
    hub: Broadcaster, response_options: dict[str, Any] | None = None, **options: Any
) -> Starlette:
    """``/events/{topic}``: ``EventSourceResponse(hub.stream(topic, request, **options))``."""

    async def endpoint(request: Request) -> EventSourceResponse:
        return EventSourceResponse(
            hub.stream(request.path_params["topic"], request, **options),
            **(response_options or {}),
        )

    return Starlette(routes=[Route("/events/{topic}", endpoint)])


async def refuse(topic: str) -> Access | None:
    return None


def grant(*principals: Any, public_only: bool = False) -> Any:
    """An ``authorize`` hook granting *principals*; *public_only*: withhold ``event: secret``."""

    def allow_event(event: ServerSentEvent) -> bool:
        return event.event != "secret"

    async def authorize(topic: str) -> Access | None:
        return Access(*principals, allow_event=allow_event if public_only else None)

    return authorize


class BroadcastSuite:
    FAN_OUT = 1000
    FOREIGN_ID = "unknown"  # a well-formed id that this backend never issued

    def expected_retained(self, ids: list[str], history: int) -> list[str]:
        """The ids a topic keeps after publishing *ids* with this history size."""
        return ids[-history:]

    # -- live delivery ----------------------------------------------------------------------

    async def test_subscriber_gets_live_events_in_publish_order(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        async with make_hub() as hub, hub.subscribe(topic) as events:
            ids = [await hub.publish(topic, f"m{number}") for number in range(20)]
            received = await take(events, 20)
        assert ids_of(received) == ids
        assert [event.data for event in received] == [f"m{number}" for number in range(20)]
        assert len(set(ids)) == 20

    async def test_fan_out_to_many_subscribers(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        count = 10
        async with make_hub() as hub, AsyncExitStack() as stack:
            channels = [
                await stack.enter_async_context(hub.subscribe(topic)) for _ in range(self.FAN_OUT)
            ]
            assert hub.stats().subscribers == {topic: self.FAN_OUT}
            ids = [await hub.publish(topic, number) for number in range(count)]
            first = await take(channels[0], count)
            assert ids_of(first) == ids
            for channel in channels[1:]:
                received = await take(channel, count)
                assert ids_of(received) == ids
                # The same event objects: each is encoded once for all subscribers.
                assert all(a is b for a, b in zip(received, first, strict=True))
            assert hub.stats().delivered == self.FAN_OUT * count

    async def test_concurrent_publishers_one_order_for_everyone(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        per_publisher = 40
        async with make_hub() as hub, AsyncExitStack() as stack:
            channels = [
                await stack.enter_async_context(hub.subscribe(topic, max_buffer_size=500))
                for _ in range(5)
            ]

            async def publisher(name: str) -> None:
                for number in range(per_publisher):
                    await hub.publish(topic, f"{name}:{number}")

            with anyio.fail_after(20):
                async with anyio.create_task_group() as group:
                    for name in "abc":
                        group.start_soon(publisher, name)
            sequences = [await take(channel, 3 * per_publisher) for channel in channels]
            # A replay from the first event gives the same order as the live one.
            first_id = sequences[0][0].id
            async with hub.subscribe(topic, last_event_id=first_id) as replayed:
                replay = await take(replayed, 3 * per_publisher - 1)
        assert all(sequence == sequences[0] for sequence in sequences)
        assert replay == sequences[0][1:]
        data = [event.data or "" for event in sequences[0]]
        for name in "abc":
            mine = [item for item in data if item.startswith(name)]
            assert mine == [f"{name}:{number}" for number in range(per_publisher)]

    async def test_publish_accepts_events_dicts_and_data(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        async with make_hub() as hub, hub.subscribe(topic) as events:
            await hub.publish(topic, ServerSentEvent("a", event="x"))
            await hub.publish(topic, {"data": "b", "event": "y", "retry": 10})
            await hub.publish(topic, JSONServerSentEvent({"c": 1}))
            await hub.publish(topic, 42)
            received = await take(events, 4)
        assert [(event.data, event.event, event.retry) for event in received] == [
            ("a", "x", None),
            ("b", "y", 10),
            ('{"c":1}', None, None),
            ("42", None, None),
        ]
        assert all(event.id for event in received)

    async def test_replay_rebuilds_every_field(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        original = ServerSentEvent(
            "line one\nline two", event="message", retry=1500, comment="a note", sep="\n"
        )
        async with make_hub() as hub:
            first = await hub.publish(topic, "before")
            event_id = await hub.publish(topic, original)
            await hub.publish(topic, ServerSentEvent())  # no field at all
            async with hub.subscribe(topic, last_event_id=first) as events:
                replayed, empty = await take(events, 2)
        assert replayed == original.replace(id=event_id)
        assert replayed.sep == "\n"
        assert replayed.encode() == original.replace(id=event_id).encode()
        assert (empty.data, empty.event, empty.comment) == (None, None, None)

    # -- overflow policies ------------------------------------------------------------------

    async def test_disconnect_ends_the_slow_subscriber_only(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        async with make_hub() as hub:
            async with (
                hub.subscribe(topic, max_buffer_size=4) as slow,
                hub.subscribe(topic, max_buffer_size=100) as fast,
            ):
                with anyio.fail_after(5):  # publishing never waits for the slow one
                    ids = [await hub.publish(topic, number) for number in range(10)]
                assert ids_of(await take(fast, 10)) == ids
                kept = await drain(slow)  # what was buffered, then the end of the channel
            assert ids_of(kept) == ids[:4]
            assert hub.stats().disconnected == 1
            # The client resumes from the last event it got: the history fills the gap.
            async with hub.subscribe(topic, last_event_id=kept[-1].id) as resumed:
                assert ids_of(await take(resumed, 6)) == ids[4:]

    async def test_drop_oldest_keeps_the_newest(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        async with make_hub() as hub:
            async with (
                hub.subscribe(topic, max_buffer_size=3, on_overflow="drop_oldest") as slow,
                hub.subscribe(topic, max_buffer_size=100) as fast,
            ):
                ids = [await hub.publish(topic, number) for number in range(10)]
                await take(fast, 10)  # every event has been offered to both
                kept = [slow.receive_nowait() for _ in range(3)]
                with pytest.raises(anyio.WouldBlock):
                    slow.receive_nowait()
                assert ids_of(kept) == ids[-3:]
                later = await hub.publish(topic, "still connected")
                assert ids_of(await take(slow, 1)) == [later]
            stats = hub.stats()
        assert (stats.dropped, stats.disconnected) == (7, 0)

    async def test_block_waits_then_disconnects(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        ids: list[str] = []
        async with make_hub() as hub:
            slow_subscription = hub.subscribe(
                topic, max_buffer_size=2, on_overflow="block", block_timeout=0.5
            )
            async with slow_subscription as slow, hub.subscribe(topic, max_buffer_size=100) as fast:

                async def publish_five() -> None:
                    for number in range(5):
                        ids.append(await hub.publish(topic, number))

                async with anyio.create_task_group() as group:
                    group.start_soon(publish_five)
                    third = (await take(fast, 3))[2]
                    # The others got the event that the slow subscriber blocks on at once.
                    assert hub.stats().disconnected == 0
                    rest = await take(fast, 2)
                    assert hub.stats().disconnected == 1
                kept = await drain(slow)
        assert ids_of(kept) == ids[:2]
        assert [third.id, *ids_of(rest)] == ids[2:]

    async def test_block_loses_nothing_when_the_reader_keeps_up(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        count = 60
        async with make_hub() as hub:
            async with hub.subscribe(
                topic, max_buffer_size=1, on_overflow="block", block_timeout=5
            ) as events:
                received: list[ServerSentEvent] = []

                async def read() -> None:
                    for _ in range(count):
                        received.append(await events.receive())
                        await anyio.lowlevel.checkpoint()

                with anyio.fail_after(20):
                    async with anyio.create_task_group() as group:
                        group.start_soon(read)
                        ids = [await hub.publish(topic, number) for number in range(count)]
            assert ids_of(received) == ids
            assert hub.stats().disconnected == 0

    # -- resume -----------------------------------------------------------------------------

    @settings(
        max_examples=12,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(data=st.data())
    async def test_resume_from_every_position(self, make_hub: MakeHub, data: st.DataObject) -> None:
        history = data.draw(st.integers(min_value=1, max_value=8), label="history")
        count = data.draw(st.integers(min_value=1, max_value=12), label="count")
        topic = topic_name()
        async with make_hub(history=history) as hub, AsyncExitStack() as stack:
            ids = [await hub.publish(topic, f"e{number}") for number in range(count)]
            retained = self.expected_retained(ids, history)
            channels = [
                await stack.enter_async_context(hub.subscribe(topic, last_event_id=event_id))
                for event_id in ids
            ]
            live = await hub.publish(topic, "live")
            for position, channel in enumerate(channels):
                if ids[position] in retained:
                    expected = [*ids[position + 1 :], live]
                    assert ids_of(await take(channel, len(expected))) == expected
                else:
                    reset, *rest = await take(channel, len(retained) + 2)
                    assert reset_data(reset) == {
                        "reason": "expired",
                        "last_event_id": ids[position],
                    }
                    assert ids_of(rest) == [*retained, live]

    @pytest.mark.parametrize(
        ("last_event_id", "echo"),
        [
            pytest.param("no-such-event", "no-such-event", id="unknown"),
            pytest.param("x" * 1_000_000, None, id="1MB"),
            pytest.param(b"y" * 1_000_000, None, id="1MB-bytes"),
            pytest.param("a\r\nb\x00", "a\r\nb\x00", id="CRLF-NUL"),
            pytest.param(b"\xff\xfe\x00", "\ufffd\ufffd\x00", id="invalid-utf8"),
            pytest.param("\ud800", "?", id="lone-surrogate"),
            pytest.param("é" * 300, None, id="too-long"),
        ],
    )
    async def test_unusable_ids_get_a_reset_then_history(
        self, make_hub: MakeHub, last_event_id: str | bytes, echo: str | None
    ) -> None:
        topic = topic_name()
        async with make_hub() as hub:
            ids = [await hub.publish(topic, number) for number in range(2)]
            async with hub.subscribe(topic, last_event_id=last_event_id) as events:
                live = await hub.publish(topic, "live")
                reset, *rest = await take(events, 4)
        assert reset_data(reset) == {"reason": "unknown-id", "last_event_id": echo}
        assert ids_of(rest) == [*ids, live]
        reset.encode()  # always encodable

    async def test_foreign_id_is_unknown(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        async with make_hub() as hub:
            event_id = await hub.publish(topic, "one")
            async with hub.subscribe(topic, last_event_id=self.FOREIGN_ID) as events:
                reset, event = await take(events, 2)
        assert reset_data(reset)["reason"] == "unknown-id"
        assert event.id == event_id

    async def test_expired_id(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        async with make_hub(history=3) as hub:
            # Enough events for Redis' approximate trimming to drop whole nodes.
            ids = [await hub.publish(topic, number) for number in range(250)]
            async with hub.subscribe(topic, last_event_id=ids[0]) as events:
                reset = (await take(events, 1))[0]
                live = await hub.publish(topic, "live")
                rest: list[ServerSentEvent] = []
                while not rest or rest[-1].id != live:
                    rest += await take(events, 1)
        assert reset_data(reset) == {"reason": "expired", "last_event_id": ids[0]}
        replayed = ids_of(rest[:-1])
        assert replayed == ids[len(ids) - len(replayed) :]  # a suffix of the history
        assert 3 <= len(replayed) < 250

    async def test_empty_id_is_a_fresh_subscription(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        async with make_hub() as hub:
            await hub.publish(topic, "old")
            async with hub.subscribe(topic, last_event_id="") as events:
                live = await hub.publish(topic, "new")
                assert ids_of(await take(events, 1)) == [live]

    async def test_reconnect_mid_burst_loses_and_duplicates_nothing(
        self, make_hub: MakeHub
    ) -> None:
        topic = topic_name()
        total = 300
        async with make_hub() as hub:
            published: list[str] = []
            left = anyio.Event()
            resumed = anyio.Event()
            received: list[ServerSentEvent] = []

            async def burst() -> None:
                for number in range(total):
                    published.append(await hub.publish(topic, number))
                    if number == 120:
                        await left.wait()  # events 100..120 are unread when the client leaves
                    elif number == 200:
                        await resumed.wait()  # 121..200 race with the resume itself
                    elif number % 5 == 0:
                        await anyio.lowlevel.checkpoint()

            with anyio.fail_after(30):
                async with anyio.create_task_group() as group:
                    async with hub.subscribe(topic) as events:
                        group.start_soon(burst)
                        received += await take(events, 100)
                    left.set()
                    async with hub.subscribe(topic, last_event_id=received[-1].id) as events:
                        assert len(published) <= 201
                        resumed.set()
                        received += await take(events, total - 100)
        assert [event.data for event in received] == [str(number) for number in range(total)]
        assert ids_of(received) == published

    async def test_replay_larger_than_the_buffer_with_live_events(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        async with make_hub(history=100) as hub:
            ids = [await hub.publish(topic, number) for number in range(60)]
            async with hub.subscribe(topic, last_event_id=ids[0], max_buffer_size=4) as events:
                received: list[ServerSentEvent] = []

                async def read() -> None:
                    received.extend(await take(events, 59 + 3))

                async with anyio.create_task_group() as group:
                    group.start_soon(read)
                    for number in range(3):
                        ids.append(await hub.publish(topic, f"live{number}"))
        assert ids_of(received) == ids[1:]

    async def test_slow_replay_overflow_disconnects_and_resume_is_lossless(
        self, make_hub: MakeHub
    ) -> None:
        topic = topic_name()
        async with make_hub(history=100) as hub:
            ids = [await hub.publish(topic, number) for number in range(30)]
            async with (
                hub.subscribe(topic, last_event_id=ids[0], max_buffer_size=4) as events,
                hub.subscribe(topic) as witness,
            ):
                # Not reading: the replay fills the channel, live events fill the queue...
                for number in range(5):
                    ids.append(await hub.publish(topic, f"live{number}"))
                await take(witness, 5)  # (every live event has been offered to both)
                kept = await drain(events)  # ...and the fifth one disconnected it
            # What was buffered (the replay's start), in order, then the end of the channel.
            assert len(kept) >= 4
            assert ids_of(kept) == ids[1 : 1 + len(kept)]
            assert hub.stats().disconnected == 1
            async with hub.subscribe(topic, last_event_id=kept[-1].id) as events:
                rest = ids[1 + len(kept) :]
                assert ids_of(await take(events, len(rest))) == rest

    # -- the EventSourceResponse glue -------------------------------------------------------

    async def test_stream_resumes_from_the_last_event_id_header(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        async with make_hub() as hub:
            ids = [await hub.publish(topic, number) for number in range(4)]
            app = broadcast_app(hub)
            with anyio.fail_after(10):
                async with open_event_stream(
                    app, f"/events/{topic}", headers={"last-event-id": ids[1]}
                ) as stream:
                    assert ids_of(await stream.read_events(2)) == ids[2:]
                    live = await hub.publish(topic, "live")
                    (event,) = await stream.read_events(1)
                    assert (event.id, event.data) == (live, "live")
                    assert stream.last_event_id == live

    async def test_stream_resumes_from_the_query_parameter(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        async with make_hub() as hub:
            ids = [await hub.publish(topic, number) for number in range(4)]
            app = broadcast_app(hub)
            with anyio.fail_after(10):
                async with open_event_stream(
                    app, f"/events/{topic}?lastEventId={ids[2]}"
                ) as stream:
                    assert ids_of(await stream.read_events(1)) == ids[3:]
                # The header (newer, from a reconnecting EventSource) wins over the URL.
                async with open_event_stream(
                    app, f"/events/{topic}?lastEventId={ids[0]}", headers={"last-event-id": ids[2]}
                ) as stream:
                    assert ids_of(await stream.read_events(1)) == ids[3:]

    async def test_stream_with_a_bad_header_sends_a_reset(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        async with make_hub() as hub:
            event_id = await hub.publish(topic, "kept")
            app = broadcast_app(hub)
            with anyio.fail_after(10):
                async with open_event_stream(
                    app, f"/events/{topic}", headers={"last-event-id": "z" * 100_000}
                ) as stream:
                    assert stream.status_code == 200
                    reset, event = await stream.read_events(2)
        assert reset_data(reset) == {"reason": "unknown-id", "last_event_id": None}
        assert event.id == event_id

    async def test_stream_ends_cleanly_when_the_subscriber_is_disconnected(
        self, make_hub: MakeHub
    ) -> None:
        topic = topic_name()
        async with make_hub() as hub:
            first = await hub.publish(topic, "first")
            # Small buffers all along the way, and a client that does not read.
            app = broadcast_app(hub, {"max_buffer_size": 1}, max_buffer_size=1)
            with anyio.fail_after(10):
                async with open_event_stream(
                    app,
                    f"/events/{topic}",
                    headers={"last-event-id": first},
                    max_buffered_messages=1,
                ) as stream:
                    ids: list[str] = []
                    while hub.stats().disconnected == 0:
                        ids.append(await hub.publish(topic, "x" * 100))
                        await anyio.sleep(0.001)
                    received = [event async for event in stream]
                    assert stream.complete  # a clean end of body, not a cut
            assert 0 < len(received) < len(ids)
            assert ids_of(received) == ids[: len(received)]

    # -- authorization (issue 16): above the backend, so the same on every one ---------------

    async def test_a_refused_topic_is_a_403_and_nothing_is_subscribed(
        self, make_hub: MakeHub
    ) -> None:
        topic = topic_name()
        async with make_hub() as hub:
            event_id = await hub.publish(topic, "history")
            with anyio.fail_after(10), pytest.raises(Forbidden):
                async with hub.subscribe(topic, last_event_id=event_id, authorize=refuse):
                    pass
            app = broadcast_app(hub, authorize=refuse)
            with anyio.fail_after(10):
                async with open_event_stream(
                    app, f"/events/{topic}", headers={"last-event-id": "x"}
                ) as stream:
                    assert stream.status_code == 403
                    assert [chunk async for chunk in stream.iter_bytes()] == [b"Forbidden\n"]
            assert hub.stats().subscribers == {}

    async def test_a_filter_withholds_live_and_replayed_events(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        async with make_hub() as hub:
            first = await hub.publish(topic, "first")
            public = []
            for number in range(6):
                secret = number % 2 == 0
                event = ServerSentEvent(str(number), event="secret" if secret else None)
                event_id = await hub.publish(topic, event)
                if not secret:
                    public.append(event_id)
            hook = grant(public_only=True)
            async with hub.subscribe(topic, last_event_id=first, authorize=hook) as events:
                for number in range(4):
                    secret = number % 2 == 0
                    event = ServerSentEvent(f"live{number}", event="secret" if secret else None)
                    event_id = await hub.publish(topic, event)
                    if not secret:
                        public.append(event_id)
                sentinel = await hub.publish(topic, "sentinel")
                received = await take(events, len(public) + 1)
        assert ids_of(received) == [*public, sentinel]  # the sentinel came next: nothing else

    async def test_a_cursor_from_a_forbidden_topic_reads_nothing_of_it(
        self, make_hub: MakeHub
    ) -> None:
        public, secret = topic_name(), topic_name()
        async with make_hub() as hub:
            retained = [await hub.publish(public, "p0")]
            cursors = [await hub.publish(secret, f"s{number}") for number in range(2)]
            retained.append(await hub.publish(public, "p1"))
            for cursor in cursors:
                async with hub.subscribe(public, last_event_id=cursor, authorize=grant()) as events:
                    sentinel = await hub.publish(public, "sentinel")
                    received: list[ServerSentEvent] = []
                    while not received or received[-1].id != sentinel:
                        received += await take(events, 1)
                # Memory: an unknown id (a reset, then all). Redis: each stream numbers its
                # own ids, so another topic's id may also be a position here: what follows it.
                if received[0].event == "reset":
                    assert reset_data(received.pop(0))["reason"] in ("unknown-id", "expired")
                replayed = ids_of(received[:-1])
                assert replayed == retained[len(retained) - len(replayed) :]
                assert all(event.event != "reset" for event in received)
                retained.append(sentinel)

    async def test_revoke_ends_a_principals_stream_with_a_farewell(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        async with make_hub() as hub:
            app = broadcast_app(hub, authorize=grant(("user", "alice")))
            with anyio.fail_after(10):
                async with (
                    open_event_stream(app, f"/events/{topic}") as alice,
                    hub.subscribe(topic, authorize=grant(("user", "bob"))) as bob,
                ):
                    seen = await hub.publish(topic, "seen")
                    assert ids_of(await alice.read_events(1)) == [seen]
                    assert hub.revoke(("user", "alice")) == 1
                    rest = [event async for event in alice]
                    assert alice.complete
                    after = await hub.publish(topic, "after")
                    assert ids_of(await take(bob, 2)) == [seen, after]
        assert [(event.event, event.data) for event in rest] == [
            ("revoked", '{"reason":"revoked"}')
        ]
        assert hub.stats().revoked == 1

    # -- bookkeeping ------------------------------------------------------------------------

    async def test_stats(self, make_hub: MakeHub) -> None:
        a, b = topic_name(), topic_name()
        async with make_hub() as hub:
            async with (
                hub.subscribe(a) as a1,
                hub.subscribe(a) as a2,
                hub.subscribe(b, max_buffer_size=1, on_overflow="drop_oldest") as b1,
                hub.subscribe(b) as b2,
            ):
                assert hub.stats().subscribers == {a: 2, b: 2}
                for number in range(2):
                    await hub.publish(a, number)
                for number in range(3):
                    await hub.publish(b, number)
                await take(a1, 2)
                await take(a2, 2)
                await take(b2, 3)
                await take(b1, 1)
                stats = hub.stats()
                assert stats.total_subscribers == 4
            assert hub.stats().subscribers == {}
        assert (stats.published, stats.delivered, stats.dropped, stats.disconnected) == (
            5,
            4 + 3 + 3,
            2,
            0,
        )

    async def test_closing_the_receive_end_unsubscribes(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        async with make_hub() as hub, hub.subscribe(topic) as events:
            events.close()
            with anyio.fail_after(5):
                while hub.stats().subscribers:
                    await hub.publish(topic, "anyone?")
                    await anyio.sleep(0.01)

    async def test_closing_the_hub_ends_subscriber_channels(self, make_hub: MakeHub) -> None:
        topic = topic_name()
        hub = make_hub()
        subscription = hub.subscribe(topic)
        async with hub:
            events = await subscription.__aenter__()
            event_id = await hub.publish(topic, "last")
            assert ids_of(await take(events, 1)) == [event_id]
        assert await drain(events) == []
        await subscription.__aexit__(None, None, None)
        with pytest.raises(RuntimeError, match="closed"):
            await hub.publish(topic, "late")
        with pytest.raises(RuntimeError, match="closed"):
            async with hub.subscribe(topic):
                pass
