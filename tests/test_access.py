"""Authorization on the hub (issue 16 items 1 and 5): the hook, per-event filters, revocation,
and the hostile cases, on the memory backend; in-process, then over a real server.

Every test that a subscriber could read something it may not checks what it *did* read,
through a sentinel published last: no forbidden event arrived before it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Hashable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import trio_sse
from trio_sse import (
    Access,
    AccessError,
    AuthorizationError,
    AuthorizationTimeout,
    Broadcaster,
    EventSourceResponse,
    Forbidden,
    ServerSentEvent,
)
from trio_sse._subscriber import FilteredSubscriber, Subscriber
from trio_sse.client import SSEStatusError, connect
from trio_sse.testing import open_app, open_event_stream

from .broadcast_suite import drain, ids_of, reset_data, take
from .helpers import app_for
from .live import free_port, kill_process_group, start_server_process
from .processes import REPO
from .servers import auth_app

pytestmark = pytest.mark.anyio


def grant(*principals: Hashable, **options: Any) -> Any:
    async def authorize(topic: str) -> Access | None:
        return Access(*principals, **options)

    return authorize


async def refuse(topic: str) -> Access | None:
    return None


def public_only(event: ServerSentEvent) -> bool:
    return event.event != "secret"


async def publish_mix(hub: Broadcaster, topic: str, count: int) -> list[str]:
    """Publish *count* events, every third one ``event: secret``; the public ids."""
    public = []
    for number in range(count):
        secret = number % 3 == 1
        event_id = await hub.publish(
            topic, ServerSentEvent(f"m{number}", event="secret" if secret else None)
        )
        if not secret:
            public.append(event_id)
    return public


# -- the hook ---------------------------------------------------------------------------------


async def test_a_refusal_raises_forbidden_and_registers_nothing() -> None:
    asked: list[str] = []

    async def authorize(topic: str) -> Access | None:
        asked.append(topic)
        return None

    async with Broadcaster() as hub:
        await hub.publish("t", "history")
        with anyio.fail_after(5), pytest.raises(Forbidden) as caught:
            async with hub.subscribe("t", last_event_id="x", authorize=authorize):
                pytest.fail("a refused subscription must not be entered")
        assert hub.stats().subscribers == {}
    assert asked == ["t"]
    assert caught.value.status_code == 403
    assert isinstance(caught.value, AccessError)


async def test_a_hook_may_raise_forbidden_itself() -> None:
    async def authorize(topic: str) -> Access | None:
        raise Forbidden("not yours")

    async with Broadcaster() as hub:
        with anyio.fail_after(5), pytest.raises(Forbidden, match="not yours"):
            async with hub.subscribe("t", authorize=authorize):
                pass


async def test_a_hook_that_raises_is_an_authorization_error_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="trio_sse")

    async def authorize(topic: str) -> Access | None:
        raise KeyError("session store")

    async with Broadcaster() as hub:
        with anyio.fail_after(5), pytest.raises(AuthorizationError) as caught:
            async with hub.subscribe("t", authorize=authorize):
                pass
        assert hub.stats().subscribers == {}
    assert caught.value.status_code == 500
    assert isinstance(caught.value.__cause__, KeyError)
    assert len([r for r in caught_records(caplog) if "authorize hook raised" in r]) == 1


def caught_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


async def test_a_hook_that_hangs_is_cancelled_at_its_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="trio_sse")
    cancelled = []

    async def authorize(topic: str) -> Access | None:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.append(topic)
        raise AssertionError("unreachable")

    async with Broadcaster() as hub:
        with anyio.fail_after(5), pytest.raises(AuthorizationTimeout) as caught:
            async with hub.subscribe("t", authorize=authorize, authorize_timeout=0.05):
                pass
        assert hub.stats().subscribers == {}
    assert cancelled == ["t"]
    assert caught.value.status_code == 503
    assert isinstance(caught.value, TimeoutError)
    assert len([r for r in caught_records(caplog) if "did not answer" in r]) == 1


@pytest.mark.parametrize("answer", [True, "yes", 1])
async def test_anything_but_an_access_is_not_a_grant(answer: object) -> None:
    async def authorize(topic: str) -> Any:
        return answer

    async with Broadcaster() as hub:
        with anyio.fail_after(5), pytest.raises(AuthorizationError, match=r"trio_sse\.Access"):
            async with hub.subscribe("t", authorize=authorize):
                pass


async def test_the_options_are_checked_at_the_call() -> None:
    hub = Broadcaster()
    with pytest.raises(TypeError, match="authorize must be callable"):
        hub.subscribe("t", authorize="admin")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only with an authorize hook"):
        hub.stream("t", authorize_timeout=1)
    with pytest.raises(ValueError, match="authorize_timeout must be > 0"):
        hub.subscribe("t", authorize=refuse, authorize_timeout=0)
    with pytest.raises(TypeError, match="authorize_timeout must be a number"):
        hub.stream("t", authorize=refuse, authorize_timeout="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="principal must be hashable"):
        Access(["a", "list"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="allow_event must be callable"):
        Access("u", allow_event="no")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="principal must be hashable"):
        hub.revoke({"a": 1})  # type: ignore[arg-type]
    access = Access("u", "u", ("tenant", 1))
    assert access.principals == ("u", ("tenant", 1))
    assert repr(access) == "Access('u', ('tenant', 1))"
    with pytest.raises(AttributeError):
        access.principals = ()


async def test_no_hook_and_no_filter_cost_the_delivery_loop_nothing() -> None:
    # The delivery loop is the same for all; what differs is the subscriber's class, and only
    # a grant with a filter makes a FilteredSubscriber.
    async with Broadcaster() as hub, AsyncExitStack() as stack:
        await stack.enter_async_context(hub.subscribe("plain"))
        await stack.enter_async_context(hub.subscribe("granted", authorize=grant()))
        await stack.enter_async_context(
            hub.subscribe("filtered", authorize=grant(allow_event=public_only))
        )
        kinds = {topic: type(next(iter(s))) for topic, s in hub._topics.items()}
        assert len(hub._principals) == 0  # no principal named: nothing to revoke
    assert kinds == {"plain": Subscriber, "granted": Subscriber, "filtered": FilteredSubscriber}


# -- per-event filters: live, replay, backlog ----------------------------------------------------


async def test_a_filter_withholds_live_events() -> None:
    async with (
        Broadcaster() as hub,
        hub.subscribe("t", authorize=grant(allow_event=public_only)) as events,
    ):
        public = await publish_mix(hub, "t", 9)
        sentinel = await hub.publish("t", "end")
        received = await take(events, len(public) + 1)
        assert hub.stats().withheld == 3
    assert ids_of(received) == [*public, sentinel]


@pytest.mark.parametrize("buffer", [1, 4, 256])
async def test_a_filter_withholds_replayed_and_queued_events_from_every_cursor(
    buffer: int,
) -> None:
    # Replays larger and smaller than the buffer, with live events queued behind them.
    async with Broadcaster(history=50) as hub:
        everything = [await hub.publish("t", ServerSentEvent("x", event="secret"))]
        for number in range(12):
            secret = number % 3 == 1
            everything.append(
                await hub.publish("t", ServerSentEvent(str(number), event="secret" * secret))
            )
        async with AsyncExitStack() as stack:
            channels = [
                await stack.enter_async_context(
                    hub.subscribe(
                        "t",
                        last_event_id=cursor,
                        max_buffer_size=buffer,
                        on_overflow="block",
                        block_timeout=30,
                        authorize=grant(allow_event=public_only),
                    )
                )
                for cursor in everything
            ]
            received: list[list[ServerSentEvent]] = [[] for _ in channels]

            async def read(index: int) -> None:
                async for event in channels[index]:
                    received[index].append(event)
                    if event.data == "sentinel":
                        return

            with anyio.fail_after(10):
                async with anyio.create_task_group() as group:
                    for index in range(len(channels)):
                        group.start_soon(read, index)
                    for number in range(6):
                        await hub.publish(
                            "t", ServerSentEvent(f"live{number}", event="secret" * (number % 2))
                        )
                    await hub.publish("t", "sentinel")
    for events in received:
        assert all(event.event != "secret" for event in events)
        assert [event.data for event in events][-4:] == ["live0", "live2", "live4", "sentinel"]


async def test_a_filter_that_raises_withholds_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="trio_sse")

    def broken(event: ServerSentEvent) -> bool:
        if event.data != "fine":
            raise ValueError("bad filter")
        return True

    async with (
        Broadcaster() as hub,
        hub.subscribe("t", authorize=grant(allow_event=broken)) as events,
    ):
        for _ in range(3):
            await hub.publish("t", "boom")
        fine = await hub.publish("t", "fine")
        assert ids_of(await take(events, 1)) == [fine]
    assert len([r for r in caught_records(caplog) if "allow_event raised" in r]) == 1


# -- revocation -------------------------------------------------------------------------------


async def test_revoke_ends_the_principals_streams_with_a_farewell() -> None:
    alice = ("user", "alice")
    async with Broadcaster() as hub:
        async with (
            hub.subscribe("a", authorize=grant(alice, ("tenant", "acme"))) as a1,
            hub.subscribe("b", authorize=grant(alice)) as a2,
            hub.subscribe("a", authorize=grant(("user", "bob"), ("tenant", "acme"))) as bob,
        ):
            await hub.publish("a", "buffered, not read yet")
            assert hub.revoke(alice) == 2
            for channel in (a1, a2):
                (farewell,) = await drain(channel)  # what was buffered is discarded
                assert (farewell.event, farewell.id) == ("revoked", None)
                assert json.loads(farewell.data or "") == {"reason": "revoked"}
            later = await hub.publish("a", "bob still reads")
            assert [event.data for event in await take(bob, 2)][1] == "bob still reads"
            assert hub.stats().revoked == 2
            assert hub.stats().subscribers == {"a": 1}
            assert hub.revoke(alice) == 0
            assert hub.revoke(("tenant", "acme"), farewell=None) == 1
            assert await drain(bob) == []
        assert len(hub._principals) == 0
    assert later


async def test_a_custom_farewell() -> None:
    async with Broadcaster() as hub, hub.subscribe("t", authorize=grant("u")) as events:
        assert hub.revoke("u", farewell={"data": "bye", "event": "logout"}) == 1
        (farewell,) = await drain(events)
    assert (farewell.event, farewell.data) == ("logout", "bye")


async def test_a_principal_revoked_while_its_hook_runs_is_refused() -> None:
    entered = anyio.Event()
    answer = anyio.Event()

    async def authorize(topic: str) -> Access | None:
        entered.set()
        await answer.wait()
        return Access("u")

    async def other(topic: str) -> Access | None:
        await answer.wait()
        return Access("v")

    async with Broadcaster() as hub:
        outcomes: dict[str, object] = {}

        async def subscribe(name: str, hook: Any) -> None:
            try:
                async with hub.subscribe("t", authorize=hook):
                    outcomes[name] = "entered"
            except Forbidden as exc:
                outcomes[name] = exc

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(subscribe, "u", authorize)
                group.start_soon(subscribe, "v", other)
                await entered.wait()
                assert hub.revoke("u") == 0  # nothing registered yet...
                answer.set()
        assert isinstance(outcomes["u"], Forbidden)  # ...but it is refused when it answers
        assert outcomes["v"] == "entered"
        assert hub._principals._revoked == {}  # nothing remembered once no hook runs


async def test_revoke_during_a_replay_stops_it() -> None:
    async with Broadcaster(history=100) as hub:
        ids = [await hub.publish("t", number) for number in range(50)]
        async with hub.subscribe(
            "t", last_event_id=ids[0], max_buffer_size=2, authorize=grant("u")
        ) as events:
            with anyio.fail_after(5):
                first = await events.receive()  # the replay task is now sending the rest
            hub.revoke("u")
            rest = await drain(events)
    assert first.id == ids[1]
    assert [event.event for event in rest] == ["revoked"]


# -- cursors ---------------------------------------------------------------------------------


async def test_a_cursor_from_another_topic_reads_nothing_of_it() -> None:
    async with Broadcaster() as hub:
        public = [await hub.publish("public", "p0")]
        secret = [await hub.publish("secret", f"s{n}") for n in range(3)]
        public.append(await hub.publish("public", "p1"))
        for cursor in (*secret, f"{secret[0]}\x00", secret[0].upper()):
            async with hub.subscribe("public", last_event_id=cursor) as events:
                sentinel = await hub.publish("public", "sentinel")
                reset, *rest = await take(events, len(public) + 2)
                assert reset_data(reset)["reason"] == "unknown-id"
                assert ids_of(rest) == [*public, sentinel]
                public.append(sentinel)


# -- over HTTP, in-process ----------------------------------------------------------------------


def hub_of(running: Any) -> Broadcaster:
    hub = running.state["hub"]
    assert isinstance(hub, Broadcaster)
    return hub


ALICE = {"cookie": "session=alice-token"}


async def test_no_credential_no_topic_a_403_before_any_header() -> None:
    with anyio.fail_after(10):
        async with open_app(auth_app.app) as running:
            hub = hub_of(running)
            await hub.publish("acme-orders", "secret order")
            cases = [
                ("/events/news", {}),  # nobody
                ("/events/news?token=nobody", {}),
                ("/events/acme-orders?token=bob-token", {"last-event-id": "x"}),  # not bob's
            ]
            for path, headers in cases:
                async with open_event_stream(running, path, headers=headers) as stream:
                    assert stream.status_code == 403
                    assert stream.headers["content-type"] == "text/plain; charset=utf-8"
                    body = b"".join([chunk async for chunk in stream.iter_bytes()])
                assert body == b"Forbidden\n"
            async with open_event_stream(running, "/events/news", method="HEAD") as stream:
                assert stream.status_code == 403
                assert [chunk async for chunk in stream.iter_bytes()] == []
            assert hub.stats().subscribers == {}


async def test_cookie_and_query_token_each_open_the_stream() -> None:
    with anyio.fail_after(10):
        async with open_app(auth_app.app) as running:
            hub = hub_of(running)
            for path, headers in (
                ("/events/acme-orders", ALICE),
                ("/events/acme-orders?token=alice-token", {}),
            ):
                async with open_event_stream(running, path, headers=headers) as stream:
                    assert stream.status_code == 200
                    await anyio.wait_all_tasks_blocked()
                    event_id = await hub.publish("acme-orders", "order")
                    assert ids_of(await stream.read_events(1)) == [event_id]


async def test_tenants_never_see_each_others_events_live_or_replayed() -> None:
    with anyio.fail_after(10):
        async with open_app(auth_app.app) as running:
            hub = hub_of(running)
            first = await hub.publish("news", "for all")
            await hub.publish("news", ServerSentEvent("globex only", event="tenant:globex"))
            mine = await hub.publish("news", ServerSentEvent("acme only", event="tenant:acme"))
            headers = {**ALICE, "last-event-id": first}
            async with open_event_stream(running, "/events/news", headers=headers) as stream:
                assert ids_of(await stream.read_events(1)) == [mine]
                await hub.publish("news", ServerSentEvent("globex", event="tenant:globex"))
                sentinel = await hub.publish("news", "sentinel")
                assert ids_of(await stream.read_events(1)) == [sentinel]


async def test_a_broken_hook_is_a_500_and_a_hanging_one_a_503(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="trio_sse")
    with anyio.fail_after(10):
        async with open_app(auth_app.app) as running:
            for path, status in (("/broken/news", 500), ("/hanging/news", 503)):
                async with open_event_stream(running, path) as stream:
                    assert stream.status_code == status
                    assert stream.headers["content-type"].startswith("text/plain")
                    assert [event async for event in stream] == []
            assert hub_of(running).stats().subscribers == {}
    messages = caught_records(caplog)
    assert len([m for m in messages if "raised" in m]) == 1
    assert len([m for m in messages if "did not answer" in m]) == 1
    assert "session store is down" not in "".join(messages[:1])  # the traceback, not the line


async def test_revoked_user_gets_a_farewell_and_its_old_cursor_a_403() -> None:
    with anyio.fail_after(10):
        async with open_app(auth_app.app) as running:
            hub = hub_of(running)
            async with (
                open_event_stream(running, "/events/news", headers=ALICE) as alice,
                open_event_stream(running, "/events/news?token=bob-token") as bob,
            ):
                await anyio.wait_all_tasks_blocked()
                seen = await hub.publish("news", "seen")
                assert ids_of(await alice.read_events(1)) == [seen]
                async with open_event_stream(running, "/revoke/alice", method="POST") as answer:
                    assert [chunk async for chunk in answer.iter_bytes()] == [b"1"]
                events = [event async for event in alice]
                assert [event.event for event in events] == ["revoked"]
                assert alice.complete  # a clean end of body
                assert alice.last_event_id == seen
                after = await hub.publish("news", "after")
                assert ids_of(await bob.read_events(2)) == [seen, after]
            headers = {**ALICE, "last-event-id": seen}
            async with open_event_stream(running, "/events/news", headers=headers) as again:
                assert again.status_code == 403
                assert [event async for event in again] == []


@pytest.mark.parametrize(
    ("query", "echo"),
    [
        pytest.param(
            "x%0A%0Aevent:%20tenant:globex%0Adata:%20forged",
            "x\n\nevent: tenant:globex\ndata: forged",
            id="injection",
        ),
        pytest.param("z" * 5000, None, id="oversized"),
        pytest.param("%FF%FE", "\ufffd\ufffd", id="invalid-utf8"),
    ],
)
async def test_forged_cursors_are_a_reset_never_an_error_or_a_leak(
    query: str, echo: str | None
) -> None:
    with anyio.fail_after(10):
        async with open_app(auth_app.app) as running:
            hub = hub_of(running)
            kept = await hub.publish("news", "public")
            await hub.publish("news", ServerSentEvent("globex only", event="tenant:globex"))
            path = f"/events/news?token=alice-token&lastEventId={query}"
            async with open_event_stream(running, path) as stream:
                assert stream.status_code == 200
                reset, event = await stream.read_events(2)
                sentinel = await hub.publish("news", "sentinel")
                (last,) = await stream.read_events(1)
    assert reset_data(reset) == {"reason": "unknown-id", "last_event_id": echo}
    assert (event.id, last.id) == (kept, sentinel)


async def test_a_refusal_through_a_plain_app_route() -> None:
    async with Broadcaster() as hub:
        app = app_for(lambda: EventSourceResponse(hub.stream("t", authorize=refuse)))
        with anyio.fail_after(5):
            async with open_event_stream(app) as stream:
                assert stream.status_code == 403
        assert hub.stats().subscribers == {}


# -- over a real server -------------------------------------------------------------------------


async def test_over_a_real_server_revocation_then_the_reconnect_is_refused(
    anyio_backend: str, tmp_path: Path
) -> None:
    # hypercorn (trio or asyncio worker, as the test) in its own process group; the client
    # reconnects as a browser's EventSource does, with its Last-Event-ID.
    port = free_port()
    log = tmp_path / "server.log"
    server = await start_server_process(
        "tests.servers.auth_app:app", port, backend=anyio_backend, log=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with anyio.fail_after(30):
            async with httpx.AsyncClient() as http:
                while True:
                    try:
                        if (await http.get(f"{url}/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await anyio.sleep(0.05)
                status = (await http.get(f"{url}/events/news")).status_code
                assert status == 403
                hung = await http.get(f"{url}/hanging/news")
                assert (hung.status_code, hung.text) == (503, "Service Unavailable\n")
                received: list[ServerSentEvent] = []
                source = connect(
                    http, f"{url}/events/news?token=alice-token", backoff=0.01, jitter=0.0
                )

                async def read_until_refused() -> None:
                    async with source:
                        await http.post(f"{url}/publish/news", content="one")
                        await http.post(
                            f"{url}/publish/news?event=tenant:globex", content="not for acme"
                        )
                        async for event in source:
                            received.append(event)
                            if event.data == "one":
                                assert (await http.post(f"{url}/revoke/alice")).text == "1"

                with pytest.raises(SSEStatusError) as caught:
                    await read_until_refused()
                assert caught.value.status_code == 403
                assert source.last_event_id == received[0].id
    finally:
        await kill_process_group(server)
    assert [(event.event, event.data) for event in received] == [
        (None, "one"),
        ("revoked", '{"reason":"revoked"}'),
    ], log.read_text()


def test_the_names_are_public() -> None:
    for name in (
        "Access",
        "AccessError",
        "Forbidden",
        "AuthorizationError",
        "AuthorizationTimeout",
    ):
        assert getattr(trio_sse, name).__doc__


# -- the README's example -----------------------------------------------------------------------


def security_example() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("\n## Security: who may listen\n")
    section = readme[start : readme.index("\n## ", start + 1)]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


class ReadmeUser:
    def __init__(self, user_id: int, *, is_staff: bool) -> None:
        self.id, self.tenant, self.is_staff = user_id, "acme", is_staff

    async def may_read(self, topic: str) -> bool:
        return topic == "orders"


async def test_the_readme_example_refuses_filters_and_revokes() -> None:
    async def current_user(request: Request) -> ReadmeUser | None:
        name = request.cookies.get("session")
        return {"staff": ReadmeUser(1, is_staff=True), "clerk": ReadmeUser(2, is_staff=False)}.get(
            name or ""
        )

    namespace: dict[str, Any] = {"current_user": current_user}
    exec(compile(security_example(), "README.md", "exec"), namespace)
    async with Broadcaster() as hub:

        async def endpoint(request: Request) -> Response:
            request.state.hub = hub
            response: Response = await namespace["events"](request)
            return response

        app = Starlette(routes=[Route("/events/{topic}", endpoint)])
        with anyio.fail_after(10):
            for path, cookie in (("/events/orders", ""), ("/events/payroll", "session=staff")):
                async with open_event_stream(app, path, headers={"cookie": cookie}) as stream:
                    assert stream.status_code == 403
            async with (
                open_event_stream(
                    app, "/events/orders", headers={"cookie": "session=staff"}
                ) as staff,
                open_event_stream(
                    app, "/events/orders", headers={"cookie": "session=clerk"}
                ) as clerk,
            ):
                memo = await hub.publish("orders", ServerSentEvent("memo", event="staff-only"))
                order = await hub.publish("orders", "order")
                assert ids_of(await staff.read_events(2)) == [memo, order]
                assert ids_of(await clerk.read_events(1)) == [order]
                assert hub.revoke(("tenant", "acme")) == 2
                assert [event.event async for event in clerk] == ["revoked"]


async def test_revocations_are_kept_only_while_a_hook_that_began_before_them_runs() -> None:
    # A busy server always has some hook running: what it remembers stays bounded anyway.
    first_may_answer, second_may_answer = anyio.Event(), anyio.Event()

    def held(until: anyio.Event) -> Any:
        async def authorize(topic: str) -> Access | None:
            await until.wait()
            return Access("someone")

        return authorize

    async with Broadcaster() as hub:

        async def subscribe(hook: Any) -> None:
            async with hub.subscribe("t", authorize=hook):
                pass

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(subscribe, held(first_may_answer))
                await anyio.wait_all_tasks_blocked()
                for number in range(100):
                    hub.revoke(("user", number))
                group.start_soon(subscribe, held(second_may_answer))
                await anyio.wait_all_tasks_blocked()
                assert len(hub._principals._revoked) == 100
                first_may_answer.set()
                await anyio.wait_all_tasks_blocked()
                assert hub._principals._revoked == {}  # the second hook began after them
                hub.revoke(("user", "late"))
                assert list(hub._principals._revoked) == [("user", "late")]
                second_may_answer.set()
        assert hub._principals._revoked == {}
