"""Streams of several topics with one resume cursor on Redis Streams (issue #16)."""

from __future__ import annotations

import pytest

from .broadcast_suite import MakeHub, topic_name
from .redis_server import RedisServer, hub_maker
from .topics_suite import TopicsSuite

pytestmark = pytest.mark.anyio


@pytest.fixture
def make_hub(redis_server: RedisServer) -> MakeHub:
    return hub_maker(redis_server)


@pytest.mark.service("redis-server")
class TestRedisTopics(TopicsSuite):
    FOREIGN_ID = "99999999999999-0"  # a stream id far beyond anything published


@pytest.mark.service("redis-server")
async def test_head_is_the_last_stream_id(make_hub: MakeHub) -> None:
    topic = topic_name()
    async with make_hub() as hub:
        assert await hub.backend.head(topic) is None
        await hub.publish(topic, "a")
        last = await hub.publish(topic, "b")
        assert await hub.backend.head(topic) == last
