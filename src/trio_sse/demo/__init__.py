"""The trio_sse live demo: ``python -m trio_sse.demo`` and open http://127.0.0.1:8000.

The page (``index.html``, no external assets) follows two streams with ``EventSource``:

* ``/clock``: endless, the server time once a second (event ``tick``, increasing ids, resumed
  from ``Last-Event-ID``); on shutdown it sends a ``shutdown`` farewell and closes;
* ``/numbers``: finite, ten ``number`` events ~0.3 s apart, then ``done``, after which the page
  closes its ``EventSource`` (a stream that just ends makes the browser reconnect).

``create_app()`` builds the Starlette app, to serve it with any ASGI server; the command line
serves it with hypercorn under trio (``--backend asyncio`` for asyncio). Ctrl-C once lets the
streams say goodbye within their grace period; twice stops at once.
"""

from ._app import create_app as create_app

__all__ = ["create_app"]
