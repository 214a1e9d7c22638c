"""The granian and daphne signal chains outside their servers (the real servers are in
tests/test_graceful_shutdown.py): nothing is chained, the option is checked."""

from __future__ import annotations

import signal

import pytest

import trio_sse
from trio_sse import chain_daphne_signals, chain_granian_signals

pytestmark = pytest.mark.anyio


async def test_nothing_is_chained_outside_granian_and_daphne() -> None:
    before = signal.getsignal(signal.SIGTERM)
    assert chain_granian_signals() is None
    assert chain_daphne_signals() is None
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize(
    ("value", "error"), [(-1, ValueError), (float("nan"), ValueError), ("1", TypeError)]
)
def test_drain_timeout_is_checked(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="drain_timeout"):
        chain_daphne_signals(drain_timeout=value)  # type: ignore[arg-type]


def test_default_drain_timeout_is_public() -> None:
    assert trio_sse.chain_daphne_signals.__kwdefaults__ == {"drain_timeout": 30.0}
