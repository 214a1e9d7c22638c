"""Database-style streaming: a resource opened inside the producer and always closed.

The "database" is SQLite in memory, from the standard library, queried in a worker thread
so the event loop never blocks. The cursor is opened in the producer and closed in its
``finally``: on a normal end, on a client that disconnects, and on shutdown.

Run:   python examples/database_streaming.py       (PORT=8000; hypercorn under trio)
Try:   curl -N http://127.0.0.1:8000/rows
"""

from __future__ import annotations

import logging
import os
import sqlite3

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventSourceResponse, JSONServerSentEvent, ServerSentEvent, run

log = logging.getLogger("example")


def open_database() -> sqlite3.Connection:
    database = sqlite3.connect(":memory:", check_same_thread=False)
    database.execute("create table city (id integer primary key, name text, people integer)")
    database.executemany(
        "insert into city (name, people) values (?, ?)",
        [
            ("Lyon", 522000),
            ("Nantes", 320000),
            ("Lille", 236000),
            ("Nice", 348000),
            ("Brest", 139000),
        ],
    )
    return database


async def rows(send: MemoryObjectSendStream[ServerSentEvent]) -> None:
    database = await anyio.to_thread.run_sync(open_database)
    cursor = database.execute("select id, name, people from city order by id")
    try:
        async with send:
            while batch := await anyio.to_thread.run_sync(cursor.fetchmany, 2):
                for city_id, name, people in batch:
                    await send.send(
                        JSONServerSentEvent(
                            {"name": name, "people": people}, event="row", id=city_id
                        )
                    )
                await anyio.sleep(0.1)
            await send.send(ServerSentEvent("", event="end"))
    finally:
        cursor.close()
        database.close()
        log.warning("database closed")


async def endpoint(request: Request) -> EventSourceResponse:
    return EventSourceResponse(rows)


app = Starlette(routes=[Route("/rows", endpoint)])

if __name__ == "__main__":
    run(app, backend="trio", port=int(os.environ.get("PORT", "8000")))
