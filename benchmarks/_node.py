"""Node.js as a reference stack: the apps in ``benchmarks/node/``, and their node_modules.

``node_ready()`` says whether the Node contestants can run: ``node`` must be on ``PATH`` and
``benchmarks/node/node_modules`` must hold what ``package-lock.json`` pins, installed on first
use with ``npm ci --no-audit --no-fund`` (npm's registry, nothing else). When either is missing
the Node rows are left out, with a log line saying why; the Python contestants run anyway.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["NODE_APPS", "NODE_DIR", "install", "node_ready", "node_versions"]

NODE_DIR = Path(__file__).resolve().parent / "node"

#: Node contestant app -> its script in ``benchmarks/node/``
NODE_APPS = {"node-raw": "raw.js", "better-sse": "better_sse.js"}

#: what the apps import from node_modules (enough to tell that an install happened)
_MARKER = Path("node_modules") / "better-sse" / "package.json"

#: ``npm ci`` downloads one small package: minutes would mean something is wrong
INSTALL_TIMEOUT = 300.0


def install(
    *,
    which: Callable[[str], str | None] = shutil.which,
    timeout: float = INSTALL_TIMEOUT,
    directory: Path = NODE_DIR,
) -> str | None:
    """Install node_modules if they are missing; ``None`` when ready, else why not.

    Runs ``npm ci --no-audit --no-fund`` in *directory* (``benchmarks/node``; blocking, at most
    *timeout* seconds). Never raises for a missing ``node``/``npm`` or a failed install: it
    says so.
    """
    for program, package in (("node", "nodejs"), ("npm", "npm")):
        if which(program) is None:
            return f"{program} not found on PATH: apt-get install {package}"
    marker = directory / _MARKER
    if marker.exists():
        return None
    npm = which("npm")
    assert npm is not None
    print(f"node: installing {directory / 'node_modules'} (npm ci)", file=sys.stderr, flush=True)
    try:
        completed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=directory, capture_output=True,
            timeout=timeout, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"npm ci in {directory} failed: {error}"
    if completed.returncode != 0 or not marker.exists():
        tail = completed.stderr.decode(errors="replace").strip().splitlines()[-3:]
        return f"npm ci in {directory} failed (exit {completed.returncode}): {' / '.join(tail)}"
    return None


def node_ready(log: Callable[[str], None]) -> bool:
    """True when the Node contestants can run; else logs why they are skipped."""
    problem = install()
    if problem is not None:
        log(f"node: the Node.js rows are skipped, {problem}")
        return False
    return True


def node_versions(directory: Path = NODE_DIR) -> dict[str, str]:
    """``node``'s version and the installed better-sse's, for the report's header (blocking:
    runs ``node --version``); empty when node is not there."""
    node = shutil.which("node")
    if node is None:
        return {}
    try:
        version = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        version = "?"
    found = {"node": version.lstrip("v") or "?"}
    try:
        found["better-sse"] = json.loads((directory / _MARKER).read_text())["version"]
    except (OSError, ValueError, KeyError):
        found["better-sse"] = "not installed"
    return found
