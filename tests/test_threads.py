"""No global state bound to one event loop: threads with their own loops, successive runs."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest
from anyio.streams.memory import MemoryObjectSendStream

from trio_sse import ServerSentEvent, ShutdownToken
from trio_sse.testing import open_event_stream

from ._backends import requires_trio
from .helpers import sse_app

# Each test runs loops of both kinds side by side or in turn: trio must be there.
pytestmark = requires_trio

Send = MemoryObjectSendStream[Any]


def _stream_once(backend: str, token: ShutdownToken | None = None) -> list[str]:
    async def producer(send: Send) -> None:
        async with send:
            for number in range(20):
                await send.send(ServerSentEvent(number, id=number))
                await anyio.lowlevel.checkpoint()

    async def main() -> list[str]:
        app = sse_app(lambda: producer, ping=0.001, shutdown=token)
        with anyio.fail_after(10):
            async with open_event_stream(app) as stream:
                return [event.data or "" async for event in stream]

    return anyio.run(main, backend=backend)


def test_streams_in_several_threads_each_with_its_own_loop() -> None:
    token = ShutdownToken()
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def worker(name: str, backend: str) -> None:
        try:
            results[name] = _stream_once(backend, token)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(f"{backend}-{index}", backend))
        for index in range(3)
        for backend in ("trio", "asyncio")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(results) == 6
    assert all(data == [str(n) for n in range(20)] for data in results.values())
    assert not token._watchers


@pytest.mark.parametrize("order", [("trio", "asyncio", "trio"), ("asyncio", "trio", "asyncio")])
def test_successive_runs_need_no_reset(order: tuple[str, str, str]) -> None:
    token = ShutdownToken()
    for backend in order:
        assert _stream_once(backend, token) == [str(n) for n in range(20)]
        assert _stream_once(backend) == [str(n) for n in range(20)]


def test_a_token_triggered_in_one_loop_ends_streams_in_others() -> None:
    token = ShutdownToken()
    started = threading.Barrier(3)
    outcomes: list[bool] = []

    async def producer(send: Send) -> None:
        async with send:
            await send.send("up")
            await anyio.sleep_forever()

    def worker(backend: str) -> None:
        async def main() -> None:
            with anyio.fail_after(10):
                async with open_event_stream(sse_app(lambda: producer, shutdown=token)) as stream:
                    await stream.read_events(1)
                    await anyio.to_thread.run_sync(started.wait)
                    async for _ in stream:
                        pass
                outcomes.append(stream.complete)

        anyio.run(main, backend=backend)

    threads = [threading.Thread(target=worker, args=(backend,)) for backend in ("trio", "asyncio")]
    for thread in threads:
        thread.start()
    started.wait(timeout=10)
    token.trigger()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes == [True, True]
