"""A client that leaves closes the producer's channel first; the producer is cancelled only
after ``disconnect_grace_period`` (issue 16 item 4).

What is asserted: the producer's next ``send`` raises ``anyio.BrokenResourceError``, its
``async with`` cleanup runs un-cancelled (it may await), nothing is logged, a producer that
keeps running past the grace period is cancelled, and ``0`` keeps the immediate
cancellation of sse-starlette. Then the point of it all: a connection pool whose release
awaits (as a database session's rollback does) loses no connection over 1,000 disconnects
in the middle of a query, where the immediate cancellation loses them, on trio and asyncio;
and the same with SQLAlchemy's async engine over aiosqlite (asyncio: SQLAlchemy's asyncio
extension runs on asyncio only).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from anyio.streams.memory import MemoryObjectSendStream

from trio_sse import EventSourceResponse
from trio_sse.testing import open_event_stream

pytestmark = pytest.mark.anyio

Sender = MemoryObjectSendStream[Any]


class Pool:
    """A pool of connections whose release awaits, as a database driver's does (a rollback
    on the wire): a cancellation at that await loses the connection."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Pool]:
        assert self.free > 0, "pool exhausted: connections were lost"
        self.free -= 1
        try:
            yield self
        finally:
            await anyio.lowlevel.checkpoint()  # the rollback; cancelled here, it is lost
            self.free += 1

    async def query(self, seconds: float) -> int:
        await anyio.sleep(seconds)
        return 1


async def leave_after_first_event(response: EventSourceResponse) -> None:
    """Read one event, then leave (a disconnect); returns once the ASGI call returned."""
    with anyio.fail_after(10):
        async with open_event_stream(response) as stream:
            await stream.read_events(1)


async def test_the_producer_sees_a_closed_channel_and_cleans_up_uncancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: dict[str, Any] = {}

    async def producer(send: Sender) -> None:
        try:
            async with send:
                await send.send("first")
                await anyio.sleep(0.05)  # mid-query when the client leaves
                seen["finished the query"] = True
                await send.send("second")
        except BaseException as exc:
            seen["raised"] = type(exc)
            await anyio.sleep(0.01)  # an awaited cleanup: possible only if not cancelled
            seen["cleaned up"] = True
            raise

    with caplog.at_level(logging.DEBUG, logger="trio_sse"):
        await leave_after_first_event(EventSourceResponse(producer))
    assert seen == {
        "finished the query": True,
        "raised": anyio.BrokenResourceError,
        "cleaned up": True,
    }
    assert [r for r in caplog.records if r.name == "trio_sse"] == []  # a normal end


async def test_a_producer_whose_tasks_send_ends_quietly(caplog: pytest.LogCaptureFixture) -> None:
    # The failed send comes out of the producer's own task group, in an exception group.
    async def producer(send: Sender) -> None:
        async def ticker() -> None:
            for number in range(100):
                await send.send(str(number))
                await anyio.sleep(0.01)

        async with send, anyio.create_task_group() as group:
            group.start_soon(ticker)

    with caplog.at_level(logging.DEBUG, logger="trio_sse"):
        await leave_after_first_event(EventSourceResponse(producer))
    assert [r for r in caplog.records if r.name == "trio_sse"] == []


async def test_a_producer_failing_on_a_channel_of_its_own_is_still_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A BrokenResourceError is the client leaving only when the client left: a producer that
    # sends into some other closed channel of its own has a bug, and it is logged.
    async def producer(send: Sender) -> None:
        other_send, other_receive = anyio.create_memory_object_stream[str](1)
        other_receive.close()
        async with send, other_send:
            await send.send("first")
            await other_send.send("nobody reads this")

    with anyio.fail_after(10), caplog.at_level(logging.ERROR, logger="trio_sse"):
        async with open_event_stream(EventSourceResponse(producer)) as stream:
            assert [event.data async for event in stream] == ["first"]
    [record] = [r for r in caplog.records if r.name == "trio_sse"]
    assert "the stream's producer raised" in record.getMessage()


async def test_an_async_generator_is_closed_uncancelled_too() -> None:
    seen: dict[str, Any] = {}

    async def rows() -> AsyncIterator[str]:
        try:
            yield "first"
            await anyio.sleep(0.05)
            seen["finished the query"] = True
            yield "second"
            yield "third"  # the pump's send of "second" fails: the generator is closed here
        finally:
            await anyio.sleep(0.01)
            seen["cleaned up"] = True

    await leave_after_first_event(EventSourceResponse(rows(), max_prefetch=1))
    assert seen == {"finished the query": True, "cleaned up": True}


async def test_a_producer_still_running_after_the_grace_period_is_cancelled() -> None:
    seen: dict[str, float] = {}

    async def stubborn(send: Sender) -> None:
        async with send:
            await send.send("first")
            try:
                await anyio.sleep_forever()
            except anyio.get_cancelled_exc_class():
                seen["cancelled_at"] = anyio.current_time()
                raise

    response = EventSourceResponse(stubborn, disconnect_grace_period=0.2)
    started = anyio.current_time()
    await leave_after_first_event(response)
    assert seen["cancelled_at"] - started >= 0.2 - 1e-3


