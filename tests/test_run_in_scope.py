"""What a stream's producer raises never escapes the stream, even mixed with the cancellation
of the producer's own scope (its grace period ending as its channel breaks): then its task
group raises ``Cancelled`` and the error together, and the scope keeps only the error."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from trio_sse._stream import _run_in_scope

pytestmark = pytest.mark.anyio


async def broken_while_cancelled(scope: anyio.CancelScope) -> None:
    async def breaks() -> None:
        raise anyio.BrokenResourceError

    scope.cancel()  # the grace period ends just as the closed channel raises
    async with anyio.create_task_group() as group:
        group.start_soon(anyio.sleep_forever)
        group.start_soon(breaks)


async def test_an_error_beside_the_scopes_own_cancellation_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with anyio.fail_after(5):
        scope = anyio.CancelScope()
        await _run_in_scope(scope, lambda: broken_while_cancelled(scope), "the producer")
    assert "the producer raised; ending the stream" in caplog.text
    assert "BrokenResourceError" in caplog.text


async def test_a_cancellation_from_outside_still_goes_through() -> None:
    with anyio.fail_after(5):
        with anyio.CancelScope() as outer:
            outer.cancel()
            await _run_in_scope(anyio.CancelScope(), anyio.sleep_forever, "the producer")
            pytest.fail("the outer cancellation was swallowed")  # pragma: no cover
    assert outer.cancelled_caught


async def test_an_error_beside_an_outer_cancellation_is_logged_and_it_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def breaks() -> None:
        raise anyio.BrokenResourceError

    with anyio.fail_after(5):
        with anyio.CancelScope() as outer:

            async def producer() -> None:
                outer.cancel()  # the stream's hard stop, as a child raises
                async with anyio.create_task_group() as group:
                    group.start_soon(anyio.sleep_forever)
                    group.start_soon(breaks)

            await _run_in_scope(anyio.CancelScope(), producer, "the producer")
            await anyio.lowlevel.checkpoint()  # asyncio delivers it at the next checkpoint
            pytest.fail("the outer cancellation was swallowed")  # pragma: no cover
    assert outer.cancelled_caught
    assert "BrokenResourceError" in caplog.text
