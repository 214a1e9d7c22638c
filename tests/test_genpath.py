"""The async-generator path's hot spots (issue 18): ``offer``, ``PrefetchGate.park``, a drain
that stops at the batch's item limit. Same behaviour as before, fewer steps per message."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from trio_sse import EventSourceResponse, ServerSentEvent
from trio_sse._batch import Batch
from trio_sse._channels import producer_send_end
from trio_sse._prefetch import PrefetchGate
from trio_sse._sources import Source
from trio_sse._stream import _END, _drain

from .test_channels import SCOPE

pytestmark = pytest.mark.anyio


async def test_offer_sends_at_once_inside_the_slice() -> None:
    send, receive = anyio.create_memory_object_stream[int](4)
    with send, receive:
        fast = producer_send_end(send, (anyio.CancelScope(),))
        fast._yield_by = math.inf
        assert fast.offer(1)
        assert receive.receive_nowait() == 1


async def test_offer_refuses_once_the_slice_is_over() -> None:
    send, receive = anyio.create_memory_object_stream[int](4)
    with send, receive:
        fast = producer_send_end(send, (anyio.CancelScope(),))  # the first send is a pass
        assert not fast.offer(1)
        with pytest.raises(anyio.WouldBlock):
            receive.receive_nowait()


async def test_offer_refuses_when_a_stream_scope_is_cancelled() -> None:
    send, receive = anyio.create_memory_object_stream[int](4)
    with send, receive:
        scope = anyio.CancelScope()
        fast = producer_send_end(send, (anyio.CancelScope(), scope))
        fast._yield_by = math.inf
        scope.cancel()
        assert not fast.offer(1)
        with pytest.raises(anyio.WouldBlock):
            receive.receive_nowait()


async def test_offer_refuses_when_the_buffer_is_full() -> None:
    send, receive = anyio.create_memory_object_stream[int](1)
    with send, receive:
        fast = producer_send_end(send, (anyio.CancelScope(),))
        fast._yield_by = math.inf
        assert fast.offer(1)
        assert not fast.offer(2)
        assert receive.receive_nowait() == 1
        with pytest.raises(anyio.WouldBlock):
            receive.receive_nowait()


async def test_park_waits_for_a_release_and_takes_nothing() -> None:
    gate = PrefetchGate(2)
    assert gate.take() == 2
    woken = anyio.Event()

    async def pump() -> None:
        await gate.park()
        woken.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(pump)
            await anyio.wait_all_tasks_blocked()
            assert not woken.is_set()
            gate.release(1)
            await woken.wait()
    assert gate.take() == 1


async def test_park_is_cancellable() -> None:
    gate = PrefetchGate(1)
    gate.take()
    with anyio.fail_after(5):
        with anyio.move_on_after(0.01) as scope:
            await gate.park()
    assert scope.cancelled_caught
    gate.release(1)  # nobody parked any more: nothing to wake
    assert gate.take() == 1


def test_drain_stops_at_the_item_limit_and_leaves_the_rest() -> None:
    send, receive = anyio.create_memory_object_stream[Any](8)
    with send, receive:
        for number in range(3):
            send.send_nowait(ServerSentEvent(number))
        batch = Batch(max_items=2)
        assert _drain(Source.from_anyio(receive), "\n", batch) is None
        assert batch.chunks == [ServerSentEvent(n).encode("\n") for n in range(2)]
        assert receive.receive_nowait() == ServerSentEvent(2)


def test_a_full_batch_sees_the_end_at_the_next_look() -> None:
    send, receive = anyio.create_memory_object_stream[Any](8)
    with receive:
        with send:
            send.send_nowait(ServerSentEvent(0))
        source = Source.from_anyio(receive)
        batch = Batch(max_items=1)
        assert _drain(source, "\n", batch) is None
        batch.take()
        assert _drain(source, "\n", batch) == _END


@pytest.mark.parametrize("count", [3, 4, 5, 8, 9])
async def test_a_generator_of_a_multiple_of_max_prefetch_ends_cleanly(count: int) -> None:
    async def events() -> AsyncIterator[ServerSentEvent]:
        for number in range(count):
            yield ServerSentEvent(number, id=str(number))

    bodies: list[bytes] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            bodies.append(message["body"])

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    with anyio.fail_after(10):
        await EventSourceResponse(events(), max_prefetch=4)(SCOPE, receive, send)
    expected = b"".join(ServerSentEvent(n, id=str(n)).encode() for n in range(count))
    assert b"".join(bodies) == expected
    assert bodies[-1] == b""
    assert all(body.count(b"data: ") <= 4 for body in bodies)


async def test_a_generator_that_never_waits_gives_way_to_other_tasks() -> None:
    # The pump's ``offer`` keeps the send end's time slice: the ticker runs once per slice
    # (tens of times over ~20 ms of pulling), not just at the pump's first send and its end.
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            await anyio.lowlevel.checkpoint()
            ticks += 1

    async def events() -> AsyncIterator[int]:
        for number in range(20_000):
            yield number

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(ticker)
            await EventSourceResponse(events(), max_prefetch=100_000, max_buffer_size=100_000)(
                SCOPE, receive, send
            )
            done = True
    assert ticks >= 8


async def test_park_and_wait_share_one_parker_across_waits() -> None:
    gate = PrefetchGate(1)
    rounds: list[str] = []

    async def pump() -> None:
        for how in ("park", "wait", "park", "wait"):
            gate.take()
            await (gate.park() if how == "park" else gate.wait())
            rounds.append(how)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(pump)
            for done in range(1, 5):
                await anyio.wait_all_tasks_blocked()
                assert len(rounds) == done - 1  # parked until the release
                gate.release(1)
    assert rounds == ["park", "wait", "park", "wait"]
