"""Small helpers shared by the tests (no fixtures here: those live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
