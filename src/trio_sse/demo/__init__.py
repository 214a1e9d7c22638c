"""The trio_sse live demo: ``python -m trio_sse.demo`` and open http://127.0.0.1:8000.

One page (``index.html``, no external assets) follows three streams with ``EventSource``:

* ``/clock``: the server time once a second (event ``tick``, increasing ids, resumed from
  ``Last-Event-ID``): a producer function sending into its channel;
* ``/room``: a broadcast room on a :class:`~trio_sse.Broadcaster`. The page ``POST``s JSON
  messages to ``/room``; every open tab gets them at once. "Drop connection" closes the
  page's ``EventSource``; "Reconnect" opens a new one with ``?lastEventId=`` and the messages
  published meanwhile are replayed from the hub's history, marked as such on the page;
* ``/stats``: open streams, events sent, subscribers, dropped events, pushed once a second.

``create_app()`` builds the Starlette app, to serve it with any ASGI server; the command line
serves it with hypercorn under trio (``--backend asyncio`` for asyncio). Ctrl-C once: every
stream sends its farewell (the responses' ``farewell=`` option) and the server exits; twice:
stop at once.
"""

from ._app import create_app as create_app

__all__ = ["create_app"]
