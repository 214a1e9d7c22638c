"""The cheaper channel ends (``trio_sse._channels``): same anyio semantics, fewer passes."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import AsyncIterator, Iterator, MutableMapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from trio_sse import Broadcaster, EventSourceResponse, ServerSentEvent
from trio_sse._channels import (
    SLICE,
    ParkingReceiveStream,
    parking_pair,
    producer_send_end,
)
from trio_sse.testing import open_event_stream

from .helpers import sse_app

pytestmark = pytest.mark.anyio

Send = MemoryObjectSendStream[Any]

SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
    "root_path": "",
    "headers": [],
    "client": ("127.0.0.1", 40000),
    "server": ("127.0.0.1", 8000),
}


# -- the producer's send end -------------------------------------------------------------------


async def test_producer_send_end_is_still_an_anyio_send_stream() -> None:
    send, receive = anyio.create_memory_object_stream[int](4)
    receive.__enter__()
    fast = producer_send_end(send, (anyio.CancelScope(),))
    assert fast is send
    assert isinstance(fast, MemoryObjectSendStream)
    clone = fast.clone()
    await fast.send(1)
    await clone.send(2)
    assert fast.statistics().open_send_streams == 2
    fast.close()
    clone.close()
    assert [item async for item in receive] == [1, 2]
    receive.close()


async def test_a_busy_producer_does_not_take_a_scheduling_pass_per_event() -> None:
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            await anyio.lowlevel.checkpoint()
            ticks += 1

    async def producer(send: Send) -> None:
        nonlocal done
        async with send:
            for number in range(2000):
                await send.send(ServerSentEvent(number, id=number))
        done = True

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(ticker)
            app = sse_app(lambda: producer, max_buffer_size=4000)
            async with open_event_stream(app) as stream:
                events = [event async for event in stream]
    assert [event.id for event in events] == [str(n) for n in range(2000)]
    # anyio's own send would have let the ticker run once per event (2000 times); here the
    # producer yields when its time slice is over, a few times in all.
    assert ticks < 500
    assert stream.body_messages < 500


async def run_on_a_server_whose_send_never_waits(response: EventSourceResponse) -> list[bytes]:
    """Run *response* as an ASGI call whose ``send`` returns at once (as uvicorn's does while
    the socket takes the bytes); return the bodies of its ``http.response.body`` messages."""
    bodies: list[bytes] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    await response(SCOPE, receive, send)
    return bodies


async def test_a_producer_that_works_between_events_has_each_one_sent_before_the_next(
    anyio_backend: str,
) -> None:
    # Blocking work (a stand-in for CPU-bound work) longer than the slice between events:
    # each send is a scheduling point, so the writer sends every event on its own instead of
    # holding it until the producer yields for another reason.
    async def producer(send: Send) -> None:
        async with send:
            for number in range(5):
                time.sleep(SLICE * 4)  # noqa: ASYNC251 (the blocking work is the point)
                await send.send(ServerSentEvent(number))

    with anyio.fail_after(10):
        bodies = await run_on_a_server_whose_send_never_waits(EventSourceResponse(producer))
    assert b"".join(bodies) == b"".join(ServerSentEvent(n).encode() for n in range(5))
    assert bodies[-1] == b""
    per_body = [body.count(b"data: ") for body in bodies[:-1]]
    if anyio_backend == "asyncio":
        assert per_body == [1] * 5
    else:
        # trio runs the tasks of a batch in random order: after the producer's scheduling
        # pass, it may make its next event before the writer has sent the last one.
        assert max(per_body) <= 2


async def test_send_notices_a_cancelled_stream_scope_without_a_pass() -> None:
    send, receive = anyio.create_memory_object_stream[int](4)
    with send, receive:
        with anyio.CancelScope() as scope:
            fast = producer_send_end(send, (anyio.CancelScope(), scope))
            fast._yield_by = math.inf  # inside the time slice: no scheduling pass is due
            await fast.send(1)
            scope.cancel()
            await fast.send(2)
            pytest.fail("send did not raise the cancellation")  # pragma: no cover
        assert scope.cancelled_caught
        assert receive.receive_nowait() == 1
        with pytest.raises(anyio.WouldBlock):
            receive.receive_nowait()


async def test_send_waits_for_room_when_the_buffer_is_full() -> None:
    send, receive = anyio.create_memory_object_stream[int](1)
    fast = producer_send_end(send, (anyio.CancelScope(),))
    fast._yield_by = math.inf
    sent: list[int] = []

    async def sender() -> None:
        for number in range(3):
            await fast.send(number)
            sent.append(number)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(sender)
            await anyio.wait_all_tasks_blocked()
            assert sent == [0]  # 1 is waiting for room
            assert [await receive.receive() for _ in range(3)] == [0, 1, 2]
    send.close()
    receive.close()


# -- the parking receive end ---------------------------------------------------------------------


@pytest.fixture
def pair() -> Iterator[tuple[Send, ParkingReceiveStream[Any]]]:
    send, receive = parking_pair(4)
    with send, receive:
        yield send, receive


Pair = tuple[Send, ParkingReceiveStream[Any]]


async def test_a_send_wakes_the_parked_receive(pair: Pair) -> None:
    send, receive = pair
    got: list[object] = []

    async def reader() -> None:
        got.append(await receive.receive())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            assert got == []
            send.send_nowait("a")  # the paired send end unparks the reader
    assert got == ["a"]
    assert isinstance(receive, MemoryObjectReceiveStream)


async def test_receive_with_an_item_waiting_is_still_a_checkpoint(pair: Pair) -> None:
    send, receive = pair
    send.send_nowait("kept")
    with anyio.CancelScope() as scope:
        scope.cancel()
        await receive.receive()
        pytest.fail("receive did not raise the cancellation")  # pragma: no cover
    assert scope.cancelled_caught
    assert receive.receive_nowait() == "kept"


async def test_cancelled_while_parked_leaves_the_stream_usable(pair: Pair) -> None:
    send, receive = pair
    with anyio.fail_after(5):
        with anyio.move_on_after(0.01) as scope:
            await receive.receive()
        assert scope.cancelled_caught
        receive.unpark()  # nobody is parked any more: nothing to wake, nothing breaks
        send.send_nowait("later")
        assert await receive.receive() == "later"


async def test_parked_receive_ends_when_the_send_end_closes(pair: Pair) -> None:
    send, receive = pair
    outcome: list[str] = []

    async def reader() -> None:
        try:
            async for item in receive:
                outcome.append(item)
        finally:
            outcome.append("end")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            send.send_nowait("last")
            send.close()  # wakes the reader too
    assert outcome == ["last", "end"]


async def test_closing_the_parking_end_wakes_its_reader(pair: Pair) -> None:
    _send, receive = pair
    raised: list[type[BaseException]] = []

    async def reader() -> None:
        try:
            await receive.receive()
        except anyio.ClosedResourceError as exc:
            raised.append(type(exc))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            receive.close()
    assert raised == [anyio.ClosedResourceError]


async def test_an_unpark_while_nobody_is_parked_is_not_lost(pair: Pair) -> None:
    send, receive = pair
    send.send_nowait("sent while the reader was busy")
    receive.unpark()  # the reader is elsewhere (sending what it took before, say)
    with anyio.fail_after(5):
        await receive.wait_ready()  # returns at once: the reader looks again
    assert receive.receive_nowait() == "sent while the reader was busy"


async def test_an_event_published_while_the_writer_sends_is_not_left_behind() -> None:
    # The writer looked at the buffer, then awaited the server's send; an event published
    # during that send must wake its next wait (it once parked with the event in the buffer).
    finished = anyio.Event()
    bodies: list[bytes] = []
    async with Broadcaster() as hub:

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] != "http.response.body":
                return
            bodies.append(message["body"])
            if len(bodies) == 1:
                await hub.publish("t", "second")  # from inside the writer's own send
            elif b"second" in message["body"]:
                finished.set()

        async def receive() -> dict[str, Any]:
            await finished.wait()
            return {"type": "http.disconnect"}

        async def subscriber() -> None:
            async with hub.subscribe("t") as events:
                await EventSourceResponse(events)(SCOPE, receive, send)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(subscriber)
                await anyio.wait_all_tasks_blocked()
                assert hub.stats().total_subscribers == 1
                await hub.publish("t", "first")
    assert b"first" in bodies[0]
    assert b"second" in bodies[1]


async def test_a_generator_that_works_between_events_has_each_one_sent_before_the_next(
    anyio_backend: str,
) -> None:
    # The async-iterable pump goes through the same send: a generator that never awaits is
    # not held until the buffer fills.
    async def generate() -> AsyncIterator[ServerSentEvent]:
        for number in range(5):
            time.sleep(SLICE * 4)  # noqa: ASYNC251 (the blocking work is the point)
            yield ServerSentEvent(number)

    with anyio.fail_after(10):
        bodies = await run_on_a_server_whose_send_never_waits(EventSourceResponse(generate()))
    assert b"".join(bodies) == b"".join(ServerSentEvent(n).encode() for n in range(5))
    per_body = [body.count(b"data: ") for body in bodies[:-1]]
    if anyio_backend == "asyncio":
        assert per_body == [1] * 5
    else:
        assert max(per_body) <= 2  # trio's random order within a batch, as above


# -- what re-classing anyio's streams relies on (anyio is bounded to 4.x for it) -------------------
#
# ``producer_send_end`` and ``parking_pair`` swap the ``__class__`` of streams that
# ``anyio.create_memory_object_stream`` made and give them attributes of their own. These tests
# fail if an anyio release breaks what that needs; then raise the bound only once they pass.

OUR_ATTRIBUTES = {"_scope", "_outer", "_yield_by", "_parker", "_wake_pending", "_receiver"}
ANYIO_CLASSES = (MemoryObjectSendStream, MemoryObjectReceiveStream)


def test_anyio_streams_have_no_slots_and_keep_a_dict() -> None:
    # A ``__slots__`` in anyio's classes (or a dict-less layout) makes the ``__class__`` swap
    # a TypeError and our own attributes impossible.
    for cls in ANYIO_CLASSES:
        assert "__slots__" not in vars(cls), cls
        assert cls.__dictoffset__ != 0, cls
    send, receive = parking_pair(1)
    fast_send, plain_receive = anyio.create_memory_object_stream[int](1)
    with send, receive, fast_send, plain_receive:
        producer_send_end(fast_send, ())
        for stream in (send, receive, fast_send):
            assert type(stream).__mro__[1] in ANYIO_CLASSES  # ours sits right on anyio's
            assert "__slots__" not in vars(type(stream))


def test_our_attributes_do_not_collide_with_anyios() -> None:
    for cls in ANYIO_CLASSES:
        names = set(dir(cls)) | {field.name for field in dataclasses.fields(cls)}
        assert not names & OUR_ATTRIBUTES, (cls, names & OUR_ATTRIBUTES)


async def test_anyio_send_goes_through_send_nowait() -> None:
    # WakingSendStream wakes its reader in ``send_nowait``, which anyio's ``send`` must use.
    calls: list[int] = []

    class Counting(MemoryObjectSendStream[int]):
        def send_nowait(self, item: int) -> None:
            calls.append(item)
            super().send_nowait(item)

    send, receive = anyio.create_memory_object_stream[int](1)
    send.__class__ = Counting
    with send, receive:
        await send.send(1)
        assert calls == [1]
        assert receive.receive_nowait() == 1


async def test_anyio_exit_and_aclose_go_through_close() -> None:
    # Both of our ends wake the reader in ``close``: every way of closing must reach it.
    closed: list[str] = []

    class SendEnd(MemoryObjectSendStream[int]):
        def close(self) -> None:
            closed.append("send")
            super().close()

    class ReceiveEnd(MemoryObjectReceiveStream[int]):
        def close(self) -> None:
            closed.append("receive")
            super().close()

    send, receive = anyio.create_memory_object_stream[int](1)
    send.__class__ = SendEnd
    receive.__class__ = ReceiveEnd
    with send:
        pass
    await receive.aclose()
    assert closed == ["send", "receive"]
    other_send, other_receive = anyio.create_memory_object_stream[int](1)
    other_send.__class__ = SendEnd
    other_receive.__class__ = ReceiveEnd
    async with other_send, other_receive:
        pass
    assert closed == ["send", "receive", "receive", "send"]


def test_anyio_clones_are_anyios_plain_streams() -> None:
    # A clone of our ends must not be one of ours: it would lack our attributes.
    send, receive = parking_pair(1)
    fast_send, plain_receive = anyio.create_memory_object_stream[int](1)
    producer_send_end(fast_send, ())
    with send, receive, fast_send, plain_receive:
        for stream, base in (
            (send, MemoryObjectSendStream),
            (receive, MemoryObjectReceiveStream),
            (fast_send, MemoryObjectSendStream),
        ):
            with stream.clone() as clone:
                assert type(clone) is base
