"""An SSE client on httpx (or httpx2) that behaves like a browser's ``EventSource``.

::

    import httpx
    import trio_sse.client

    async with httpx.AsyncClient() as http:
        async with trio_sse.client.connect(http, "http://127.0.0.1:8000/events") as source:
            async for event in source:
                print(event.event, event.data, event.id)

It checks the status and content type, decodes with :class:`trio_sse.EventDecoder`, sends
``Last-Event-ID`` when reconnecting, honours ``retry:``, backs off after failures and closes its
connection when cancelled, under trio and asyncio alike. A public subpackage that
``trio_sse`` itself does not import; ``python -m trio_sse.client URL`` prints a stream.

It needs httpx (``pip install 'trio_sse[client]'``) or httpx2 (``pip install
'trio_sse[httpx2]'``): importing it without either raises an ``ImportError`` saying so.
"""

# First: without httpx or httpx2 this raises an ImportError that names the extras.
from . import _http  # noqa: F401
from ._errors import SSEConnectionError as SSEConnectionError
from ._errors import SSEContentTypeError as SSEContentTypeError
from ._errors import SSEError as SSEError
from ._errors import SSEResponseError as SSEResponseError
from ._errors import SSEStatusError as SSEStatusError
from ._source import DEFAULT_BACKOFF as DEFAULT_BACKOFF
from ._source import DEFAULT_BACKOFF_FACTOR as DEFAULT_BACKOFF_FACTOR
from ._source import DEFAULT_JITTER as DEFAULT_JITTER
from ._source import DEFAULT_MAX_ATTEMPTS as DEFAULT_MAX_ATTEMPTS
from ._source import DEFAULT_MAX_BACKOFF as DEFAULT_MAX_BACKOFF
from ._source import EventSource as EventSource
from ._source import State as State
from ._source import connect as connect

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_BACKOFF_FACTOR",
    "DEFAULT_JITTER",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_BACKOFF",
    "EventSource",
    "SSEConnectionError",
    "SSEContentTypeError",
    "SSEError",
    "SSEResponseError",
    "SSEStatusError",
    "State",
    "connect",
]
