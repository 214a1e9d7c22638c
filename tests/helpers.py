"""Small helpers shared by the tests (no fixtures here: those live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from trio_sse import EventSourceResponse


def app_for(make_response: Callable[[], Response]) -> Starlette:
    """A Starlette app whose ``/`` route returns ``make_response()``."""

    async def endpoint(request: Request) -> Response:
        return make_response()

    return Starlette(routes=[Route("/", endpoint, methods=["GET", "HEAD"])])


def sse_app(content_factory: Callable[[], Any], **options: Any) -> Starlette:
    """A Starlette app streaming ``content_factory()`` with the given response options."""
    return app_for(lambda: EventSourceResponse(content_factory(), **options))


class ChunkStream(anyio.abc.ByteReceiveStream):
    """A byte stream that yields *data* in chunks of *size*: input for the RESP parser."""

    def __init__(self, data: bytes, size: int) -> None:
        self._chunks = [data[start : start + size] for start in range(0, len(data), size)]

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if not self._chunks:
            raise anyio.EndOfStream
        return self._chunks.pop(0)

    async def aclose(self) -> None:
        pass
