"""A trio app served by hypercorn: a trio channel, a trio nursery, the runner in ``trio.run``.

The app uses trio's own API: a ``trio.open_memory_channel`` receive channel is streamed
directly, fed by a task in a nursery that the app's lifespan owns. ``trio_sse.serve`` runs
hypercorn inside the same ``trio.run`` and drains the streams on Ctrl-C / SIGTERM.

Run:   python examples/trio_hypercorn.py           (PORT=8000)
Try:   curl -N http://127.0.0.1:8000/trio
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncIterator

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

import trio_sse
from trio_sse import EventSourceResponse, ServerSentEvent

nursery: trio.Nursery | None = None


async def count(send: trio.MemorySendChannel[ServerSentEvent], upto: int) -> None:
    async with send:
        for number in range(upto):
            await send.send(ServerSentEvent(number, event="trio", id=number))
            await trio.sleep(0.2)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global nursery
    async with trio.open_nursery() as nursery:
        yield
        nursery.cancel_scope.cancel()


async def endpoint(request: Request) -> EventSourceResponse:
    send, receive = trio.open_memory_channel[ServerSentEvent](8)
    assert nursery is not None
    nursery.start_soon(count, send, 10)
    return EventSourceResponse(receive)


app = Starlette(routes=[Route("/trio", endpoint)], lifespan=lifespan)


async def main() -> None:
    await trio_sse.serve(app, port=int(os.environ.get("PORT", "8000")))


if __name__ == "__main__":
    trio.run(functools.partial(main))
