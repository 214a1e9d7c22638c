"""The system programs some tests use, looked up on ``PATH``: run, skip, or fail.

A test that needs ``redis-server``, ``redis-sentinel``, ``redis-cli``, ``chromium``, ``node`` or
``npm`` says so with ``@pytest.mark.service("redis-server")`` (checked by ``tests/conftest.py``
before any fixture is set up), and the helpers that start one (``tests/redis_server.py``,
``tests/browser.py``) call :func:`require` as well. Each program is looked up with
:func:`shutil.which` when a test needs it, never at import: a machine without it still
collects and runs everything else.

A missing program skips the test, with a reason that names the Debian package to install. With
``CI=true`` in the environment it fails the test instead: CI installs every service
(``.ci/run``) and must never pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import pytest

__all__ = ["PACKAGES", "Decision", "decide", "in_ci", "require"]

# Program -> the Debian package that provides it.
PACKAGES: Mapping[str, str] = {
    "redis-server": "redis-server",
    "redis-sentinel": "redis-sentinel",
    "redis-cli": "redis-tools",
    "chromium": "chromium",
    "node": "nodejs",
    "npm": "npm",
}


@dataclass(frozen=True)
class Decision:
    """What to do with a test that needs *program*: ``run`` it with *path*, or skip/fail it."""

    program: str
    action: Literal["run", "skip", "fail"]
    path: str | None
    reason: str


def in_ci(environ: Mapping[str, str]) -> bool:
    """True when *environ* says this is a CI run (``CI=true``, as CI services set it, or ``1``)."""
    return environ.get("CI", "").strip().lower() in {"true", "1"}


def decide(
    program: str,
    *,
    which: Callable[[str], str | None] = shutil.which,
    environ: Mapping[str, str] | None = None,
) -> Decision:
    """Look *program* up with *which* and decide; pure apart from that lookup.

    ``which`` and ``environ`` default to :func:`shutil.which` and :data:`os.environ`.
    """
    if not isinstance(program, str):
        raise TypeError(f"program must be a str, got {program!r}")
    if program not in PACKAGES:
        raise ValueError(f"program must be one of {sorted(PACKAGES)}, got {program!r}")
    path = which(program)
    if path is not None:
        return Decision(program, "run", path, f"{program} found at {path}")
    reason = f"{program} not found on PATH: apt-get install {PACKAGES[program]}"
    if in_ci(os.environ if environ is None else environ):
        return Decision(program, "fail", None, f"{reason} (CI=true: a missing service fails)")
    return Decision(program, "skip", None, reason)


def require(program: str) -> str:
    """The path of *program*; else skip the current test (or, with ``CI=true``, fail it)."""
    decision = decide(program)
    if decision.action == "skip":
        pytest.skip(decision.reason)
    if decision.action == "fail":
        pytest.fail(decision.reason, pytrace=False)
    assert decision.path is not None
    return decision.path
