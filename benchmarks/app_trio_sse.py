"""The trio_sse benchmark app: ``benchmarks.app_trio_sse:app`` (routes: see ``_common``).

Written the way the README tells users to write it:

* ``/stream`` is a producer function that builds one ``ServerSentEvent(data, id=...)`` per
  event and ``await send.send(...)``\\ s it into the response's channel; ``/stream-gen``
  yields the same events from an async generator, as sse-starlette apps do;
* fan-out uses ``trio_sse.Broadcaster`` when the installed trio_sse has it (entered in the
  app's lifespan; each subscriber is ``async with hub.subscribe(topic) as events`` streamed
  by ``EventSourceResponse(events)``), else the benchmark's own minimal fan-out: one shared
  ``ServerSentEvent`` per published event, ``send_nowait`` into each subscriber's anyio
  memory channel, and a response that streams the receive channel itself
  (``EventSourceResponse(receive)``). Either way there is no producer task per subscriber,
  and an event is encoded once, not once per subscriber.
  ``TRIO_SSE_BENCH_FANOUT=local`` forces the benchmark's own fan-out;
* ``/subscribe-producer`` is the same subscription on the producer path: a producer function
  that subscribes and ``await send.send(...)``\\ s each event into the response's channel (a
  task and a channel per stream, which the hub path does without);
* ``/endless`` is a cooperative producer: it stops when the stream's shutdown token triggers.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope
from starlette.types import Send as ASGISend

from trio_sse import EventSourceResponse, ServerSentEvent, current_shutdown_token

from ._common import (
    DEFAULT_TOPIC,
    ENDLESS_INTERVAL,
    SHUTDOWN_GRACE,
    SUBSCRIBER_BUFFER,
    float_arg,
    int_arg,
    make_payload,
    paced_sequence,
    publish_data,
    query,
)

__all__ = ["app", "broadcaster_class"]

Send = MemoryObjectSendStream[ServerSentEvent]
Producer = Callable[[Send], Awaitable[None]]


def broadcaster_class() -> Any:
    """``trio_sse.Broadcaster`` if this trio_sse has it (and it is not disabled), else None."""
    if os.environ.get("TRIO_SSE_BENCH_FANOUT") == "local":
        return None
    return getattr(importlib.import_module("trio_sse"), "Broadcaster", None)


class FanOut(Protocol):
    impl: str

    async def serve(self, topic: str, scope: Scope, receive: Receive, send: ASGISend) -> None:
        """Serve one subscriber of *topic* (an ASGI call)."""

    async def publish(self, topic: str, data: str, seq: int) -> int:
        """Publish one event; return how many subscribers it went to (-1: not known)."""

    def producer(self, topic: str) -> Producer:
        """A producer function that subscribes to *topic* and forwards its events."""


class LocalFanOut:
    """The benchmark's own fan-out, used when ``trio_sse.Broadcaster`` is not available."""

    impl = "benchmark's own (anyio channel per subscriber, EventSourceResponse(receive))"

    def __init__(self) -> None:
        self._topics: dict[str, set[Send]] = {}

    async def serve(self, topic: str, scope: Scope, receive: Receive, send: ASGISend) -> None:
        channel, events = anyio.create_memory_object_stream[ServerSentEvent](SUBSCRIBER_BUFFER)
        subscribers = self._topics.setdefault(topic, set())
        subscribers.add(channel)
        try:
            await EventSourceResponse(events)(scope, receive, send)
        finally:
            subscribers.discard(channel)
            channel.close()

    def producer(self, topic: str) -> Producer:
        async def forward(send: Send) -> None:
            channel, events = anyio.create_memory_object_stream[ServerSentEvent](SUBSCRIBER_BUFFER)
            subscribers = self._topics.setdefault(topic, set())
            subscribers.add(channel)
            try:
                async with send, events:
                    async for event in events:
                        await send.send(event)
            finally:
                subscribers.discard(channel)
                channel.close()

        return forward

    async def publish(self, topic: str, data: str, seq: int) -> int:
        subscribers = self._topics.get(topic)
        if not subscribers:
            return 0
        event = ServerSentEvent(data, id=str(seq))  # one object for every subscriber
        gone: list[Send] = []
        for channel in subscribers:
            try:
                channel.send_nowait(event)
            except anyio.WouldBlock:
                gone.append(channel)  # fell SUBSCRIBER_BUFFER events behind: dropped
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                gone.append(channel)
        for channel in gone:
            subscribers.discard(channel)
            channel.close()
        return len(subscribers)


