"""trio_sse: Server-Sent Events for Starlette and any ASGI app, trio-first.

Public names are re-exported here; the modules behind them are private.
``trio_sse.testing`` and ``trio_sse.client`` are public subpackages not imported here, nor is
``trio_sse.metrics`` (OpenTelemetry, the ``otel`` extra).
"""

from ._access import Access as Access
from ._broadcast import Broadcaster as Broadcaster
from ._broadcast import BroadcastStats as BroadcastStats
from ._broadcast import Overflow as Overflow
from ._broadcast import Subscription as Subscription
from ._cursor import MAX_CURSOR_LENGTH as MAX_CURSOR_LENGTH
from ._cursor import MAX_STREAM_TOPICS as MAX_STREAM_TOPICS
from ._cursor import topic_key as topic_key
from ._daphne import chain_daphne_signals as chain_daphne_signals
from ._decoder import EventDecoder as EventDecoder
from ._encoder import SEPARATORS as SEPARATORS
from ._errors import AccessError as AccessError
from ._errors import AuthorizationError as AuthorizationError
from ._errors import AuthorizationTimeout as AuthorizationTimeout
from ._errors import Forbidden as Forbidden
from ._errors import SendTimeoutError as SendTimeoutError
from ._events import JSONServerSentEvent as JSONServerSentEvent
from ._events import ServerSentEvent as ServerSentEvent
from ._granian import chain_granian_signals as chain_granian_signals
from ._hooks import CloseReason as CloseReason
from ._hooks import StreamClosed as StreamClosed
from ._hooks import StreamHooks as StreamHooks
from ._lifetime import seconds_until as seconds_until
from ._limit import STREAM_LIMIT_SCOPE_KEY as STREAM_LIMIT_SCOPE_KEY
from ._limit import StreamLimit as StreamLimit
from ._limit import StreamLimitMiddleware as StreamLimitMiddleware
from ._response import EventSourceResponse as EventSourceResponse
from ._serve import run as run
from ._serve import serve as serve
from ._shutdown import ShutdownToken as ShutdownToken
from ._shutdown import current_shutdown_token as current_shutdown_token
from ._shutdown import default_shutdown_token as default_shutdown_token
from ._streaminfo import StreamInfo as StreamInfo
from ._uvicorn import chain_uvicorn_signals as chain_uvicorn_signals
from ._uvicorn import set_uvicorn_chaining as set_uvicorn_chaining

__version__ = "0.1.0"
