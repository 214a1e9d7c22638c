"""ACL users on a real ``redis-server``: a user allowed only the backend's key prefix works;
one that lacks a command fails at start, naming it; a password never shows in errors or logs."""

from __future__ import annotations

import logging
import traceback
import uuid
from urllib.parse import quote

import anyio
import pytest

from trio_sse import Broadcaster, ServerSentEvent
from trio_sse.backends import RedisBackend, RedisConnectionError, RedisReplyError

from .broadcast_suite import ids_of, take
from .redis_server import RedisServer, command

pytestmark = [pytest.mark.anyio, pytest.mark.service("redis-server")]

PASSWORD = "s3cret-p@ss/word"  # needs quoting in a URL
COMMANDS = ("+xadd", "+xrange", "+xrevrange", "+xread", "+client|unblock")


async def add_user(server: RedisServer, prefix: str, *rules: str) -> str:
    name = f"user-{uuid.uuid4().hex[:8]}"
    await command(server.url, "ACL SETUSER", name, "on", f">{PASSWORD}", f"~{prefix}*", *rules)
    return name


def url_for(server: RedisServer, user: str, password: str = PASSWORD) -> str:
    return f"redis://{user}:{quote(password, safe='')}@127.0.0.1:{server.port}/0"


def prefix() -> str:
    return f"acl-{uuid.uuid4().hex[:8]}:"


async def test_a_user_allowed_only_the_prefix_works(redis_server: RedisServer) -> None:
    keys = prefix()
    user = await add_user(redis_server, keys, *COMMANDS)
    backend = RedisBackend(url_for(redis_server, user), prefix=keys)
    assert PASSWORD not in repr(backend) and PASSWORD not in backend.address
    with anyio.fail_after(10):
        async with Broadcaster(backend) as hub:
            async with hub.subscribe("t") as events:
                first = await hub.publish("t", "allowed")
                assert ids_of(await take(events, 1)) == [first]
            second = await hub.publish("t", "again")
            async with hub.subscribe("t", last_event_id=first) as resumed:
                assert ids_of(await take(resumed, 1)) == [second]


@pytest.mark.parametrize("denied", ["+xadd", "+xread", "+xrange"])
async def test_a_user_without_a_command_fails_at_start(
    redis_server: RedisServer, denied: str
) -> None:
    keys = prefix()
    user = await add_user(redis_server, keys, *(rule for rule in COMMANDS if rule != denied))
    with anyio.fail_after(10), pytest.raises(RedisReplyError) as info:
        async with Broadcaster(RedisBackend(url_for(redis_server, user), prefix=keys)):
            pytest.fail("the hub started without the right to run " + denied[1:])
    message = str(info.value)
    assert f"may not run {denied[1:].upper()} on the keys {keys}*" in message
    assert "NOPERM" in message


async def test_a_user_for_other_keys_fails_at_start(redis_server: RedisServer) -> None:
    user = await add_user(redis_server, "elsewhere:", *COMMANDS)
    with anyio.fail_after(10), pytest.raises(RedisReplyError, match="may not run XADD"):
        async with Broadcaster(RedisBackend(url_for(redis_server, user), prefix=prefix())):
            pass


async def test_without_client_unblock_it_warns_and_still_delivers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    keys = prefix()
    user = await add_user(redis_server, keys, *COMMANDS[:-1])
    caplog.set_level(logging.WARNING, logger="trio_sse")
    backend = RedisBackend(url_for(redis_server, user), prefix=keys, read_block=0.1)
    with anyio.fail_after(10):
        # The second topic cannot wake the reader: read_block bounds its wait.
        async with (
            Broadcaster(backend) as hub,
            hub.subscribe("a") as first,
            hub.subscribe("b") as second,
        ):
            ids = [await hub.publish("a", "1"), await hub.publish("b", "2")]
            assert ids_of(await take(first, 1) + await take(second, 1)) == ids
    assert "denies CLIENT UNBLOCK" in caplog.text


async def test_the_password_never_appears_in_errors_or_logs(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    user = await add_user(redis_server, "p:", *COMMANDS)
    wrong = "wr0ng-" + PASSWORD
    caplog.set_level(logging.DEBUG)  # every logger: coredis' too
    backend = RedisBackend(url_for(redis_server, user, wrong), prefix="p:")
    with anyio.fail_after(10), pytest.raises(RedisConnectionError) as info:
        async with Broadcaster(backend):
            pass
    error = info.value
    shown = "".join(traceback.format_exception(error)) + repr(error) + repr(backend)
    assert "refused the connection" in str(error)
    assert f"redis://{user}@127.0.0.1:{redis_server.port}/0" in str(error)
    for secret in (wrong, quote(wrong, safe=""), PASSWORD):
        assert secret not in shown
        assert secret not in caplog.text


async def test_a_user_without_xinfo_publishes_past_a_taken_id(redis_server: RedisServer) -> None:
    """``XINFO`` (whether the stream was trimmed past a refused id) is optional: without it
    the publish goes on to the next id as before."""
    keys = prefix()
    user = await add_user(redis_server, keys, *COMMANDS)
    denied = await command(redis_server.url, "ACL", "DRYRUN", user, "XINFO", "STREAM", keys + "t")
    assert b"no permissions" in denied
    with anyio.fail_after(10):
        async with (
            Broadcaster(RedisBackend(url_for(redis_server, user), prefix=keys)) as hub,
            Broadcaster(RedisBackend(redis_server.url, prefix=keys)) as other,
        ):
            await other.publish("t", ServerSentEvent("ahead", id="99999999999990-0"))
            assert await hub.publish("t", "next") == "99999999999990-1"
