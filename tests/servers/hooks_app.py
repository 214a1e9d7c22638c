"""The app that tests/test_hooks_servers.py serves from real server subprocesses.

``/ticks`` sends an event every 20 ms until its client leaves or the server stops it; its
``on_close`` hook appends ``route reason events bytes`` to the file named by ``HOOKS_FILE``,
and its ``on_open`` hook (async) appends ``open route client``.
"""

from __future__ import annotations

import os
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventSourceResponse, StreamClosed, StreamInfo


def _record(line: str) -> None:
    with open(os.environ["HOOKS_FILE"], "a", encoding="utf-8") as file:
        file.write(line + "\n")


async def on_open(info: StreamInfo) -> None:
    await anyio.lowlevel.checkpoint()
    _record(f"open {info.route} {info.client}")


def on_close(info: StreamInfo, closed: StreamClosed) -> None:
    _record(f"{info.route} {closed.reason} {closed.events} {closed.bytes}")


async def ticks(send: MemoryObjectSendStream[Any]) -> None:
    async with send:
        number = 0
        while True:
            await send.send(str(number))
            number += 1
            await anyio.sleep(0.02)


async def endpoint(request: Request) -> EventSourceResponse:
    return EventSourceResponse(ticks, ping=0, on_open=on_open, on_close=on_close)


app = Starlette(routes=[Route("/ticks/{name}", endpoint)])
