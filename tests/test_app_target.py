"""``module:attribute`` targets (trio_sse._app_target), as the runner and its workers load apps."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trio_sse._app_target import load_app

from .servers import worker_app


@pytest.mark.parametrize(
    "target", ["tests.servers.worker_app", ":app", "tests.servers.worker_app:"]
)
def test_a_malformed_target_exits_with_a_message(target: str) -> None:
    with pytest.raises(SystemExit, match=f"expected module:attribute, got {target!r}"):
        load_app(target)


def test_attributes_are_followed_and_factories_called() -> None:
    assert load_app("tests.servers.worker_app:app") is worker_app.app
    assert load_app("tests.servers.worker_app:app.router") is worker_app.app.router
    assert load_app("tests.servers.worker_app:TICK.__abs__", factory=True) == worker_app.TICK


def test_apps_in_the_current_directory_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "here_app.py").write_text("app = 'the app'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "here_app", raising=False)
    assert load_app("here_app:app") == "the app"
    assert sys.path[0] == str(tmp_path)
    del sys.modules["here_app"]
