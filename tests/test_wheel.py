"""The wheel as a user gets it, checked in CI (issue 13 item 7): ``tools/wheel_check.py``.

The tool clones this checkout's HEAD (what is committed), builds a wheel from the clone,
installs it alone into an empty venv (only the core's dependencies may arrive) and, with the
``demo`` extra, into another, from which it starts ``trio-sse demo``, fetches ``/`` and the
first clock event, and stops it with SIGINT. This test runs the tool as a subprocess and
checks that every step reported success.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from .processes import REPO

pytestmark = pytest.mark.slow

TOOL = REPO / "tools" / "wheel_check.py"
STEPS = (
    "wheel check: built trio_sse-",
    "wheel check: contents ok",
    "wheel check: core install: ",
    "wheel check: demo from the wheel served / and /clock",
)


@pytest.mark.skipif(
    not TOOL.exists() or shutil.which("git") is None,
    reason="needs a git checkout of trio_sse (tools/wheel_check.py) and git",
)
def test_a_wheel_from_a_clean_clone_installs_the_core_alone_and_runs_the_demo() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, str(TOOL)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env=env,
    )
    report = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, report
    lines = result.stdout.splitlines()
    for step in STEPS:
        assert any(line.startswith(step) for line in lines), (step, report)
    (core,) = [line for line in lines if line.startswith("wheel check: core install: ")]
    installed = set(core.partition("(")[2].removesuffix(")").split(", "))
    assert {"anyio", "starlette", "trio-sse"} <= installed, report
    assert not installed & {"trio", "hypercorn", "httpx", "httpx2"}, report
    assert lines[-1] == "wheel check: passed", report
