"""How far an iterable may be pulled ahead of the server: a count of credits (issue 12).

An iterable given as content (the sse-starlette path) is pulled by a pump task into the
stream's channel. Without a bound, against a client that reads nothing, the pump would fill
the channel and the writer's batch (hundreds of items), and every item taken from a generator
that reads a queue would be lost at the disconnect. :class:`PrefetchGate` holds
``max_prefetch`` credits: the pump takes one before it pulls an item, the writer gives back
one per item once the ``send`` that carried it returned (the server accepted it). So the
items taken from the iterable and not yet accepted, wherever they are (held by the pump, in
the channel, in the batch being sent), are never more than ``max_prefetch``.

Producer functions and channels have no gate: their bounded channel is their own bound.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from ._asynclib import Parker, current_asynclib
from ._validate import positive_int

__all__ = ["DEFAULT_MAX_PREFETCH", "PrefetchGate"]

# Items an iterable may be pulled ahead of what the server accepted: enough for a body message
# of several events when the client keeps up, few enough to lose little at a disconnect.
DEFAULT_MAX_PREFETCH = 16


class PrefetchGate:
    """``max_prefetch`` credits shared by one pump (which takes) and one writer (which returns).

    Both run in the same loop. :meth:`acquire` and :meth:`wait` are checkpoints only when they
    must wait; :meth:`take` and :meth:`release` never block. Credits never go below zero: only
    :meth:`acquire` spends one, and only after :meth:`wait` saw one.
    """

    __slots__ = ("_credit", "_parker", "limit")

    def __init__(self, limit: int) -> None:
        # Also the most items worth gathering into one body message.
        self.limit = self._credit = positive_int("max_prefetch", limit)
        self._parker: Parker | None = None  # made at the first wait, from the running loop

    async def acquire(self) -> None:
        """Take one credit, waiting (parked, cancellable) until the writer returns some."""
        await self.wait()
        self._credit -= 1

    def take(self) -> int:
        """Take every credit there is (maybe none) at once; never blocks, not a checkpoint."""
        credit, self._credit = self._credit, 0
        return credit

    async def wait(self) -> None:
        """Wait (parked, cancellable) until there is a credit; take none. A checkpoint only
        when it must wait."""
        while self._credit <= 0:
            parker = self._parker
            if parker is None:
                parker = self._parker = current_asynclib().parker()
            await parker.wait()

    def park(self) -> Awaitable[Any]:
        """Park (cancellable) until the writer returns credits; for a caller that just saw
        :meth:`take` return none (a wake-up may find none yet: take, and park again).
        Always a scheduling point. Without :meth:`wait`'s coroutine: the pump parks once
        per body message (issue 18)."""
        parker = self._parker
        if parker is None:
            parker = self._parker = current_asynclib().parker()
        return parker.wait()

    def release(self, count: int) -> None:
        """Give back *count* credits (items the server accepted); wake the pump if it waits."""
        self._credit += count
        parker = self._parker
        if parker is not None:
            parker.wake()