async def test_no_grace_period_cancels_at_once_as_sse_starlette_does() -> None:
    seen: dict[str, Any] = {}

    async def producer(send: Sender) -> None:
        try:
            async with send:
                await send.send("first")
                await anyio.sleep(5)
        except BaseException as exc:
            seen["raised"] = type(exc)
            raise

    response = EventSourceResponse(producer, disconnect_grace_period=0)
    with anyio.fail_after(2):  # well before the producer's 5 s
        await leave_after_first_event(response)
    assert seen["raised"] is anyio.get_cancelled_exc_class()


def test_the_grace_period_is_an_option() -> None:
    assert EventSourceResponse.DEFAULT_DISCONNECT_GRACE_PERIOD == 1.0
    response = EventSourceResponse([])
    assert response.disconnect_grace_period == 1.0
    response.disconnect_grace_period = 2
    assert response.disconnect_grace_period == 2.0
    with pytest.raises(ValueError, match="disconnect_grace_period must be >= 0"):
        response.disconnect_grace_period = -1
    with pytest.raises(TypeError, match="disconnect_grace_period must be a number of seconds"):
        EventSourceResponse([], disconnect_grace_period="1s")  # type: ignore[arg-type]


async def disconnects_mid_query(pool: Pool, times: int, grace: float) -> None:
    async def report(send: Sender) -> None:
        async with pool.connection() as connection, send:
            await send.send("header")
            await send.send(str(await connection.query(0.002)))  # the client leaves meanwhile

    for _ in range(times):
        await leave_after_first_event(EventSourceResponse(report, disconnect_grace_period=grace))


async def test_a_pool_loses_no_connection_over_a_thousand_disconnects_mid_query() -> None:
    pool = Pool(size=4)
    with anyio.fail_after(120):
        await disconnects_mid_query(pool, 1000, grace=1.0)
    assert pool.free == pool.size


async def test_without_the_grace_period_the_pool_loses_connections() -> None:
    # The control: what the grace period prevents (a cancellation during the awaited release).
    pool = Pool(size=1000)
    with anyio.fail_after(60):
        await disconnects_mid_query(pool, 20, grace=0)
    assert pool.size - pool.free == 20


sqlalchemy_asyncio = pytest.mark.parametrize("anyio_backend", ["asyncio"])


@sqlalchemy_asyncio
async def test_sqlalchemy_async_sessions_return_every_connection(tmp_path: Any) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}", pool_size=3, max_overflow=0
    )
    slow = text(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) "
        "SELECT count(*) FROM c"
    )

    endings: list[type[BaseException]] = []

    async def report(send: Sender) -> None:
        try:
            async with AsyncSession(engine) as session, send:
                await send.send("header")
                count = (await session.execute(slow)).scalar_one()  # the client leaves now
                await send.send(str(count))
        except BaseException as exc:
            endings.append(type(exc))
            raise

    try:
        with anyio.fail_after(300):
            for _ in range(1000):
                await leave_after_first_event(EventSourceResponse(report))
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        # Every query ran to its end and every session closed through its error path, none
        # by a cancellation (SQLAlchemy survives those too, but the query is lost then).
        assert endings == [anyio.BrokenResourceError] * 1000
        async with AsyncSession(engine) as session:  # and the pool still serves queries
            assert (await session.execute(slow)).scalar_one() == 3000
    finally:
        await engine.dispose()


def test_the_database_example_keeps_its_pool_over_http(tmp_path: Any) -> None:
    # examples/database_pool.py on uvicorn: 30 clients, one after the other, each leaving in
    # the middle of its query (it reads the header event, then closes its connection): every
    # query finishes, every session ends through the closed channel, the pool of 2
    # connections is whole after them, and it still serves a client that stays.
    import time

    import httpx

    from .processes import REPO, free_port, server_process

    port = free_port()
    command = ["python", str(REPO / "examples" / "database_pool.py")]
    base = f"http://127.0.0.1:{port}"

    def state_when(client: httpx.Client, left: int) -> dict[str, int]:
        stop = time.monotonic() + 10
        while True:
            state: dict[str, int] = client.get(f"{base}/pool").json()
            if state["left_mid_query"] >= left and state["checked_out"] == 0:
                return state
            assert time.monotonic() < stop, state
            time.sleep(0.02)

    with (
        server_process(command, port, tmp_path / "db.log", env={"PORT": str(port)}),
        httpx.Client(timeout=10) as client,
    ):
        for number in range(1, 31):
            with client.stream("GET", f"{base}/report") as response:
                first = next(response.iter_lines())
                assert first == "event: header", first
            state_when(client, left=number)
        with client.stream("GET", f"{base}/report") as response:
            body = response.read().decode()
        assert "event: count\r\ndata: 200000" in body
        state = state_when(client, left=30)
    assert state == {"checked_out": 0, "finished_queries": 31, "left_mid_query": 30}
