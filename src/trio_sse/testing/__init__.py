"""Test SSE endpoints in-process: drive an ASGI app directly and read its stream as it comes.

``httpx.ASGITransport`` and Starlette's ``TestClient`` buffer a whole response body, so they
hang on an endless event stream; :func:`open_event_stream` hands you each event as the app
sends it, can disconnect on demand, and works under trio and asyncio alike.

:func:`open_app` runs the app's lifespan (startup on entering, shutdown on leaving) and yields
a :class:`RunningApp`: pass that to :func:`open_event_stream` in place of the app, and each
request sees the lifespan's state (``request.state``)::

    async with open_app(app) as running, open_event_stream(running, "/events") as stream:
        event = (await stream.read_events(1))[0]

Errors of the app come out as themselves, never in an exception group.
"""

from ._client import EventStream as EventStream
from ._client import open_event_stream as open_event_stream
from ._lifespan import RunningApp as RunningApp
from ._lifespan import open_app as open_app

__all__ = ["EventStream", "RunningApp", "open_app", "open_event_stream"]
