"""Exceptions raised by ``trio_sse.client``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._http import Response

__all__ = [
    "SSEConnectionError",
    "SSEContentTypeError",
    "SSEError",
    "SSEResponseError",
    "SSEStatusError",
]


class SSEError(Exception):
    """Base class of every error the SSE client raises."""


class SSEResponseError(SSEError):
    """The server answered, but not with an event stream.

    WHATWG 9.2.3 calls this "fail the connection": the client does not reconnect.
    ``response`` is the (closed) ``httpx.Response`` (or ``httpx2.Response``); its status and
    headers can still be read.
    """

    def __init__(self, message: str, response: Response) -> None:
        super().__init__(message)
        self.response = response

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def content_type(self) -> str | None:
        value: str | None = self.response.headers.get("content-type")
        return value


class SSEStatusError(SSEResponseError):
    """The response status was neither 200 (a stream) nor 204 (the server says: stop)."""


class SSEContentTypeError(SSEResponseError):
    """A 200 response whose ``Content-Type`` is not ``text/event-stream``."""


class SSEConnectionError(SSEError):
    """No usable connection: a network error with ``reconnect=False``, or too many failures.

    ``attempts`` is the number of consecutive failed connection attempts when the client gave
    up. The last underlying error (an ``httpx.TransportError`` or its httpx2 twin, or an :class:`SSEStatusError`
    for a status listed in ``retry_statuses``) is the ``__cause__``.
    """

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts
