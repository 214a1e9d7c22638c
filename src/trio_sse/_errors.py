"""Exceptions raised by trio_sse."""

from __future__ import annotations

__all__ = [
    "AccessError",
    "AuthorizationError",
    "AuthorizationTimeout",
    "Forbidden",
    "SendTimeoutError",
]


class SendTimeoutError(TimeoutError):
    """A send to the client did not complete within ``send_timeout`` seconds.

    The response closes its producer and raises this from its ASGI call, so the server
    drops the connection (the client is not reading; nothing more can be sent).
    """


class AccessError(Exception):
    """A subscription the hub did not open because of its ``authorize`` hook (the base class).

    ``status_code`` is the HTTP status that ``EventSourceResponse(hub.stream(...))`` answers
    with, before any header of the stream is sent; ``Broadcaster.subscribe`` raises it from
    ``async with``. The message names the topic (shortened); the response never shows it.
    """

    status_code = 500
    reason = "Internal Server Error"


class Forbidden(AccessError):
    """The hook refused the topic (it returned ``None`` or raised this): a 403.

    A hook may raise it itself, from anywhere in its own code, to refuse.
    """

    status_code = 403
    reason = "Forbidden"


class AuthorizationError(AccessError):
    """The hook raised (its exception is the ``__cause__``; logged once): a 500."""


class AuthorizationTimeout(AuthorizationError, TimeoutError):
    """The hook did not answer within ``authorize_timeout`` seconds (logged once): a 503."""

    status_code = 503
    reason = "Service Unavailable"
