"""Run an ASGI app's lifespan around in-process requests: ``trio_sse.testing.open_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import anyio

from ._client import ASGIApp, Message

__all__ = ["RunningApp", "open_app"]


class RunningApp:
    """An ASGI app whose lifespan has started, as yielded by :func:`open_app`.

    It is itself an ASGI app: pass it to :func:`~trio_sse.testing.open_event_stream` (or to
    ``httpx.ASGITransport``) instead of the app. Each ``http`` and ``websocket`` request gets
    a shallow copy of the lifespan state as ``scope["state"]`` (what the lifespan yielded,
    read by ``request.state``), as ASGI servers and Starlette's ``TestClient`` do; other
    scopes are passed through. Calling it after :func:`open_app`'s block has exited raises
    ``RuntimeError``.

    ``app`` is the wrapped app, ``state`` the lifespan state itself (not a copy).
    """

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state
        self._ended = False

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if self._ended:
            raise RuntimeError("the app's lifespan has ended: call it inside open_app's block")
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "state": dict(self.state)}
        await self.app(scope, receive, send)


class _Lifespan:
    """The server's side of the ``lifespan`` scope: one phase at a time, errors kept."""

    def __init__(self, app: ASGIApp, state: dict[str, Any]) -> None:
        self._app = app
        self._state = state
        self._to_app, self._app_inbox = anyio.create_memory_object_stream[Message](2)
        self._app_outbox, self._from_app = anyio.create_memory_object_stream[Message](2)
        self.failure: Exception | None = None

    async def run(self) -> None:
        """Call the app with the ``lifespan`` scope; keep its exception (a task never raises
        an ``Exception``). Closes the app's side of the channels when it returns."""
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self._state,
        }
        async with self._app_inbox, self._app_outbox:
            try:
                await self._app(scope, self._app_inbox.receive, self._send)
            except Exception as exc:
                self.failure = exc

    async def _send(self, message: Message) -> None:
        await self._app_outbox.send(dict(message))

    async def phase(self, name: str) -> bool:
        """Send ``lifespan.<name>`` and wait for the answer. A checkpoint.

        True once the app answered ``.complete``; False if it returned without answering
        (no lifespan support). Otherwise the failure is kept in ``failure`` (the app's
        exception, or a ``RuntimeError`` for a ``.failed`` message or an unexpected one).
        """
        try:
            await self._to_app.send({"type": f"lifespan.{name}"})
        except anyio.BrokenResourceError:
            pass  # the app has returned already: its outcome is read below
        try:
            message = await self._from_app.receive()
        except anyio.EndOfStream:
            return False
        if message["type"] == f"lifespan.{name}.complete":
            return True
        await self._wait_returned()
        if self.failure is None:
            self.failure = RuntimeError(f"lifespan {name} failed: {message!r}")
        return False

    async def _wait_returned(self) -> None:
        async for _ in self._from_app:
            pass

    async def wait_returned(self) -> None:
        """Wait for the app's lifespan call to return (after shutdown). A checkpoint."""
        await self._wait_returned()

    def close(self) -> None:
        """Close the host's ends of the channels. Not a checkpoint."""
        self._to_app.close()
        self._from_app.close()


@asynccontextmanager
async def open_app(app: ASGIApp) -> AsyncIterator[RunningApp]:
    """Run *app*'s lifespan: startup on entering, shutdown on leaving; yield a :class:`RunningApp`.

    Entering sends ``lifespan.startup`` and waits for ``lifespan.startup.complete`` (a
    checkpoint); the state the lifespan yields (``scope["state"]``) is then shared, as a
    shallow copy, with every request made through the :class:`RunningApp`. Leaving sends
    ``lifespan.shutdown`` and awaits ``lifespan.shutdown.complete`` and the lifespan call's
    return, also when the block raised. If the block is cancelled, the lifespan call is
    cancelled with it instead (no shutdown message).

    Errors are raised as themselves, never in an exception group: an exception the app raises
    during startup (an app that does not support lifespan and raises on the ``lifespan``
    scope, as Starlette's ``TestClient`` raises it) on entering; a ``RuntimeError`` for a
    ``.failed`` message without an exception; a shutdown error on leaving (with the block's
    exception, if any, as its ``__context__``). An app whose lifespan call returns without
    answering startup is taken to have no lifespan: the block runs with an empty state and
    nothing is sent at shutdown (``TestClient`` fails there with a ``TypeError``).

    The lifespan call runs in a task of this context manager, which owns its channels. Guard
    every use with a timeout (``anyio.fail_after``).
    """
    state: dict[str, Any] = {}
    lifespan = _Lifespan(app, state)
    running = RunningApp(app, state)
    body_error: Exception | None = None
    # Nothing but cancellation is raised inside the task group: errors are raised after it.
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(lifespan.run)
            started = await lifespan.phase("startup")
            if lifespan.failure is None:
                try:
                    yield running
                except Exception as exc:
                    body_error = exc
                finally:
                    running._ended = True
                if started:
                    await lifespan.phase("shutdown")
            await lifespan.wait_returned()
    finally:
        lifespan.close()
    _raise_outcome(lifespan.failure, body_error)


def _raise_outcome(failure: Exception | None, body_error: Exception | None) -> None:
    if failure is not None:
        if body_error is not None and body_error is not failure:
            failure.__context__ = body_error
        raise failure
    if body_error is not None:
        raise body_error
