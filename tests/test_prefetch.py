"""``_prefetch.PrefetchGate``: the credits that bound how far an iterable is pulled ahead."""

from __future__ import annotations

import anyio
import pytest

from trio_sse._prefetch import PrefetchGate

pytestmark = pytest.mark.anyio


async def test_take_empties_the_credits_and_release_refills_them() -> None:
    gate = PrefetchGate(3)
    assert gate.take() == 3
    assert gate.take() == 0
    gate.release(2)
    assert gate.take() == 2


async def test_acquire_takes_one_credit_at_a_time() -> None:
    gate = PrefetchGate(2)
    with anyio.fail_after(5):
        await gate.acquire()
        await gate.acquire()
    assert gate.take() == 0


async def test_wait_parks_until_a_release_and_takes_nothing() -> None:
    gate = PrefetchGate(1)
    gate.take()
    woken = anyio.Event()

    async def waiter() -> None:
        await gate.wait()
        woken.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await anyio.wait_all_tasks_blocked()
            assert not woken.is_set()
            gate.release(1)
            await woken.wait()
    assert gate.take() == 1  # wait() took none


async def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_prefetch"):
        PrefetchGate(0)
