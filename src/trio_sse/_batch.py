"""The writer's coalescing policy: what goes into one body message, and what to do after it.

Pure and synchronous: no I/O, no clock of its own (the writer passes the time), so the policy
is unit-tested without an event loop (``tests/test_batch.py``). The stream loop in
``_stream`` does the waiting and the sending; a :class:`Batch` only decides. The policy
takes only what is ready and never waits on a timer to fill a batch:

* every item found ready goes into the batch, up to ``max_bytes`` (~64 KiB) or ``max_items``
  (an iterable's ``max_prefetch``: its pump can make no more before the server accepts);
* while the producer is **busy** (it made items while the writer was sending or passing),
  the writer takes scheduling passes and gathers what each brings, until a pass (two under
  trio: ``quiet_passes``) brings nothing, the batch has no room, or ``MAX_PASSES`` went by;
* after a send (:meth:`Batch.sent`): a batch that hit the byte limit means *look again at
  once*; a send soon after the previous one (``BUSY_GAP``) means *one pass, then look
  again*; otherwise *park* until the next item.
"""

from __future__ import annotations

import math

__all__ = ["AGAIN", "BATCH_BYTES", "BUSY_GAP", "MAX_PASSES", "PARK", "PASS", "Batch"]

# Ready events are gathered into one ASGI message up to about this many bytes: the per-message
# cost of the server (tens of microseconds on hypercorn's trio worker) is what limits
# throughput, not the size of the body.
BATCH_BYTES = 64 * 1024

# A busy producer's batch is sent after at most this many scheduling passes, even if the
# producer is still going: the first event of a batch never waits for more than that.
MAX_PASSES = 64

# Two sends less than this apart (seconds) mean a busy producer: worth a scheduling pass after
# the send to gather what it makes next. Slower streams (a broadcast to many subscribers, say)
# go straight back to waiting. Only decides whether to look again, never delays a send.
BUSY_GAP = 0.001

# What the writer does after a send (see :meth:`Batch.sent`).
AGAIN = "again"  # the batch was full: look for more at once, gathering (busy)
PASS = "pass"  # sent soon after the previous send: one scheduling pass, then look again
PARK = "park"  # wait for the next item


class Batch:
    """The chunks of the next body message, and the writer's coalescing state.

    One per stream, used by its writer only. :meth:`add` an encoded item (the writer's
    drain appends to ``chunks`` and sets ``size`` itself, for speed); :meth:`has_room` says
    whether to take more; :meth:`take` empties it into one body; :meth:`sent` records the send
    and says what to do next, :meth:`look_again` whether to look again or park. While
    :meth:`wants_gathering`, :meth:`start_gathering` and :meth:`gathered` drive the scheduling
    passes of a busy producer.
    """

    __slots__ = (
        "_full",
        "_last_send",
        "_passes",
        "_quiet",
        "busy",
        "chunks",
        "max_bytes",
        "max_items",
        "quiet_passes",
        "size",
    )

    def __init__(
        self, max_items: int = BATCH_BYTES, quiet_passes: int = 1, max_bytes: int = BATCH_BYTES
    ) -> None:
        self.chunks: list[bytes] = []  # the encoded items (``_stream._drain`` appends to it)
        self.size = 0  # bytes in the batch
        self.max_bytes = max_bytes
        self.max_items = max_items
        self.quiet_passes = quiet_passes  # empty passes in a row that end a gathering
        self.busy = False  # the producer made items while the writer was sending or passing
        self._full = False  # the last batch taken had reached max_bytes
        self._last_send = -math.inf
        self._passes = 0
        self._quiet = 0

    def add(self, chunk: bytes) -> None:
        """Put one encoded item in the batch (even past the limits: they say when to stop)."""
        self.chunks.append(chunk)
        self.size += len(chunk)

    def has_room(self) -> bool:
        """Below both limits: worth taking another ready item."""
        return self.size < self.max_bytes and len(self.chunks) < self.max_items

    def take(self) -> bytes:
        """The batch as one body (the chunk itself when there is one); the batch is emptied."""
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._full = self.size >= self.max_bytes
        chunks.clear()
        self.size = 0
        return body

    def sent(self, now: float) -> str:
        """The body :meth:`take` gave was sent at *now*: ``AGAIN``, ``PASS`` or ``PARK``.

        ``AGAIN`` also marks the producer busy (the next look gathers with passes).
        """
        recent = now - self._last_send < BUSY_GAP
        self._last_send = now
        if self._full:
            self.busy = True
            return AGAIN
        return PASS if recent else PARK

    def look_again(self, step: str, ended: bool) -> bool:
        """After :meth:`sent`'s *step* (and, for ``PASS``, the pass and a look): look again
        rather than park? *ended*: that look found the source's end. Sets :attr:`busy`."""
        if step == AGAIN:
            return True
        self.busy = step == PASS and (bool(self.chunks) or ended)
        return self.busy

    def wants_gathering(self) -> bool:
        """The producer is busy and the batch has room: gather with scheduling passes."""
        return self.busy and self.has_room()

    def start_gathering(self) -> None:
        """A run of scheduling passes begins (see :meth:`gathered`)."""
        self._passes = 0
        self._quiet = 0

    def gathered(self, before: int) -> bool:
        """After one pass and a look that took the batch from *before* chunks: go on?

        Stops when the batch has no room, after ``quiet_passes`` passes in a row that brought
        nothing, or after ``MAX_PASSES`` passes.
        """
        self._passes += 1
        if not self.has_room():
            return False
        if len(self.chunks) == before:
            self._quiet += 1
            if self._quiet >= self.quiet_passes:
                return False
        else:
            self._quiet = 0
        return self._passes < MAX_PASSES
