"""Guards of the small modules that no other test reached (found by branch coverage).

Events refuse deletion as they refuse assignment; a token and a limit describe themselves;
the stream-limit middleware checks its ``limit=``; ``require`` tells a missing extra from a
broken install.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
from starlette.applications import Starlette

from trio_sse import ServerSentEvent, ShutdownToken, StreamLimit, StreamLimitMiddleware
from trio_sse._extras import MissingExtraError, require

FIELDS = ["data", "event", "id", "retry", "comment", "sep"]


@pytest.mark.parametrize("field", FIELDS)
def test_an_event_field_cannot_be_deleted(field: str) -> None:
    event = ServerSentEvent("d", event="e", id="1", retry=5, comment="c", sep="\n")
    before = event.encode()
    with pytest.raises(AttributeError, match=rf"immutable; use \.replace\({field}="):
        delattr(event, field)
    assert event.encode() == before
    assert getattr(event, field) is not None


def test_a_token_says_whether_it_was_triggered_and_why() -> None:
    token = ShutdownToken()
    assert repr(token) == "<ShutdownToken not triggered>"
    token.trigger("deploy")
    assert repr(token) == "<ShutdownToken triggered, reason='deploy'>"
    assert repr(token.child()) == "<ShutdownToken triggered, reason='deploy'>"


def test_stream_limit_reports_its_options() -> None:
    limit = StreamLimit(3, retry_after=None, on_full="retry")
    assert (limit.max_streams, limit.retry_after, limit.on_full) == (3, None, "retry")


def test_stream_limit_middleware_refuses_a_limit_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match="limit must be a StreamLimit, got int"):
        StreamLimitMiddleware(Starlette(), limit=5)  # type: ignore[arg-type]


def _package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> str:
    name = f"trio_sse_test_{uuid.uuid4().hex[:8]}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_require_names_the_extra_of_a_missing_package() -> None:
    name = f"trio_sse_absent_{uuid.uuid4().hex[:8]}"
    with pytest.raises(MissingExtraError) as caught:
        require(f"{name}.sub", part="trio_sse.thing", extras=("serve", "all"))
    message = str(caught.value)
    assert message == (
        f"trio_sse.thing needs {name}: pip install 'trio_sse[serve]' or pip install 'trio_sse[all]'"
    )
    assert caught.value.name == name
    assert isinstance(caught.value, ImportError)


def test_require_lets_a_broken_install_propagate_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The package is there, but one of *its* imports is missing: not a missing extra.
    inner = f"trio_sse_inner_{uuid.uuid4().hex[:8]}"
    name = _package(tmp_path, monkeypatch, f"import {inner}\n")
    with pytest.raises(ModuleNotFoundError) as caught:
        require(name, part="trio_sse.thing", extras=("serve",))
    assert not isinstance(caught.value, MissingExtraError)
    assert caught.value.name == inner
    assert name not in sys.modules


def test_require_lets_other_import_errors_propagate_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _package(tmp_path, monkeypatch, "raise ImportError('incompatible build')\n")
    with pytest.raises(ImportError, match="incompatible build") as caught:
        require(name, part="trio_sse.thing", extras=("serve",))
    assert not isinstance(caught.value, MissingExtraError)


def test_require_returns_an_installed_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = _package(tmp_path, monkeypatch, "VALUE = 42\n")
    try:
        module = require(name, part="trio_sse.thing", extras=("serve",))
        assert module.VALUE == 42
    finally:
        sys.modules.pop(name, None)
