"""Test SSE endpoints in-process: drive an ASGI app directly and read its stream as it comes.

``httpx.ASGITransport`` and Starlette's ``TestClient`` buffer a whole response body, so they
hang on an endless event stream; :func:`open_event_stream` hands you each event as the app
sends it, can disconnect on demand, and works under trio and asyncio alike.
"""

from ._client import EventStream as EventStream
from ._client import open_event_stream as open_event_stream

__all__ = ["EventStream", "open_event_stream"]
