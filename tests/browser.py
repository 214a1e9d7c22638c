"""Debian's chromium, headless, driven by playwright's sync API: the one way tests launch it.

Playwright never downloads a browser here: ``.ci/run`` installs Debian's ``chromium`` and the
tests point playwright at it. Without either, importing this module fails loudly (a skip
would hide an untested browser path). The flags keep chromium off the network: the machine
has none, and chromium's background services would otherwise retry connections.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

try:
    from playwright.sync_api import Browser, sync_playwright
except ImportError as exc:  # pragma: no cover
    raise RuntimeError("the browser tests need playwright (pip install playwright)") from exc

CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:  # pragma: no cover
    raise RuntimeError("the browser tests need chromium (apt-get install chromium)")

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
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=15_000
        )
        try:
            yield browser
        finally:
            browser.close()
