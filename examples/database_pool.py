"""A stream that holds a database session: the pool survives clients that leave mid-query.

Each client of ``/report`` gets a header event, then the result of a slow query run in an
SQLAlchemy async session (aiosqlite). A client that leaves while the query runs does not
cancel it: trio_sse closes the producer's channel, the query finishes, the next ``send``
raises ``anyio.BrokenResourceError``, and ``async with AsyncSession(...)`` returns its
connection to the pool through its normal error path, un-cancelled. Only a producer still
running after ``disconnect_grace_period`` (1 s by default) is cancelled. ``/pool`` shows the
pool: connections checked out, queries finished, sessions that ended because the client left.

SQLAlchemy's asyncio extension runs on asyncio, so this example is served by uvicorn.

Run:   pip install 'sqlalchemy[asyncio]' aiosqlite uvicorn
       python examples/database_pool.py            (PORT=8000)
Try:   curl -N http://127.0.0.1:8000/report  (Ctrl-C it at once), then curl .../pool
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from anyio.streams.memory import MemoryObjectSendStream
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trio_sse import EventSourceResponse, ServerSentEvent

# About 50 ms of SQLite work: long enough for a client to leave in the middle of it.
SLOW_QUERY = text(
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) "
    "SELECT count(*) FROM c"
)
counts = {"finished_queries": 0, "left_mid_query": 0}


def make_producer(engine: AsyncEngine) -> Any:
    async def report(send: MemoryObjectSendStream[ServerSentEvent]) -> None:
        try:
            async with AsyncSession(engine) as session, send:
                await send.send(ServerSentEvent("counting", event="header"))
                rows = (await session.execute(SLOW_QUERY)).scalar_one()
                counts["finished_queries"] += 1
                await send.send(ServerSentEvent(str(rows), event="count"))
        except anyio.BrokenResourceError:
            counts["left_mid_query"] += 1  # the client left: the session closed normally
            raise

    return report


async def report(request: Request) -> EventSourceResponse:
    return EventSourceResponse(make_producer(request.app.state.engine))


async def pool(request: Request) -> JSONResponse:
    engine: AsyncEngine = request.app.state.engine
    return JSONResponse({"checked_out": engine.pool.checkedout(), **counts})  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    with tempfile.TemporaryDirectory() as folder:
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{Path(folder) / 'example.sqlite'}", pool_size=2, max_overflow=0
        )
        app.state.engine = engine
        try:
            yield
        finally:
            await engine.dispose()


app = Starlette(routes=[Route("/report", report), Route("/pool", pool)], lifespan=lifespan)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
