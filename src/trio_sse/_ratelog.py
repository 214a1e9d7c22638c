"""Logging that does not flood: at most one record per kind of failure per interval.

When a shared dependency is down (Redis), every stream that tries to start fails the same
way; a log line (with a traceback) per stream buries the one fact under thousands of copies
(issue 15: 72 tracebacks in 2 s for 47 attempts). A :class:`LogLimiter` admits the first
failure of each kind, then none of that kind until *interval* seconds have passed; the next
record admitted says how many were left out in between. Pure and sync: the clock is a
parameter; nothing here blocks or is a checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["LogLimiter"]


class LogLimiter:
    """``admit(kind)``: ``None`` to stay silent, else how many of *kind* were left out since
    the last record of that kind. ``LogLimiter(interval=10.0, *, clock=time.monotonic)``."""

    __slots__ = ("_clock", "_kinds", "interval")

    def __init__(self, interval: float = 10.0, *, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._kinds: dict[str, tuple[float, int]] = {}  # kind -> (last admitted at, left out)

    def admit(self, kind: str) -> int | None:
        now = self._clock()
        last = self._kinds.get(kind)
        if last is not None and now - last[0] < self.interval:
            self._kinds[kind] = (last[0], last[1] + 1)
            return None
        self._kinds[kind] = (now, 0)
        return last[1] if last is not None else 0

    def reset(self) -> None:
        """Forget every kind (tests start from a clean slate)."""
        self._kinds.clear()
