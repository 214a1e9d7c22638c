"""The event loop the runner makes for asyncio (``run(backend="asyncio")``, the workers).

asyncio closes a TLS connection by sending ``close_notify`` and waiting for the peer's, up
to ``ssl_shutdown_timeout`` (30 s by default). hypercorn's asyncio worker waits for its
connections when it stops, so one TLS connection that its client keeps open and idle (an
HTTP client's pool does not read an idle connection) held the runner's exit for 30 s after
the streams had drained. The runner's own loop gives the servers it creates over TLS a short
``ssl_shutdown_timeout`` instead (``create_server`` is asyncio's public API; the loop is the
platform's default selector loop). A loop the application runs itself (``await serve(...)``
in its own ``asyncio.run``) is left alone. Nothing here is a checkpoint.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["SSL_SHUTDOWN_TIMEOUT", "RunnerEventLoop", "backend_options"]

SSL_SHUTDOWN_TIMEOUT = 1.0
"""Seconds a TLS connection the runner closes waits for the client's ``close_notify``."""


class RunnerEventLoop(asyncio.SelectorEventLoop):
    """The default selector loop, whose TLS servers wait at most SSL_SHUTDOWN_TIMEOUT for a
    client's ``close_notify`` (unless the caller gave its own ``ssl_shutdown_timeout``)."""

    async def create_server(self, *args: Any, **kwargs: Any) -> asyncio.Server:
        if kwargs.get("ssl") is not None and kwargs.get("ssl_shutdown_timeout") is None:
            kwargs["ssl_shutdown_timeout"] = SSL_SHUTDOWN_TIMEOUT
        return await super().create_server(*args, **kwargs)


def backend_options(backend: str) -> dict[str, Any]:
    """``anyio.run``'s ``backend_options`` for the runner's own loop on *backend*."""
    return {"loop_factory": RunnerEventLoop} if backend == "asyncio" else {}
