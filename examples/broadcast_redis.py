"""Broadcast across two processes on Redis Streams: resume on the other process, survive a restart.

The same chat app as broadcast_chat.py, on a Redis backend. Start it twice, on two ports,
against one Redis: a message posted to either process reaches the streams of both, and a
client that reconnects to the other process with its Last-Event-ID misses nothing.

Run:   redis-server --port 6379 &
       REDIS_URL=redis://127.0.0.1:6379/0 PORT=8001 python examples/broadcast_redis.py &
       REDIS_URL=redis://127.0.0.1:6379/0 PORT=8002 python examples/broadcast_redis.py &
Try:   curl -N http://127.0.0.1:8001/rooms/lobby
       curl -d '{"user": "ada", "text": "hi from 8002"}' http://127.0.0.1:8002/rooms/lobby
"""

from __future__ import annotations

import os

from broadcast_chat import create_app
from trio_sse import run

app = create_app(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))

if __name__ == "__main__":
    run(app, backend="trio", port=int(os.environ.get("PORT", "8000")))
