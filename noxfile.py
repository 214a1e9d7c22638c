"""Developer sessions: ``nox -s tests lint typecheck``, and ``nox -s bench`` for the benchmarks.

Interpreters are looked up on PATH and in pyenv, so that every installed CPython from 3.10
to 3.13 is used and a missing one is reported instead of failing the whole run.
"""

from __future__ import annotations

import glob
import os
import shutil

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

SUPPORTED = ["3.10", "3.11", "3.12", "3.13"]


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


@nox.session
@nox.parametrize(
    "python", list(INTERPRETERS.values()) or [None], ids=list(INTERPRETERS) or ["current"]
)
def tests(session: nox.Session) -> None:
    """The whole test suite, on every installed Python, under trio and asyncio."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


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
    """mypy --strict over src, tests and examples."""
    session.install("-e", ".[test,bench]", "mypy>=1.11")
    session.run("mypy", "--strict")
