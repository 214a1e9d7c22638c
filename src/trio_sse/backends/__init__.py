"""Where a :class:`~trio_sse.Broadcaster` keeps topics and history: the backend protocol.

* :class:`MemoryBackend` (the default): one process, history in memory.
* :class:`RedisBackend`: Redis Streams, shared by several processes, history that survives
  restarts; on coredis (``pip install 'trio_sse[redis]'``), imported when one is created.

A backend is small (see :class:`Backend`): store an event and return its id, replay the
events after an id, and deliver live events of watched topics in order.
"""

from ._base import Backend as Backend
from ._base import Deliver as Deliver
from ._base import Entry as Entry
from ._base import Position as Position
from ._base import Replay as Replay
from ._base import ReplayStatus as ReplayStatus
from ._base import Revocations as Revocations
from ._base import Revoke as Revoke
from ._errors import RedisConnectionError as RedisConnectionError
from ._errors import RedisError as RedisError
from ._errors import RedisNotReplicatedError as RedisNotReplicatedError
from ._errors import RedisReplyError as RedisReplyError
from .memory import MemoryBackend as MemoryBackend
from .redis import RedisBackend as RedisBackend

__all__ = [
    "Backend",
    "Deliver",
    "Entry",
    "MemoryBackend",
    "Position",
    "RedisBackend",
    "RedisConnectionError",
    "RedisError",
    "RedisNotReplicatedError",
    "RedisReplyError",
    "Replay",
    "ReplayStatus",
    "Revocations",
    "Revoke",
]
