"""The coverage report, and its ``fail_under`` gate when every service was there to test with.

``python tools/coverage_gate.py`` runs ``coverage report`` (the combined data of the last
``coverage run``) and exits with its status, so a total below ``fail_under`` (pyproject.toml)
fails the run, as in CI. On a machine without one of the services some tests need
(``redis-server``, ``redis-sentinel``, ``redis-cli``, ``chromium``: see ``tests/services.py``),
those tests were skipped and the code only they reach is not measured: the report is printed
all the same, the gate is not applied, and the missing programs are named. With ``CI=true`` the
gate always applies (and the tests that needed a missing service have failed already).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import PACKAGES, in_ci  # noqa: E402 (the repository's own test helpers)


def missing_services(which: Callable[[str], str | None] = shutil.which) -> list[str]:
    """The service programs not found (by *which*)."""
    return [program for program in PACKAGES if which(program) is None]


def gate_applies(environ: Mapping[str, str], missing: list[str]) -> bool:
    """Apply ``fail_under``? Always under ``CI=true``; elsewhere when no service is missing."""
    return in_ci(environ) or not missing


def main() -> int:
    missing = missing_services()
    gated = gate_applies(os.environ, missing)
    command = [sys.executable, "-m", "coverage", "report"]
    if not gated:
        command.append("--fail-under=0")
    status = subprocess.run(command, cwd=ROOT, check=False).returncode
    if not gated:
        packages = sorted({PACKAGES[program] for program in missing})
        print(
            f"coverage gate not applied: {', '.join(missing)} not on PATH, so the tests that "
            f"need them were skipped (Debian packages: {', '.join(packages)}); CI applies it"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
