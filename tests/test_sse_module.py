"""``trio_sse.sse``: ``from sse_starlette.sse import X`` lines work after the one-import change."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

import trio_sse
import trio_sse.sse
from trio_sse._events import encode_item

# Left out on purpose (see trio_sse.sse's docstring and the README's migration table).
LEFT_OUT = {"AppStatus"}

# sse-starlette's public surface in sse_starlette.sse, read in a child interpreter: importing
# it patches uvicorn's Server.handle_exit for the whole process. Its module has no __all__:
# the names defined in its public modules (not its private _utils), and its type aliases.
_THEIR_NAMES = """
import json
import sse_starlette.sse as module
aliases = {"Content", "ContentStream", "SyncContentStream", "AsyncContentStream"}
print(json.dumps(sorted(
    name for name, value in vars(module).items()
    if not name.startswith("_")
    and (
        getattr(value, "__module__", "") in ("sse_starlette.sse", "sse_starlette.event")
        or name in aliases
    )
)))
"""


@pytest.fixture(scope="module")
def sse_starlette_names() -> list[str]:
    command = [sys.executable, "-c", _THEIR_NAMES]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60)
    names: list[str] = json.loads(result.stdout)
    return names


def test_every_sse_starlette_sse_name_is_here_or_left_out_on_purpose(
    sse_starlette_names: list[str],
) -> None:
    theirs = set(sse_starlette_names)
    # The surface this module was written against (sse-starlette 3.7); a new name upstream
    # fails here until it is supported or listed in LEFT_OUT.
    assert theirs == {
        "AppStatus",
        "AsyncContentStream",
        "Content",
        "ContentStream",
        "EventSourceResponse",
        "SendTimeoutError",
        "ServerSentEvent",
        "SyncContentStream",
        "ensure_bytes",
    }
    assert theirs - LEFT_OUT <= set(trio_sse.sse.__all__)
    assert not LEFT_OUT & set(dir(trio_sse.sse))


def test_the_import_lines_of_a_migrating_app() -> None:
    from trio_sse.sse import (  # noqa: F401 - the import itself is the test
        AsyncContentStream,
        Content,
        ContentStream,
        EventSourceResponse,
        JSONServerSentEvent,
        SendTimeoutError,
        ServerSentEvent,
        SyncContentStream,
        ensure_bytes,
    )

    with pytest.raises(ImportError):
        from trio_sse.sse import AppStatus  # type: ignore[attr-defined]  # noqa: F401


@pytest.mark.parametrize(
    "name", ["EventSourceResponse", "ServerSentEvent", "JSONServerSentEvent", "SendTimeoutError"]
)
def test_names_are_trio_sses_own_objects(name: str) -> None:
    assert getattr(trio_sse.sse, name) is getattr(trio_sse, name)


def test_ensure_bytes_is_the_responses_encoding() -> None:
    ensure_bytes = trio_sse.sse.ensure_bytes
    assert ensure_bytes is encode_item
    assert ensure_bytes(b"raw", "\n") == b"raw"
    assert ensure_bytes("a", "\n") == b"data: a\n\n"
    assert ensure_bytes({"data": "a", "event": "e"}, "\r") == b"event: e\rdata: a\r\r"
    assert ensure_bytes(trio_sse.ServerSentEvent("a", sep="\r"), "\n") == b"data: a\r\r"


def test_type_aliases_describe_the_iterables(sse_starlette_names: list[str]) -> None:
    aliases: dict[str, Any] = {
        name: getattr(trio_sse.sse, name)
        for name in ("Content", "ContentStream", "SyncContentStream", "AsyncContentStream")
    }
    assert "AsyncIterable" in repr(aliases["AsyncContentStream"])
    assert "Iterator" in repr(aliases["SyncContentStream"])
    assert set(aliases) <= set(sse_starlette_names)
