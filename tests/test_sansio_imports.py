"""The sans-IO core (_events, _encoder, _decoder, _resume) imports the standard library only.

Importing ``trio_sse._decoder`` the ordinary way would first run ``trio_sse/__init__.py``,
which re-exports the I/O parts too.  So a fresh interpreter registers a bare stand-in for the
``trio_sse`` package (its ``__path__`` pointing at the real source directory, its
``__init__`` not run) and imports the core modules under it: what they pull in is then
exactly what they import themselves.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

FORBIDDEN = ("anyio", "trio", "starlette", "sniffio", "httpx", "httpcore", "hypercorn")
SANS_IO = (
    "trio_sse._events",
    "trio_sse._encoder",
    "trio_sse._decoder",
    "trio_sse._resume",
    "trio_sse._cursor",
    "trio_sse._patterns",
)

_SCRIPT = textwrap.dedent(
    """
    import json
    import sys
    import types

    package_dir = sys.argv[1]
    before = set(sys.modules)

    stub = types.ModuleType("trio_sse")
    stub.__path__ = [package_dir]
    sys.modules["trio_sse"] = stub

    import trio_sse._cursor
    import trio_sse._decoder
    import trio_sse._encoder
    import trio_sse._events
    import trio_sse._patterns
    import trio_sse._resume

    # The modules loaded are the real files, and they work on their own.
    event = trio_sse._events.ServerSentEvent("a\\nb", id="1")
    decoded = trio_sse._decoder.EventDecoder().feed(event.encode())
    assert decoded == [event], decoded
    resume = trio_sse._resume.parse_last_event_id(b"a\\xff")
    assert resume == ("a\\ufffd", "a\\ufffd"), resume
    assert trio_sse._cursor.parse_cursor("t1,0123abcd:x") == {"0123abcd": "x"}
    assert trio_sse._resume.reset_event("expired", None).event == "reset"
    assert trio_sse._patterns.Patterns(["a/*"]).match("a/b") == "a/*"

    print(json.dumps({
        "new": sorted(set(sys.modules) - before - {"trio_sse"}),
        "files": {
            name: sys.modules[name].__file__
            for name in sys.argv[2:]
        },
        "stdlib": sorted(sys.stdlib_module_names),
    }))
    """
)


def _package_dir() -> str:
    # find_spec on a top-level name locates the package without running its __init__.
    spec = importlib.util.find_spec("trio_sse")
    assert spec is not None
    assert spec.submodule_search_locations is not None
    (location,) = spec.submodule_search_locations
    return str(location)


def _run_isolated() -> dict[str, object]:
    package_dir = _package_dir()
    # -I: isolated mode, so no PYTHONPATH, user site or current directory gets involved.
    result = subprocess.run(
        [sys.executable, "-I", "-c", _SCRIPT, package_dir, *SANS_IO],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


def test_sans_io_core_loads_no_io_library() -> None:
    report = _run_isolated()
    new = report["new"]
    assert isinstance(new, list)
    assert set(SANS_IO) <= set(new)
    loaded_roots = {name.partition(".")[0] for name in new}
    assert not loaded_roots & set(FORBIDDEN), sorted(loaded_roots & set(FORBIDDEN))


def test_sans_io_core_imports_only_the_standard_library() -> None:
    report = _run_isolated()
    new = report["new"]
    stdlib = report["stdlib"]
    assert isinstance(new, list)
    assert isinstance(stdlib, list)
    outside = sorted(
        name
        for name in new
        if not name.startswith("trio_sse.") and name.partition(".")[0] not in set(stdlib)
    )
    assert outside == []


def test_isolated_import_used_the_real_source_files() -> None:
    report = _run_isolated()
    files = report["files"]
    assert isinstance(files, dict)
    package_dir = _package_dir()
    for name in SANS_IO:
        module_file = files[name]
        assert isinstance(module_file, str)
        assert module_file.startswith(package_dir)
        assert module_file.endswith(name.rpartition(".")[2] + ".py")
