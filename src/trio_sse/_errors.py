"""Exceptions raised by trio_sse."""

from __future__ import annotations

__all__ = ["SendTimeoutError"]


class SendTimeoutError(TimeoutError):
    """A send to the client did not complete within ``send_timeout`` seconds.

    The response closes its producer and raises this from its ASGI call, so the server
    drops the connection (the client is not reading; nothing more can be sent).
    """
