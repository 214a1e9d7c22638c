"""A stream's task group and cancel scopes from ``_asynclib`` (issue 18: objects per stream).

Under trio they are a trio nursery and trio's own scopes, without anyio's wrappers; these
tests pin that they behave as anyio's do on both loops: errors, cancellation from outside,
the group's own cancellation, deadlines and shields.
"""

from __future__ import annotations

import math

import anyio
import anyio.lowlevel
import pytest

from trio_sse._asynclib import AsyncLib, _first_leaf, current_asynclib


@pytest.mark.anyio
async def test_a_cancellation_from_outside_comes_out_bare(anyio_backend: str) -> None:
    lib = current_asynclib()
    caught: list[BaseException] = []
    with anyio.fail_after(5):
        with anyio.CancelScope() as outer:
            try:
                async with lib.task_group() as group:
                    group.start_soon(anyio.sleep_forever)
                    await anyio.lowlevel.checkpoint()
                    outer.cancel()
                    await anyio.sleep_forever()  # the body and the task are both cancelled
            except anyio.get_cancelled_exc_class() as exc:  # not a group of them
                caught.append(exc)
                raise
    assert outer.cancelled_caught
    assert len(caught) == 1


@pytest.mark.anyio
async def test_the_groups_own_cancellation_ends_it_quietly() -> None:
    lib = current_asynclib()
    ran: list[str] = []

    async def task(name: str) -> None:
        ran.append(name)
        await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with lib.task_group() as group:
            group.start_soon(task, "a")
            group.start_soon(task, "b")
            await anyio.lowlevel.checkpoint()
            group.cancel_scope.cancel()
            assert group.cancel_scope.cancel_called
    assert sorted(ran) == ["a", "b"]


@pytest.mark.anyio
async def test_a_tasks_error_comes_out_in_a_group() -> None:
    lib = current_asynclib()

    async def fails() -> None:
        raise ValueError("boom")

    async def run() -> None:
        async with lib.task_group() as group:
            group.start_soon(fails)
            await anyio.sleep_forever()

    with anyio.fail_after(5), pytest.raises(BaseExceptionGroup) as info:
        await run()
    assert info.group_contains(ValueError, match="boom")
    assert not info.group_contains(anyio.get_cancelled_exc_class())


@pytest.mark.anyio
async def test_no_task_starts_once_the_group_is_left() -> None:
    lib = current_asynclib()
    async with lib.task_group() as group:
        pass
    with pytest.raises(RuntimeError):
        group.start_soon(anyio.sleep_forever)


@pytest.mark.anyio
async def test_a_scope_of_the_loop_keeps_its_deadline_and_shield(anyio_backend: str) -> None:
    lib = current_asynclib()
    scope = lib.cancel_scope()
    assert scope.deadline == math.inf and not scope.shield
    with anyio.fail_after(5):
        with lib.cancel_scope(anyio.current_time() + 0.01) as timed:
            await anyio.sleep_forever()
    assert timed.cancel_called
    with anyio.fail_after(5):
        with anyio.CancelScope() as outer:
            with lib.cancel_scope() as shielded:
                shielded.shield = True
                outer.cancel()
                await anyio.sleep(0.01)  # not cancelled: shielded
                shielded.shield = False
                await anyio.sleep_forever()
    assert outer.cancelled_caught and not shielded.cancel_called
    kind = type(scope).__module__.split(".")[0]
    assert kind == ("trio" if anyio_backend == "trio" else "anyio")  # trio's own, no wrapper


def test_the_first_leaf_of_nested_groups() -> None:
    first, second = KeyError("a"), KeyError("b")
    group = BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [first]), second])
    assert _first_leaf(group) is first


def test_the_base_kit_names_what_each_loop_must_give() -> None:
    base = AsyncLib()
    for make in (base.task_group, base.cancel_scope, base.parker, base.loop_caller):
        with pytest.raises(NotImplementedError):
            make()
    assert base.call_at(0.0, lambda: None) is None  # no timed callbacks: a task's scope


def test_under_a_loose_trio_run_errors_still_come_out_in_a_group() -> None:
    # anyio's group is strict whatever the run says; so is the nursery that replaces it.
    trio = pytest.importorskip("trio")

    async def main() -> None:
        async def fails() -> None:
            raise KeyError("x")

        with pytest.raises(BaseExceptionGroup) as info:
            async with current_asynclib().task_group() as group:
                group.start_soon(fails)
        assert info.group_contains(KeyError)

    with pytest.warns(trio.TrioDeprecationWarning):
        trio.run(main, strict_exception_groups=False)
