"""LogLimiter: one record per kind per interval, and a count of what was left out."""

from __future__ import annotations

from trio_sse._ratelog import LogLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_record_per_kind_per_interval() -> None:
    clock = Clock()
    limiter = LogLimiter(10.0, clock=clock)
    assert limiter.admit("refused") == 0
    assert [limiter.admit("refused") for _ in range(5)] == [None] * 5
    assert limiter.admit("timeout") == 0  # another kind has its own window
    clock.now += 9.9
    assert limiter.admit("refused") is None
    clock.now += 0.1
    assert limiter.admit("refused") == 6  # left out since the last record
    assert limiter.admit("refused") is None
    clock.now += 60
    assert limiter.admit("refused") == 1
    clock.now += 60
    assert limiter.admit("refused") == 0


def test_reset_forgets() -> None:
    limiter = LogLimiter(10.0, clock=Clock())
    assert limiter.admit("k") == 0
    assert limiter.admit("k") is None
    limiter.reset()
    assert limiter.admit("k") == 0
