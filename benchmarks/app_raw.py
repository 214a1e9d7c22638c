"""The floor: a raw ASGI app, no SSE library, no framework. ``benchmarks.app_raw:app``.

* ``/stream`` formats each event's bytes itself and sends **one ASGI message per event**:
  what the server can do per message, with the least possible work in the app;
* ``/subscribe`` is the **raw coalescing** subscriber: the publisher appends the event's
  bytes (formatted once) to each subscriber's list and wakes it; the subscriber sends
  whatever is queued as one body message. A task per connection waits for
  ``http.disconnect``, as any correct streaming app needs.

It has no ``/endless``: shutdown is what the libraries add, there is no floor for it.
Written with anyio, so the same app runs on asyncio and trio servers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from ._common import (
    DEFAULT_TOPIC,
    int_arg,
    make_payload,
    paced_sequence,
    publish_data,
    query,
)

__all__ = ["app"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
]


class _Subscriber:
    __slots__ = ("queue", "wake")

    def __init__(self) -> None:
        self.queue: list[bytes] = []
        self.wake = anyio.Event()


_topics: dict[str, set[_Subscriber]] = {}


async def _start(send: Send, headers: list[tuple[bytes, bytes]] = _SSE_HEADERS) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": headers})


async def _stream(scope: Message, receive: Receive, send: Send) -> None:
    params = query(scope)
    n = int_arg(params, "n", 1000)
    data = make_payload(int_arg(params, "size", 32)).encode()
    await _start(send)
    for i in range(n):
        body = b"id: %d\r\ndata: %s\r\n\r\n" % (i, data)
        await send({"type": "http.response.body", "body": body, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _subscribe(scope: Message, receive: Receive, send: Send) -> None:
    topic = query(scope).get("topic", DEFAULT_TOPIC)
    subscriber = _Subscriber()
    subscribers = _topics.setdefault(topic, set())
    # Subscribed before the response starts: a client that has the headers is subscribed.
    subscribers.add(subscriber)
    try:
        await _start(send)
        async with anyio.create_task_group() as group:

            async def listen() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(listen)
            while True:
                await subscriber.wake.wait()
                subscriber.wake = anyio.Event()
                body = b"".join(subscriber.queue)
                subscriber.queue.clear()
                await send({"type": "http.response.body", "body": body, "more_body": True})
    finally:
        subscribers.discard(subscriber)


async def _publish(scope: Message, receive: Receive, send: Send) -> None:
    params = query(scope)
    topic = params.get("topic", DEFAULT_TOPIC)
    reached = 0
    async for seq in paced_sequence(params):
        event = f"id: {seq}\r\ndata: {publish_data(seq)}\r\n\r\n".encode()
        subscribers = _topics.get(topic, set())
        for subscriber in subscribers:
            subscriber.queue.append(event)
            subscriber.wake.set()
        reached = len(subscribers)
    await _plain(send, str(reached).encode())


async def _plain(
    send: Send, body: bytes, status: int = 200, content_type: bytes = b"text/plain"
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Message, receive: Receive, send: Send) -> None:
    """The raw ASGI app."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope["path"]
    if path == "/stream":
        await _stream(scope, receive, send)
    elif path == "/subscribe":
        await _subscribe(scope, receive, send)
    elif path == "/publish":
        await _publish(scope, receive, send)
    elif path == "/stats":
        await _plain(send, b'{"app": "raw", "impl": "raw ASGI"}', content_type=b"application/json")
    else:
        await _plain(send, b"not found", status=404)
