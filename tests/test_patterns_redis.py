"""Declared topic patterns on Redis Streams: index streams written by a script (issue #16)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from trio_sse import Broadcaster
from trio_sse.backends import RedisBackend, RedisReplyError
from trio_sse.backends.redis import _REFUSED_ID

from .broadcast_suite import MakeHub, take
from .patterns_suite import PatternsSuite, pattern_name
from .redis_server import RedisServer, hub_maker

pytestmark = pytest.mark.anyio


@pytest.fixture
def make_hub(redis_server: RedisServer) -> MakeHub:
    return hub_maker(redis_server)


@pytest.mark.service("redis-server")
class TestRedisPatterns(PatternsSuite):
    FOREIGN_ID = "99999999999999-0"  # a stream id far beyond anything published


@pytest.mark.service("redis-server")
async def test_two_hubs_share_one_index_in_commit_order(make_hub: MakeHub) -> None:
    pattern = pattern_name()
    a, b = pattern[:-1] + "a", pattern[:-1] + "b"
    async with (
        make_hub(patterns=[pattern]) as one,
        make_hub(patterns=[pattern]) as two,
        two.subscribe(pattern) as events,
    ):
        for number in range(10):
            await (one, two)[number % 2].publish((a, b)[number % 3 == 0], f"e{number}")
        live = await take(events, 10)
        async with one.subscribe(pattern, last_event_id="t1,x") as replay:
            replayed = await take(replay, 11)
    assert [event.data for event in live] == [f"e{number}" for number in range(10)]
    assert [(e.data, e.id) for e in replayed[1:]] == [(e.data, e.id) for e in live]


@pytest.mark.service("redis-server")
async def test_a_retried_publish_writes_the_index_once(make_hub: MakeHub) -> None:
    pattern = pattern_name()
    a = pattern[:-1] + "a"
    async with make_hub(patterns=[pattern]) as hub:
        backend: Any = hub.backend
        stream_id = await hub.publish(a, "first")
        # The same XADD sent again (a lost reply): refused by the topic, the index untouched.
        with pytest.raises(ValueError, match="refused the event id"):
            await hub.publish(a, {"data": "again", "id": stream_id})
        key = backend._key(pattern)
        assert len(await backend._command(b"XRANGE", key, b"-", b"+")) == 1


@pytest.mark.service("redis-server")
async def test_a_script_refused_for_a_taken_id_says_so_and_writes_nothing(
    make_hub: MakeHub,
) -> None:
    pattern = pattern_name()
    a = pattern[:-1] + "a"
    async with make_hub(patterns=[pattern]) as hub:
        backend: Any = hub.backend
        stream_id = await hub.publish(a, "first")
        index = (backend._key(pattern), a)
        with pytest.raises(RedisReplyError) as caught:
            await backend._add(backend._key(a), stream_id, [b"data", b"x"], index)
        # What publish() looks for to draw another id (or find its own earlier attempt).
        assert _REFUSED_ID in str(caught.value)
        assert len(await backend._command(b"XRANGE", index[0], b"-", b"+")) == 1


@pytest.mark.service("redis-server")
async def test_an_index_entry_that_names_no_topic_is_skipped(make_hub: MakeHub) -> None:
    pattern = pattern_name()
    a = pattern[:-1] + "a"
    async with make_hub(patterns=[pattern]) as hub:
        backend: Any = hub.backend
        await hub.publish(a, "a0")
        await backend._command(b"XADD", backend._key(pattern), b"*", b"data", b"stray")
        await hub.publish(a, "a1")
        async with hub.subscribe(pattern, last_event_id="t1,x") as events:
            received = await take(events, 3)
    assert [event.data for event in received[1:]] == ["a0", "a1"]
    assert [hub.topic_of(event) for event in received[1:]] == [a, a]


@pytest.mark.service("redis-server")
async def test_a_publish_sent_twice_is_stored_once_in_the_topic_and_the_index(
    make_hub: MakeHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when the client resends the script whose reply was lost: the second run is refused
    at the topic's XADD, before the index is written, and the entry is recognised."""
    pattern = pattern_name()
    a = pattern[:-1] + "a"
    async with make_hub(patterns=[pattern]) as hub:
        backend: Any = hub.backend
        add = backend._add

        async def twice(*args: Any, **options: Any) -> None:
            await add(*args, **options)
            await add(*args, **options)  # refused by Redis: that id is taken

        monkeypatch.setattr(backend, "_add", twice)
        stream_id = await hub.publish(a, "once")
        for key in (backend._key(a), backend._key(pattern)):
            assert len(await backend._command(b"XRANGE", key, b"-", b"+")) == 1
        assert await hub.backend.head(a) == stream_id


@pytest.mark.service("redis-server")
async def test_an_acl_user_needs_eval_for_patterns_only(redis_server: RedisServer) -> None:
    from .test_redis_acl import COMMANDS, add_user, prefix, url_for

    keys = prefix()
    user = await add_user(redis_server, keys, *COMMANDS)  # no +eval
    pattern = pattern_name()
    with anyio.fail_after(10), pytest.raises(RedisReplyError, match="may not run EVAL"):
        async with Broadcaster(
            RedisBackend(url_for(redis_server, user), prefix=keys), patterns=[pattern]
        ):
            pytest.fail("the hub started without the right to run EVAL")
    async with Broadcaster(RedisBackend(url_for(redis_server, user), prefix=keys)) as hub:
        await hub.publish(pattern[:-1] + "a", "a hub without patterns needs no script")
    allowed = await add_user(redis_server, keys, *COMMANDS, "+eval")
    backend = RedisBackend(url_for(redis_server, allowed), prefix=keys)
    async with (
        Broadcaster(backend, patterns=[pattern]) as hub,
        hub.subscribe(pattern) as events,
    ):
        await hub.publish(pattern[:-1] + "a", "through the index")
        assert [event.data for event in await take(events, 1)] == ["through the index"]
