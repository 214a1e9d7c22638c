"""The GC probe's app (``benchmarks._gc_app``) answers ``/gc`` and serves the wrapped app."""

from __future__ import annotations

import json
import types

import anyio
import pytest
from benchmarks import _gc_app

from trio_sse.testing import open_event_stream

pytestmark = pytest.mark.anyio


async def test_gc_route_counts_and_times_collections() -> None:
    with anyio.fail_after(30):
        async with open_event_stream(_gc_app.app, "/gc?collect=1&types=1&time=1") as response:
            body = b"".join([chunk async for chunk in response.iter_bytes()])
    found = json.loads(body)
    assert response.status_code == 200
    assert found["objects"] > 1000
    assert found["bytes"] > 16 * found["objects"]  # every object takes at least its header
    # This very request is served by live coroutines, named by their code.
    assert "coroutine test_gc_route_counts_and_times_collections" in found["types"]
    assert len(found["full_ms"]) == 7 and found["full_ms"] == sorted(found["full_ms"])


async def test_other_paths_go_to_the_wrapped_app() -> None:
    # The default wrapped app is the trio_sse benchmark app; /stats needs its lifespan, so a
    # path it does not route is enough to show the request reached it (Starlette's 404).
    with anyio.fail_after(10):
        async with open_event_stream(_gc_app.app, "/nowhere") as response:
            body = b"".join([chunk async for chunk in response.iter_bytes()])
    assert (response.status_code, body) == (404, b"Not Found")


def test_type_names_say_whose_code() -> None:
    async def coroutine_function() -> None:
        pass

    class Holder:
        def method(self) -> None:
            pass

    coroutine = coroutine_function()
    try:
        assert _gc_app.type_name(coroutine).endswith("coroutine_function")
    finally:
        coroutine.close()
    assert _gc_app.type_name(coroutine_function).startswith("function ")
    method = Holder().method
    assert isinstance(method, types.MethodType)
    assert _gc_app.type_name(method).endswith("Holder.method")
    assert _gc_app.type_name(property()) == "property"
