"""``from sse_starlette.sse import X`` becomes ``from trio_sse.sse import X``.

For apps moving from sse-starlette: every public name of ``sse_starlette.sse`` that trio_sse
supports, as trio_sse's own object (``trio_sse.sse.EventSourceResponse is
trio_sse.EventSourceResponse``). New code imports from ``trio_sse`` itself.

* ``EventSourceResponse``, ``ServerSentEvent``, ``JSONServerSentEvent`` (which sse-starlette
  keeps in ``sse_starlette.event``; here too, so one import line serves) and
  ``SendTimeoutError``: re-exported.
* ``ensure_bytes(data, sep)``: trio_sse's ``encode_item``, the encoding its responses use.
  Two deliberate differences from sse-starlette's: an event with no ``sep`` of its own is
  encoded with *sep* (sse-starlette ignores *sep* for events and uses ``"\\r\\n"``), and a
  dict's own ``"sep"`` key wins over *sep* (sse-starlette overwrites it).
* ``Content``, ``ContentStream``, ``SyncContentStream``, ``AsyncContentStream``: the same type
  aliases, for annotations. (``EventSourceResponse`` also takes producer functions and
  receive channels, which they do not describe.)

Left out on purpose:

* ``AppStatus``: sse-starlette's process-wide shutdown flag, set by patching uvicorn when
  ``sse_starlette.sse`` is imported. trio_sse's shutdown is a :class:`~trio_sse.ShutdownToken`:
  ``AppStatus.should_exit = True`` becomes ``trio_sse.default_shutdown_token().trigger()``
  (or a token of your own, passed as ``shutdown=``), a test's reset of ``should_exit`` becomes a
  fresh ``ShutdownToken()`` per test, and ``AppStatus.disable_automatic_graceful_drain()``
  becomes ``trio_sse.set_uvicorn_chaining(False)``. A look-alike class would accept the
  assignments and ignore half of them (a token cannot be un-triggered): an import error
  is the clearer answer.
"""

from __future__ import annotations

# Private names: this module's namespace is its public surface (``dir(trio_sse.sse)``).
from collections.abc import AsyncIterable as _AsyncIterable
from collections.abc import Iterator as _Iterator
from typing import Any as _Any

from ._errors import SendTimeoutError
from ._events import JSONServerSentEvent, ServerSentEvent
from ._events import encode_item as ensure_bytes
from ._response import EventSourceResponse

__all__ = [
    "AsyncContentStream",
    "Content",
    "ContentStream",
    "EventSourceResponse",
    "JSONServerSentEvent",
    "SendTimeoutError",
    "ServerSentEvent",
    "SyncContentStream",
    "ensure_bytes",
]

Content = str | bytes | dict[str, _Any] | ServerSentEvent | _Any
SyncContentStream = _Iterator[Content]
AsyncContentStream = _AsyncIterable[Content]
ContentStream = AsyncContentStream | SyncContentStream
