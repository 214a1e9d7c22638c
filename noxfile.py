"""Developer sessions: ``nox`` runs tests, lint and typecheck; ``nox -s NAME`` any of these.

* ``tests``: the whole suite with every extra, on each installed CPython from 3.11 to 3.14;
* ``notrio``: the suite without trio installed (the asyncio half; trio's tests skip);
* ``lowest``: every declared lower bound installed exactly (tools/lowest_constraints.py);
* ``wheel``: a wheel built from a clean clone, installed into an empty venv, the demo
  started from it and fetched (tools/wheel_check.py; tests/test_wheel.py runs it in the suite);
* ``coverage``: the suite under coverage (branch), reported against ``fail_under``;
* ``lint``, ``typecheck``, ``bench`` (``-- --quick`` for a smoke run).

Interpreters are looked up in pyenv and on PATH; a version that is not installed is skipped.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sys
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
SUPPORTED = ["3.11", "3.12", "3.13", "3.14"]
# Tools of the test environment that the lowest bounds conflict with (sse-starlette 3.7 needs
# starlette >= 0.49.1, FastAPI a recent starlette): not installed by `lowest`, and the test
# modules that import them are left out of that run.
LOWEST_LEFT_OUT = ("sse-starlette",)


def _interpreter(version: str) -> str | None:
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates = sorted(
        glob.glob(os.path.join(root, "versions", f"{version}.*", "bin", f"python{version}"))
    )
    if candidates:
        return candidates[-1]  # the real interpreter: pyenv's shims refuse versions not enabled
    found = shutil.which(f"python{version}")
    return found if found and os.sep + "shims" + os.sep not in found else None


INTERPRETERS = {version: path for version in SUPPORTED if (path := _interpreter(version))}


def _put_interpreters_on_path() -> None:
    """Make ``pythonX.Y`` on PATH the real interpreters found, for nox's own lookup.

    nox finds ``tests-3.12``'s interpreter as ``python3.12`` on PATH, where pyenv's shim for a
    version that is installed but not enabled only fails: symlinks to the real ones, in
    ``.nox/_interpreters``, go first. A version with none is skipped by nox (not an error).
    """
    links = ROOT / ".nox" / "_interpreters"
    links.mkdir(parents=True, exist_ok=True)
    for version, path in INTERPRETERS.items():
        link = links / f"python{version}"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(path)
    os.environ["PATH"] = os.pathsep.join([str(links), os.environ.get("PATH", "")])


_put_interpreters_on_path()
nox.options.error_on_missing_interpreters = False  # skip a missing version, even under CI


def _test_requirements(*, leave_out: tuple[str, ...] = ()) -> list[str]:
    """The ``test`` extra's tools (not the project's own extras), less *leave_out*."""
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as file:
        test = tomllib.load(file)["project"]["optional-dependencies"]["test"]
    own = [item for item in test if not item.startswith("trio_sse")]
    return [item for item in own if re.split(r"[\s<>=!~\[;]", item)[0] not in leave_out]


def _modules_importing(*packages: str) -> list[str]:
    """Test modules that import any of *packages* (by their import names)."""
    names = "|".join(re.escape(package.replace("-", "_")) for package in packages)
    pattern = re.compile(rf"^\s*(?:import|from)\s+(?:{names})\b", re.MULTILINE)
    return sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    )


@nox.session(python=SUPPORTED)
def tests(session: nox.Session) -> None:
    """The whole test suite with every extra, under trio and asyncio."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def notrio(session: nox.Session) -> None:
    """The suite without trio (nor hypercorn's trio worker): the asyncio half.

    Installs the core and the extras that do not need trio, then the test tools;
    pytest-trio, which needs trio, is left out and its plugin is not loaded.
    """
    session.install("-e", ".[client,httpx2]", "hypercorn<0.19")
    session.install(*_test_requirements(leave_out=("pytest-trio",)))
    no_trio = "import importlib.util as u, sys; sys.exit('trio is installed' if u.find_spec('trio') else 0)"
    session.run("python", "-c", no_trio)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lowest(session: nox.Session) -> None:
    """Every declared lower bound installed exactly, then the suite.

    The constraints come from pyproject.toml (tools/lowest_constraints.py: ``>=X`` pinned
    to ``==X`` for the core and every runtime extra). Test tools that cannot coexist with
    the lowest bounds are left out, with the test modules that import them.
    """
    constraints = Path(session.create_tmp()) / "lowest-constraints.txt"
    output = session.run(
        "python", str(ROOT / "tools" / "lowest_constraints.py"), silent=True, external=True
    )
    assert isinstance(output, str)
    constraints.write_text(output)
    session.log("constraints:\n" + output)
    session.install("-c", str(constraints), "-e", ".[all]")
    session.install("-c", str(constraints), *_test_requirements(leave_out=LOWEST_LEFT_OUT))
    ignored = [f"--ignore={path}" for path in _modules_importing(*LOWEST_LEFT_OUT)]
    session.run("python", "-m", "pip", "list")
    session.run("python", "-m", "pytest", *ignored, *session.posargs)


@nox.session
def wheel(session: nox.Session) -> None:
    """Build a wheel from a clean clone, install it into an empty venv, run the demo from it."""
    session.run(sys.executable, str(ROOT / "tools" / "wheel_check.py"), external=True)


@nox.session
def coverage(session: nox.Session) -> None:
    """The suite under coverage (branch, subprocesses too); fails below ``fail_under``.

    ``[tool.coverage.run]`` in pyproject.toml has ``parallel`` and ``patch = ["subprocess"]``:
    each process writes its own data file, combined before the report. The report runs even
    when a test failed, then the session fails with pytest's status.
    """
    session.install("-e", ".[test]")
    session.run("python", "-m", "coverage", "erase")
    try:
        session.run("python", "-m", "coverage", "run", "-m", "pytest", *session.posargs)
    finally:
        session.run("python", "-m", "coverage", "combine", "-q")
        session.run("python", "-m", "coverage", "report")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """trio_sse vs sse-starlette vs a raw ASGI floor, side by side (``-- --quick`` for a smoke run)."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over src, tests, examples, benchmarks, tools and this noxfile."""
    session.install("-e", ".[test,bench]", "mypy>=1.11", "nox>=2024.4")  # nox: for noxfile.py
    session.run("mypy", "--strict")
