"""Send timeout: a client that stops reading is dropped instead of holding memory forever.

Each event is 64 KiB; once the client's socket and the server's buffers are full, a send
waits; after ``send_timeout`` seconds the stream ends with ``SendTimeoutError`` (logged by the
server) and the producer is cancelled, its ``finally`` running.

It runs on hypercorn's asyncio worker: hypercorn's trio worker shields its socket writes
from cancellation, so there a stuck send cannot be timed out (the stream's memory stays
bounded by ``max_buffer_size`` all the same; see the README's note on ``send_timeout``).

Run:   python examples/send_timeout.py             (PORT=8000; hypercorn, asyncio)
Try:   curl -N http://127.0.0.1:8000/firehose | (sleep 30; wc -c)    # a reader that stalls
"""

from __future__ import annotations

import logging
import os

from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from trio_sse import EventSourceResponse, ServerSentEvent, run

log = logging.getLogger("example")
CHUNK = "x" * 65536


async def firehose(send: MemoryObjectSendStream[ServerSentEvent]) -> None:
    sent = 0
    try:
        async with send:
            while True:
                await send.send(ServerSentEvent(CHUNK, id=sent))
                sent += 1
    finally:
        log.warning("firehose stopped after %d events", sent)


async def endpoint(request: Request) -> EventSourceResponse:
    return EventSourceResponse(firehose, send_timeout=2, max_buffer_size=2)


app = Starlette(routes=[Route("/firehose", endpoint)])

if __name__ == "__main__":
    run(app, backend="asyncio", port=int(os.environ.get("PORT", "8000")))
