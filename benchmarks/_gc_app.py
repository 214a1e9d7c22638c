"""A benchmark app with a ``/gc`` route: what the process's garbage collector holds.

``benchmarks._gc_app:app`` serves the app named by ``TRIO_SSE_BENCH_GC_APP`` (``trio_sse``,
the default, ``sse-starlette`` or ``raw``) and answers ``GET /gc`` itself with JSON:
``objects`` (``len(gc.get_objects())``), ``bytes`` (their ``sys.getsizeof`` summed: what
they take themselves, not the untracked objects they hold, such as strings and ints), ``types`` (object count per type name, with
``?types=1``) and ``full_ms`` (seven timed ``gc.collect()`` passes, with ``?time=1``);
``?collect=1`` collects first. Used by ``python -m benchmarks.gc_probe`` (issue 18).
"""

from __future__ import annotations

import collections
import gc
import importlib
import json
import os
import sys
import time
import types
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["app", "type_name"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_MODULES = {
    "trio_sse": "benchmarks.app_trio_sse",
    "sse-starlette": "benchmarks.app_sse_starlette",
    "raw": "benchmarks.app_raw",
}
_inner: Any = importlib.import_module(
    _MODULES[os.environ.get("TRIO_SSE_BENCH_GC_APP", "trio_sse")]
).app


def type_name(obj: object) -> str:
    """The type's name; for code objects' holders (coroutines, functions, bound methods) the
    code's qualified name too, which says whose they are."""
    kind = type(obj).__qualname__
    if isinstance(obj, types.CoroutineType):
        return f"{kind} {obj.cr_code.co_qualname}"
    if isinstance(obj, types.FunctionType):
        return f"{kind} {obj.__code__.co_qualname}"
    if isinstance(obj, types.MethodType):
        return f"{kind} {getattr(obj.__func__, '__qualname__', '?')}"
    return kind


def _report(query: bytes) -> dict[str, Any]:
    if b"collect=1" in query:
        gc.collect()
    objects = gc.get_objects()
    found: dict[str, Any] = {"objects": len(objects), "bytes": sum(map(sys.getsizeof, objects))}
    if b"types=1" in query:
        found["types"] = collections.Counter(type_name(obj) for obj in objects)
    del objects
    if b"time=1" in query:
        times = []
        for _ in range(7):
            start = time.perf_counter()
            gc.collect()
            times.append((time.perf_counter() - start) * 1000)
        found["full_ms"] = sorted(times)
    return found


async def app(scope: Message, receive: Receive, send: Send) -> None:
    """The wrapped app, and ``/gc``."""
    if scope["type"] != "http" or scope["path"] != "/gc":
        await _inner(scope, receive, send)
        return
    body = json.dumps(_report(scope.get("query_string", b""))).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
