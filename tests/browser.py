"""Debian's chromium, headless, driven by playwright's sync API: the one way tests launch it.

Playwright never downloads a browser here: ``.ci/run`` installs Debian's ``chromium`` and the
tests point playwright at it. chromium is looked up when a browser is launched, not at import:
without it a browser test is skipped naming the package, or failed under ``CI=true``
(``tests/services.py``; the tests are marked ``@pytest.mark.service("chromium")`` so that this
is decided before their servers start). The flags keep chromium off the network: the machine
has none, and chromium's background services would otherwise retry connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

try:
    from playwright.sync_api import Browser, sync_playwright
except ImportError as exc:  # pragma: no cover
    raise RuntimeError("the browser tests need playwright (pip install playwright)") from exc

from .services import require

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless chromium, closed on exit. Sync API: call it from a worker thread in async tests."""
    executable = require("chromium")  # skips or fails the test when it is missing
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=15_000
        )
        try:
            yield browser
        finally:
            browser.close()