class BroadcasterFanOut:
    """``trio_sse.Broadcaster``: ``async with hub.subscribe(topic) as events``, streamed as is."""

    impl = "trio_sse.Broadcaster (hub.subscribe(topic) streamed by EventSourceResponse(events))"

    def __init__(self, hub: Any) -> None:
        self._hub = hub

    async def serve(self, topic: str, scope: Scope, receive: Receive, send: ASGISend) -> None:
        async with self._hub.subscribe(topic, max_buffer_size=SUBSCRIBER_BUFFER) as events:
            await EventSourceResponse(events)(scope, receive, send)

    def producer(self, topic: str) -> Producer:
        hub = self._hub

        async def forward(send: Send) -> None:
            async with send, hub.subscribe(topic, max_buffer_size=SUBSCRIBER_BUFFER) as events:
                async for event in events:
                    await send.send(event)

        return forward

    async def publish(self, topic: str, data: str, seq: int) -> int:
        # No id of our own: the hub gives each event a unique one (rounds repeat seq numbers).
        result = self._hub.publish(topic, ServerSentEvent(data))
        if inspect.isawaitable(result):
            result = await result
        return result if isinstance(result, int) and not isinstance(result, bool) else -1


_state: dict[str, FanOut] = {}


def _fan_out() -> FanOut:
    try:
        return _state["fan_out"]
    except KeyError:
        raise RuntimeError("the app's lifespan has not run") from None


def _backend() -> Any:
    """``RedisBackend(TRIO_SSE_BENCH_REDIS_URL)`` when set (the redis scenario), else memory."""
    url = os.environ.get("TRIO_SSE_BENCH_REDIS_URL")
    if not url:
        return None
    from trio_sse.backends import RedisBackend

    return RedisBackend(url, prefix=os.environ.get("TRIO_SSE_BENCH_REDIS_PREFIX", "bench:"))


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    broadcaster = broadcaster_class()
    if broadcaster is None:
        _state["fan_out"] = LocalFanOut()
        try:
            yield
        finally:
            _state.pop("fan_out", None)
        return
    async with broadcaster(_backend()) as hub:
        _state["fan_out"] = BroadcasterFanOut(hub)
        try:
            yield
        finally:
            _state.pop("fan_out", None)


async def _produce(send: Send, n: int, data: str) -> None:
    async with send:
        for i in range(n):
            await send.send(ServerSentEvent(data, id=str(i)))


async def _generate(n: int, data: str) -> AsyncIterator[ServerSentEvent]:
    for i in range(n):
        yield ServerSentEvent(data, id=str(i))


async def stream(request: Request) -> Response:
    params = query(request.scope)
    n = int_arg(params, "n", 1000)
    data = make_payload(int_arg(params, "size", 32))
    return EventSourceResponse(_produce, n, data)


async def stream_gen(request: Request) -> Response:
    """``/stream-gen``: the same events from an async generator (the sse-starlette style);
    ``?prefetch=``: its ``max_prefetch`` (default 16, the library's), the most per message."""
    params = query(request.scope)
    n = int_arg(params, "n", 1000)
    events = _generate(n, make_payload(int_arg(params, "size", 32)))
    return EventSourceResponse(events, max_prefetch=int_arg(params, "prefetch", 16))


async def subscribe(scope: Scope, receive: Receive, send: ASGISend) -> None:
    """``/subscribe``: a plain ASGI endpoint, so that a subscription can wrap the response."""
    await _fan_out().serve(query(scope).get("topic", DEFAULT_TOPIC), scope, receive, send)


async def subscribe_producer(request: Request) -> Response:
    """``/subscribe-producer``: the producer path of a subscription: a producer function (a
    task and the response's channel per stream) that subscribes and forwards each event."""
    topic = query(request.scope).get("topic", DEFAULT_TOPIC)
    return EventSourceResponse(_fan_out().producer(topic))


class _SubscribeEndpoint:
    """Starlette routes to an object that is not a function as to an ASGI app."""

    async def __call__(self, scope: Scope, receive: Receive, send: ASGISend) -> None:
        await subscribe(scope, receive, send)


async def publish(request: Request) -> Response:
    params = query(request.scope)
    topic = params.get("topic", DEFAULT_TOPIC)
    fan_out = _fan_out()
    reached = 0
    async for seq in paced_sequence(params):
        reached = await fan_out.publish(topic, publish_data(seq), seq)
    return PlainTextResponse(str(reached))


async def _endless(send: Send, interval: float) -> None:
    token = current_shutdown_token()
    async with send:
        n = 0
        while not token.triggered:
            await send.send(ServerSentEvent(str(n), id=str(n)))
            n += 1
            with anyio.move_on_after(interval):
                await token.wait()


async def endless(request: Request) -> Response:
    interval = float_arg(query(request.scope), "interval", ENDLESS_INTERVAL)
    return EventSourceResponse(_endless, interval, shutdown_grace_period=SHUTDOWN_GRACE)


async def stats(request: Request) -> Response:
    return JSONResponse({"app": "trio_sse", "impl": _fan_out().impl})


app = Starlette(
    routes=[
        Route("/stream", stream),
        Route("/stream-gen", stream_gen),
        Route("/subscribe", _SubscribeEndpoint()),
        Route("/subscribe-producer", subscribe_producer),
        Route("/publish", publish),
        Route("/endless", endless),
        Route("/stats", stats),
    ],
    lifespan=lifespan,
)
