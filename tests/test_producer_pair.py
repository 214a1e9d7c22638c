"""``producer_pair``: the producer's channel made by constructor, and ``send``'s inline append.

Each test puts the send end inside its time slice (``_yield_by = inf``), where ``send`` and
``offer`` take the inline path of issue 18 (append to anyio's buffer when the reader is not
waiting, the buffer has room and both ends are open) and must behave as anyio's
``send_nowait`` does: in order, straight to a waiting reader, ``BrokenResourceError`` once the
reader left, ``ClosedResourceError`` once closed, waiting (or ``False``) when full.
"""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from trio_sse._channels import ProducerSendStream, producer_pair, producer_send_end

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
        assert send._yield_by == 0.0 and send._scopes == ()  # the first send takes a pass
        assert producer_send_end(send, ()) is send
        assert send.statistics().open_send_streams == 1  # the plain end it came from: closed
        with anyio.fail_after(5):
            await send.send(1)
        assert send._yield_by > 0.0
        assert receive.receive_nowait() == 1


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
