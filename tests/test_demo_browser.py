"""The live demo in a real browser: Debian's chromium, headless, two tabs on one demo server.

``python -m trio_sse.demo`` runs as a subprocess on a free port, under trio and under
asyncio; playwright's sync API drives chromium (installed by ``.ci/run`` with
``apt-get install chromium``; without it the test is skipped, failed under ``CI=true``;
playwright never downloads a browser of its own). The test
checks what a person would in the first minute: the clock ticks, a message sent from one tab
appears in the other, a dropped tab gets the messages it missed on reconnect (marked
replayed), the statistics move, and Ctrl-C (SIGINT) puts the farewell banner on the page.
Screenshots are written to the test's ``tmp_path`` (``demo.png``, ``demo-farewell.png``).
Every wait is bounded.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from ._backends import BACKENDS
from .browser import chromium
from .processes import free_port, server_process

pytestmark = [pytest.mark.slow, pytest.mark.service("chromium")]

WAIT_MS = 5_000  # the bound on every wait in the page
REPLAYED = re.compile(r"\breplayed\b")  # one of the classes of a replayed message


def send(page: Page, text: str) -> None:
    """Type *text* in the room's form and send it; wait until the server accepted it."""
    page.fill("#room-text", text)
    with page.expect_response(
        lambda response: response.url.endswith("/room") and response.request.method == "POST",
        timeout=WAIT_MS,
    ) as answer:
        page.click("#room-send")
    assert answer.value.status == 201, answer.value.text()


def message(page: Page, text: str) -> Locator:
    return page.locator("#room-list li.msg", has=page.locator(".text", has_text=text))


@pytest.mark.parametrize("backend", BACKENDS)
def test_demo_in_chromium(backend: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = ["python", "-m", "trio_sse.demo", "--port", str(port), "--backend", backend]
    log = tmp_path / "demo.log"
    with server_process(command, port, log) as process, chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.set_default_timeout(WAIT_MS)
        errors: list[str] = []
        alice, bob = context.new_page(), context.new_page()
        for page in (alice, bob):
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on(
                "console",
                lambda message: errors.append(message.text) if message.type == "error" else None,
            )
            page.goto(url, timeout=10_000)
            page.fill("#room-name", "alice" if page is alice else "bob")
            expect(page.locator("#room-state")).to_have_text("live")

        # The clock ticks: its text changes within a couple of seconds, in both tabs (the
        # second one gets the events that the first relays: see the page's comment).
        clocks = [page.locator("#clock-time") for page in (alice, bob)]
        for clock in clocks:
            expect(clock).not_to_have_text("--:--:--")
        first_times = [clock.text_content() for clock in clocks]
        for clock, first_time in zip(clocks, first_times, strict=True):
            expect(clock).not_to_have_text(str(first_time), timeout=3_000)
        expect(alice.locator("#clock-state")).to_have_text("live")
        expect(bob.locator("#clock-state")).to_have_text("live · via another tab")
        expect(alice.locator("#stat-sent")).not_to_have_text("–")
        events_sent = alice.locator("#stat-sent").text_content()

        # A message sent from one tab appears in the other, as text, never as markup.
        hostile = "hello <img src=x onerror=alert(1)> & <b>bold</b>"
        send(alice, hostile)
        for page in (alice, bob):
            expect(message(page, hostile)).to_have_count(1)
            expect(message(page, hostile)).not_to_have_class(REPLAYED)
            assert page.locator("#room-list img, #room-list b").count() == 0
        expect(message(bob, hostile).locator(".who")).to_have_text("alice")

        # Drop, miss two messages (one from the other tab, one from this tab's own form
        # while dropped), reconnect: they are replayed, marked so, exactly once.
        alice.click("#room-drop")
        expect(alice.locator("#room-state")).to_have_text("dropped by you")
        send(bob, "sent while alice was away")
        send(alice, "alice wrote this while dropped")
        expect(message(bob, "alice wrote this while dropped")).to_have_count(1)
        assert message(alice, "sent while alice was away").count() == 0
        assert message(alice, "alice wrote this while dropped").count() == 0
        expect(alice.locator("#room-note")).to_contain_text("1 message sent meanwhile")

        alice.click("#room-reconnect")
        expect(alice.locator("#room-state")).to_have_text("live")
        for text in ("sent while alice was away", "alice wrote this while dropped"):
            expect(message(alice, text)).to_have_count(1)
            expect(message(alice, text)).to_have_class(REPLAYED)
            expect(message(alice, text).locator(".tag")).to_have_text("replayed")
        expect(alice.locator("#room-list .divider")).to_have_text(
            "reconnected: 2 missed messages replayed from the history"
        )
        # The live ones stay live; the next one is live too, and nothing came twice.
        send(bob, "welcome back")
        expect(message(alice, "welcome back")).to_have_count(1)
        expect(message(alice, "welcome back")).not_to_have_class(REPLAYED)
        expect(message(alice, hostile)).not_to_have_class(REPLAYED)
        assert alice.locator("#room-list li.msg").count() == 4
        assert alice.locator("#room-list li.msg.replayed").count() == 2

        # The statistics are pushed: one clock and one stats stream for both tabs, and a
        # room stream (a subscriber) per tab.
        expect(alice.locator("#server-backend")).to_have_text(backend)
        expect(alice.locator("#stat-open")).to_have_text("4")
        expect(alice.locator("#stat-streams")).to_have_text("clock 1 · room 2 · stats 1")
        expect(alice.locator("#stat-subscribers")).to_have_text("2")
        expect(alice.locator("#stat-published")).to_have_text("5")  # + the opening message
        expect(alice.locator("#stat-sent")).not_to_have_text(str(events_sent))

        alice.screenshot(path=tmp_path / "demo.png")
        assert not errors, errors

        # Ctrl-C: every stream of every tab says goodbye, and the page shows it.
        process.send_signal(signal.SIGINT)
        for page in (alice, bob):
            banner = page.locator("#farewell")
            expect(banner).to_be_visible()
            expect(banner).to_contain_text("The server is shutting down. Goodbye!")
            expect(page.locator("#farewell-said")).to_have_text("said by: clock, room, stats")
        alice.screenshot(path=tmp_path / "demo-farewell.png")
        try:
            assert process.wait(timeout=5) == 0, log.read_text(errors="replace")
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo did not exit after SIGINT:\n{log.read_text()}")
