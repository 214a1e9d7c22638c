"""The Redis backend's error paths and edge cases, against a real ``redis-server``.

What other writers put in a topic's stream (entries that are not valid events are skipped,
invalid UTF-8 is replaced), a replay longer than one ``XRANGE`` page, the credentials and
database of a URL, and the options' checks.
"""

from __future__ import annotations

import logging
import math
import uuid

import anyio
import anyio.abc
import pytest

from trio_sse import Broadcaster
from trio_sse.backends import RedisBackend, RedisConnectionError

from .redis_server import RedisServer
from .redis_server import command as redis_command

pytestmark = pytest.mark.anyio
needs_redis = pytest.mark.service("redis-server")


def unique_prefix() -> str:
    return f"edges-{uuid.uuid4().hex[:8]}:"


async def command(server: RedisServer, *args: str | bytes | int, db: int = 0) -> object:
    return await redis_command(f"redis://127.0.0.1:{server.port}/{db}", *args)


# -- entries written by something else ---------------------------------------------------------


FOREIGN: list[list[str | bytes]] = [
    ["data", "bad retry", "retry", "ten"],  # not an int: skipped
    ["data", "bad event", "event", "a\nb"],  # a line break in the event type: skipped
    ["data", b"\xff\xfeok"],  # not UTF-8: kept, with U+FFFD for the bad bytes
    ["data", "fine", "unknown-field", "ignored"],
]


async def add_foreign_entries(server: RedisServer, key: str) -> None:
    for fields in FOREIGN:
        await command(server, "XADD", key, "*", *fields)


@needs_redis
async def test_replay_skips_foreign_entries_that_are_not_events(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = unique_prefix()
    with anyio.fail_after(10):
        async with Broadcaster(RedisBackend(redis_server.url, prefix=prefix)) as hub:
            first = await hub.publish("t", "first")
            await add_foreign_entries(redis_server, prefix + "t")
            last = await hub.publish("t", "last")
            with caplog.at_level(logging.WARNING, logger="trio_sse"):
                async with hub.subscribe("t", last_event_id=first) as events:
                    replayed = [await events.receive() for _ in range(3)]
    assert [event.data for event in replayed] == ["\ufffd\ufffdok", "fine", "last"]
    assert replayed[-1].id == last
    skipped = [record for record in caplog.records if "not a valid event" in record.message]
    assert len(skipped) == 2


@needs_redis
async def test_live_delivery_skips_foreign_entries_too(redis_server: RedisServer) -> None:
    prefix = unique_prefix()
    with anyio.fail_after(10):
        async with (
            Broadcaster(RedisBackend(redis_server.url, prefix=prefix, read_block=0.05)) as hub,
            hub.subscribe("t") as events,
        ):
            await add_foreign_entries(redis_server, prefix + "t")
            await hub.publish("t", "ours")
            received = [await events.receive() for _ in range(3)]
    assert [event.data for event in received] == ["\ufffd\ufffdok", "fine", "ours"]


@needs_redis
async def test_a_replay_longer_than_one_page_has_no_gap_and_no_duplicate(
    redis_server: RedisServer,
) -> None:
    count = 1205  # the backend reads the history 1000 entries at a time
    with anyio.fail_after(60):
        async with Broadcaster(
            RedisBackend(redis_server.url, prefix=unique_prefix()), history=5000
        ) as hub:
            ids = [await hub.publish("t", number) for number in range(count)]
            async with hub.subscribe("t", last_event_id=ids[0]) as events:
                replayed = [await events.receive() for _ in range(count - 1)]
    assert [event.id for event in replayed] == ids[1:]
    assert [event.data for event in replayed] == [str(number) for number in range(1, count)]


@needs_redis
async def test_a_redis_backend_serves_one_hub(redis_server: RedisServer) -> None:
    backend = RedisBackend(redis_server.url, prefix=unique_prefix())
    with anyio.fail_after(10):
        async with Broadcaster(backend) as hub:
            with pytest.raises(RuntimeError, match="already serves a Broadcaster"):
                async with Broadcaster(backend):
                    pass
            assert await hub.publish("t", "still served")


# -- connections ---------------------------------------------------------------------------------


@needs_redis
async def test_refused_credentials_are_a_connection_error(redis_server: RedisServer) -> None:
    # No such user here. (A password alone is accepted: HELLO's AUTH as the "default" user,
    # who has "nopass" on this server; tests/test_redis_acl.py has one that requires one.)
    url = f"redis://someone:secret@127.0.0.1:{redis_server.port}/0"
    with anyio.fail_after(10), pytest.raises(RedisConnectionError) as info:
        async with Broadcaster(RedisBackend(url)):
            pass
    assert "refused the connection" in str(info.value)
    assert "secret" not in str(info.value)


@needs_redis
async def test_the_url_database_is_selected(redis_server: RedisServer) -> None:
    prefix = unique_prefix()
    url = f"redis://127.0.0.1:{redis_server.port}/3"
    with anyio.fail_after(10):
        async with Broadcaster(RedisBackend(url, prefix=prefix)) as hub:
            event_id = await hub.publish("t", "in db 3")
        assert await command(redis_server, "XLEN", prefix + "t", db=3) == 1
        assert await command(redis_server, "XLEN", prefix + "t", db=0) == 0
    assert event_id


# -- options (no server) ---------------------------------------------------------------------


def test_a_url_must_be_a_str_or_a_client() -> None:
    with pytest.raises(TypeError, match="url must be a redis://, rediss:// or unix:// URL"):
        RedisBackend(b"redis://h")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"prefix": 5}, TypeError, "prefix must be a str, got int"),
        ({"read_block": 0}, ValueError, r"read_block must be > 0 \(seconds\)"),
        ({"read_block": "1"}, TypeError, "read_block must be a number of seconds"),
        ({"read_block": math.inf}, ValueError, "read_block must be a finite number"),
        ({"read_count": 0}, ValueError, "read_count must be >= 1"),
        ({"ssl_context": "ctx"}, TypeError, "ssl_context must be an ssl.SSLContext or None"),
        (
            {"connect_timeout": "5"},
            TypeError,
            "connect_timeout must be a number of seconds or None",
        ),
        ({"command_timeout": 0}, ValueError, r"command_timeout must be > 0 \(seconds\)"),
        ({"command_timeout": True}, TypeError, "command_timeout must be a number of seconds"),
        ({"max_connections": 0}, ValueError, "max_connections must be >= 1"),
    ],
)
def test_backend_options_are_checked_when_built(
    options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        RedisBackend("redis://127.0.0.1:1/0", **options)  # type: ignore[arg-type]


def test_timeouts_may_be_none() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0", connect_timeout=None, command_timeout=None)
    assert backend.address == "redis://127.0.0.1:1/0"
