"""How long to wait before the next connection attempt. Pure: no I/O, no clock."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from .._validate import positive_int

__all__ = ["check_policy", "reconnect_delay"]


def reconnect_delay(
    failures: int,
    *,
    base: float,
    factor: float,
    cap: float,
    jitter: float,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before the next connection attempt.

    * ``failures``: consecutive failed attempts so far (``0`` after a connection that worked
      and then ended).
    * ``base``: the reconnection time: the server's ``retry:`` if it sent one, else the
      client's default.

    The wait is ``base`` after a lost connection and after the first failed attempt, then grows
    by ``factor`` per further failure: ``base * factor ** (failures - 1)``, capped at ``cap``.
    The cap never goes below ``base``: WHATWG 9.2.3 has the client wait at least the
    reconnection time, and allows it to "wait some more" (exponential backoff is the example it
    gives). Jitter for the same reason only adds: a uniform extra of up to ``jitter`` times the
    wait, so that many clients dropped at once do not come back at the same instant.
    """
    ceiling = max(cap, base)
    try:
        delay = base * factor ** max(failures - 1, 0)
    except OverflowError:
        delay = math.inf
    delay = min(delay, ceiling)
    return delay * (1.0 + jitter * rand())


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_policy(
    *,
    max_attempts: int | None,
    backoff: float,
    max_backoff: float,
    backoff_factor: float,
    jitter: float,
) -> tuple[int | None, float, float, float, float]:
    """Validate the reconnection options, naming the bad one. Returns them normalised."""
    if max_attempts is not None:
        positive_int("max_attempts", max_attempts, what="an int or None")
    backoff = _seconds("backoff", backoff)
    max_backoff = _seconds("max_backoff", max_backoff)
    if isinstance(backoff_factor, bool) or not isinstance(backoff_factor, (int, float)):
        raise TypeError(f"backoff_factor must be a number, got {backoff_factor!r}")
    if math.isnan(backoff_factor) or math.isinf(backoff_factor) or backoff_factor < 1:
        raise ValueError(f"backoff_factor must be a finite number >= 1, got {backoff_factor!r}")
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)):
        raise TypeError(f"jitter must be a number, got {jitter!r}")
    if math.isnan(jitter) or not 0 <= jitter <= 1:
        raise ValueError(f"jitter must be between 0 and 1, got {jitter!r}")
    return max_attempts, backoff, max_backoff, float(backoff_factor), float(jitter)
