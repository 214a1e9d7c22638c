"""pytest plugin: stream an ASGI app in-process, with its lifespan, on the anyio backend.

Installing trio_sse is enough: the package registers this module as the ``pytest11`` entry
point ``trio_sse``, so pytest loads it in every project where trio_sse is installed (``-p
no:trio_sse`` turns it off; under ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` name it with ``-p
trio_sse.testing._plugin``). Do not list it in ``pytest_plugins`` too: pytest refuses a module
registered under two names. Define a fixture ``sse_app`` that returns the app under test; then, in tests
marked ``@pytest.mark.anyio``:

* ``sse_stream(path="/", **options)`` opens :func:`~trio_sse.testing.open_event_stream` on
  the running app (same options), an async context manager yielding an
  :class:`~trio_sse.testing.EventStream`;
* ``sse_running_app`` is the :class:`~trio_sse.testing.RunningApp` of
  :func:`~trio_sse.testing.open_app`: the lifespan is started before the test and shut down
  after it (its ``state`` is what the lifespan yielded).

Both run on the test's ``anyio_backend`` (trio, asyncio, or trio with a ``MockClock``: return
``("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})`` from ``anyio_backend``).
Guard each stream with ``anyio.fail_after`` as usual.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from ._client import ASGIApp, EventStream, open_event_stream
from ._lifespan import RunningApp, open_app

__all__ = ["sse_app", "sse_running_app", "sse_stream"]

OpenStream = Callable[..., AbstractAsyncContextManager[EventStream]]


@pytest.fixture
def sse_app() -> ASGIApp:
    """The ASGI app under test: define a fixture of this name (this one fails, saying so)."""
    pytest.fail(
        "the trio_sse fixtures need the app: define a fixture named 'sse_app' that returns it",
        pytrace=False,
    )


@pytest.fixture
async def sse_running_app(sse_app: ASGIApp, anyio_backend: Any) -> AsyncIterator[RunningApp]:
    """``sse_app`` with its lifespan running (startup before the test, shutdown after it)."""
    async with open_app(sse_app) as running:
        yield running


@pytest.fixture
def sse_stream(sse_running_app: RunningApp) -> OpenStream:
    """``open_event_stream`` bound to ``sse_running_app``: ``sse_stream(path, **options)``."""
    return functools.partial(open_event_stream, sse_running_app)
