"""The Redis backend's error paths and edge cases, against a real ``redis-server``.

What other writers put in a topic's stream (entries that are not valid events are skipped,
invalid UTF-8 is replaced), a replay longer than one ``XRANGE`` page, the ``AUTH``/``SELECT``
of a URL's credentials and database, a command that outlives its timeout, misuse of one
connection by two tasks, and the options' checks.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import anyio
import anyio.abc
import pytest

from trio_sse import Broadcaster
from trio_sse.backends import RedisBackend, RedisConnectionError
from trio_sse.backends._resp import (
    RedisAddress,
    RedisConnection,
    RedisPool,
    _ReplyReader,
    parse_redis_url,
)

from .helpers import ChunkStream
from .redis_server import RedisServer

pytestmark = pytest.mark.anyio
needs_redis = pytest.mark.service("redis-server")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def unique_prefix() -> str:
    return f"edges-{uuid.uuid4().hex[:8]}:"


async def command(server: RedisServer, *args: str | bytes | int, db: int = 0) -> object:
    connection = await RedisConnection.open(RedisAddress(port=server.port, db=db))
    try:
        return await connection.execute(*args)
    finally:
        await connection.aclose()


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
@pytest.mark.parametrize("credentials", [":secret@", "someone:secret@"])
async def test_refused_credentials_are_a_connection_error(
    redis_server: RedisServer, credentials: str
) -> None:
    # This server has no password: AUTH is refused, with or without a user name.
    address = parse_redis_url(f"redis://{credentials}127.0.0.1:{redis_server.port}/0")
    with anyio.fail_after(10), pytest.raises(RedisConnectionError, match="refused the connection"):
        await RedisConnection.open(address)


@needs_redis
async def test_the_url_database_is_selected(redis_server: RedisServer) -> None:
    key = f"edges-{uuid.uuid4().hex[:8]}"
    with anyio.fail_after(10):
        connection = await RedisConnection.open(
            parse_redis_url(f"redis://127.0.0.1:{redis_server.port}/3")
        )
        try:
            assert await connection.execute("SET", key, "in db 3") == "OK"
        finally:
            await connection.aclose()
        assert await command(redis_server, "GET", key, db=3) == b"in db 3"
        assert await command(redis_server, "GET", key, db=0) is None


@needs_redis
async def test_a_command_past_its_timeout_breaks_the_connection(redis_server: RedisServer) -> None:
    with anyio.fail_after(10):
        connection = await RedisConnection.open(RedisAddress(port=redis_server.port))
        connection.timeout = 0.1
        try:
            # BLPOP on an empty list: Redis answers after 2 s, past the 0.1 s timeout.
            with pytest.raises(RedisConnectionError, match=r"did not answer BLPOP within 0\.1 s"):
                await connection.execute("BLPOP", f"edges-{uuid.uuid4().hex[:8]}", 2)
            assert connection.broken
            with pytest.raises(RedisConnectionError, match="closed"):
                await connection.execute("PING")
        finally:
            await connection.aclose()


@needs_redis
async def test_one_connection_refuses_two_commands_at_once(redis_server: RedisServer) -> None:
    with anyio.fail_after(10):
        connection = await RedisConnection.open(RedisAddress(port=redis_server.port))
        try:
            async with anyio.create_task_group() as group:
                # BLPOP on an empty list: Redis answers after 1 s.
                group.start_soon(connection.execute, "BLPOP", f"edges-{uuid.uuid4().hex[:8]}", 1)
                await anyio.sleep(0.05)
                with pytest.raises(RuntimeError, match="called concurrently"):
                    await connection.execute("PING")
            # The first command was not disturbed: the connection still works.
            assert await connection.execute("PING") == "PONG"
        finally:
            await connection.aclose()


@needs_redis
async def test_a_command_with_a_bad_argument_leaves_the_connection_usable(
    redis_server: RedisServer,
) -> None:
    # The argument is refused before anything is sent; the connection (and the pool it goes
    # back to) must still serve the next command. It used to stay "busy" for ever: every
    # later command on it raised "called concurrently".
    pool = RedisPool(RedisAddress(port=redis_server.port), size=1)
    try:
        with anyio.fail_after(10):
            with pytest.raises(TypeError, match=r"str, bytes or int, got 1\.5"):
                await pool.execute("SET", f"edges-{uuid.uuid4().hex[:8]}", 1.5)  # type: ignore[arg-type]
            assert await pool.execute("PING") == "PONG"
            connection = await pool.connect()
            try:
                with pytest.raises(TypeError):
                    await connection.execute("ECHO", None)  # type: ignore[arg-type]
                assert await connection.execute("ECHO", "still") == b"still"
            finally:
                await connection.aclose()
    finally:
        await pool.aclose()


# -- parsing and options (no server) -------------------------------------------------------------


async def test_a_reply_line_without_end_is_refused_past_64_kib() -> None:
    reader = _ReplyReader(ChunkStream(b"+" + b"x" * (70 * 1024), 8192))
    with pytest.raises(RedisConnectionError, match="longer than 64 KiB"):
        await reader.reply()


async def test_a_long_bulk_string_is_not_a_long_line() -> None:
    data = b"x" * (70 * 1024)
    reader = _ReplyReader(ChunkStream(b"$%d\r\n%s\r\n" % (len(data), data), 8192))
    assert await reader.reply() == data


def test_a_url_must_be_a_str() -> None:
    with pytest.raises(TypeError, match="the Redis URL must be a str, got bytes"):
        parse_redis_url(b"redis://h")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"prefix": 5}, TypeError, "prefix must be a str, got int"),
        ({"read_block": 0}, ValueError, "read_block must be a number of seconds > 0"),
        ({"read_block": "1"}, ValueError, "read_block must be a number of seconds > 0"),
        ({"read_count": 0}, ValueError, "read_count must be an int >= 1"),
        (
            {"connect_timeout": "5"},
            TypeError,
            "connect_timeout must be a number of seconds or None",
        ),
        ({"command_timeout": 0}, ValueError, r"command_timeout must be > 0 \(or None"),
        ({"command_timeout": True}, TypeError, "command_timeout must be a number of seconds"),
        ({"max_connections": 0}, ValueError, "max_connections must be an int >= 1"),
    ],
)
def test_backend_options_are_checked_when_built(
    options: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        RedisBackend("redis://127.0.0.1:1/0", **options)  # type: ignore[arg-type]


def test_a_pool_without_timeouts_keeps_none() -> None:
    pool = RedisPool(RedisAddress(), connect_timeout=None, command_timeout=None)
    assert (pool.connect_timeout, pool.command_timeout) == (None, None)
