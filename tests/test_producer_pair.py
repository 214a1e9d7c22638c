"""``producer_pair``: the producer's channel made by constructor, and ``send``'s inline append.

Each test puts the send end inside its time slice (``_yield_by = inf``), where ``send`` and
``offer`` take the inline path of issue 18 (append to anyio's buffer when the reader is not
waiting, the buffer has room and both ends are open) and must behave as anyio's
``send_nowait`` does: in order, straight to a waiting reader, ``BrokenResourceError`` once the
reader left, ``ClosedResourceError`` once closed, waiting (or ``False``) when full.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import MutableMapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from trio_sse import EventSourceResponse, ServerSentEvent
from trio_sse._channels import (
    ProducerSendStream,
    parking_pair,
    plain_buffer,
    producer_pair,
    producer_send_end,
)

from .test_channels import SCOPE  # an HTTP request's ASGI scope

Message = MutableMapping[str, Any]

pytestmark = pytest.mark.anyio


def _in_slice(size: int) -> tuple[ProducerSendStream, MemoryObjectReceiveStream[Any]]:
    send, receive = producer_pair(size)
    producer_send_end(send, (anyio.CancelScope(),))
    send._yield_by = math.inf
    return send, receive


async def test_the_send_end_is_made_as_a_producer_send_stream() -> None:
    send, receive = producer_pair(2)
    with send, receive:
        assert type(send) is ProducerSendStream
        assert isinstance(send, MemoryObjectSendStream)
        assert send._yield_by == 0.0  # the first send takes a pass
        assert not send._scope.cancel_called and not send._outer.cancel_called
        assert producer_send_end(send, ()) is send
        assert send.statistics().open_send_streams == 1  # the plain end it came from: closed
        with anyio.fail_after(5):
            await send.send(1)
        assert send._yield_by > 0.0
        assert receive.receive_nowait() == 1


async def test_either_of_two_scopes_cancelled_is_noticed_and_three_are_refused() -> None:
    for which in range(2):
        send, receive = producer_pair(4)
        with send, receive:
            scopes = (anyio.CancelScope(), anyio.CancelScope())
            producer_send_end(send, scopes)
            send._yield_by = math.inf
            assert send.offer(1)
            scopes[which].cancel()
            assert not send.offer(2)  # the caller must await send, which checkpoints
            assert receive.receive_nowait() == 1
    send, receive = producer_pair(1)
    with send, receive, pytest.raises(ValueError, match="at most two scopes, got 3"):
        producer_send_end(send, (anyio.CancelScope(),) * 3)


async def test_items_appended_in_order_up_to_the_buffer_size() -> None:
    send, receive = _in_slice(3)
    with send, receive:
        for number in range(3):
            await send.send(number)
        assert send.statistics().current_buffer_used == 3
        assert not send.offer(3)  # full: the caller must await send
        assert [receive.receive_nowait() for _ in range(3)] == [0, 1, 2]
        assert send.offer(4)
        assert receive.receive_nowait() == 4


async def test_a_waiting_reader_gets_the_item_itself() -> None:
    send, receive = _in_slice(1)
    got: list[int] = []

    async def reader() -> None:
        got.append(await receive.receive())

    with send, receive, anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(reader)
            await anyio.wait_all_tasks_blocked()
            await send.send(7)
        assert got == [7]
        assert send.statistics().current_buffer_used == 0
        group_got: list[int] = []

        async def second_reader() -> None:
            group_got.append(await receive.receive())

        async with anyio.create_task_group() as group:
            group.start_soon(second_reader)
            await anyio.wait_all_tasks_blocked()
            assert send.offer(8)
        assert group_got == [8]


async def test_a_closed_reader_or_send_end_raises_as_anyio_does() -> None:
    send, receive = _in_slice(4)
    receive.close()
    with pytest.raises(anyio.BrokenResourceError):
        await send.send(1)
    with pytest.raises(anyio.BrokenResourceError):
        send.offer(1)
    send.close()
    with pytest.raises(anyio.ClosedResourceError):
        await send.send(2)
    with pytest.raises(anyio.ClosedResourceError):
        send.offer(2)
    other_send, other_receive = _in_slice(4)
    with other_receive:
        other_send.close()
        with pytest.raises(anyio.ClosedResourceError):
            await other_send.send(3)
        with pytest.raises(anyio.EndOfStream):
            other_receive.receive_nowait()


async def test_a_full_buffer_makes_send_wait_for_room() -> None:
    send, receive = _in_slice(1)
    sent: list[int] = []

    async def sender() -> None:
        async with send:
            for number in range(3):
                await send.send(number)
                sent.append(number)

    with receive, anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(sender)
            await anyio.wait_all_tasks_blocked()
            assert sent == [0]  # the second waits for room
            assert [item async for item in receive] == [0, 1, 2]
        assert sent == [0, 1, 2]


# -- the writer takes a producer's items off anyio's buffer itself (``plain_buffer``) ----------


def test_plain_buffer_is_anyios_own_open_receive_end_only() -> None:
    send, receive = producer_pair(4)
    with send, receive:
        buffer, senders = plain_buffer(receive)
        assert buffer is receive._state.buffer and senders is receive._state.waiting_senders
        send.send_nowait(1)
        assert list(buffer) == [1]
    assert plain_buffer(receive) == (deque(), {})  # closed: receive_nowait raises, as ever
    parking_send, parking_receive = parking_pair(4)
    with parking_send, parking_receive:
        parking_send.send_nowait(1)
        assert not plain_buffer(parking_receive)[0]  # a subclass: its receive_nowait is its own
    assert not plain_buffer(object())[0]


@pytest.mark.parametrize("buffer_size", [0, 1, 3, 1000])
async def test_every_event_once_in_order_whether_the_producer_waits_or_not(
    buffer_size: int,
) -> None:
    # A buffer of 0 or 1: the producer waits for room at nearly every event (its item sits
    # with the waiting senders, taken by ``receive_nowait``); 1000: it never waits.
    async def produce(send: MemoryObjectSendStream[ServerSentEvent], n: int) -> None:
        async with send:
            for i in range(n):
                await send.send(ServerSentEvent(f"e{i}", id=i))
                if i % 97 == 0:
                    await anyio.lowlevel.checkpoint()

    body = bytearray()
    never = anyio.Event()

    async def receive() -> Message:
        await never.wait()
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    response = EventSourceResponse(produce, 2000, max_buffer_size=buffer_size, ping=0)
    with anyio.fail_after(10):
        await response(dict(SCOPE), receive, send)
    expected = b"".join(f"id: {i}\r\ndata: e{i}\r\n\r\n".encode() for i in range(2000))
    assert bytes(body) == expected
