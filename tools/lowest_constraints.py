"""Print pip constraints that pin every declared lower bound exactly: ``>=X`` becomes ``==X``.

Reads ``[project] dependencies`` and the runtime extras of ``[project.optional-dependencies]``
from pyproject.toml (the tool extras ``test``, ``bench`` and ``dev`` are left out: they are
the test environment, not what users get). A package bounded in several places must have the
same lower bound everywhere, or this fails: two different "lowest" versions cannot both be
true. ``nox -s lowest`` installs the project with these constraints and runs the suite.

Usage: ``python tools/lowest_constraints.py [pyproject.toml] > constraints.txt``
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

TOOL_EXTRAS = frozenset({"test", "bench", "dev"})

_REQUIREMENT = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<spec>[^;]*?)\s*"
    r"(?:;\s*(?P<marker>.+?))?\s*$"
)
_LOWER = re.compile(r">=\s*(?P<version>[^,\s]+)")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: dict[str, object]) -> list[str]:
    """The runtime requirement strings: dependencies, then the runtime extras."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    found = list(project.get("dependencies", []))
    for extra, items in project.get("optional-dependencies", {}).items():
        if extra not in TOOL_EXTRAS:
            found.extend(items)
    return found


def lowest(pyproject: dict[str, object]) -> dict[str, tuple[str, str | None]]:
    """``{package: (lowest version, marker)}`` for every runtime requirement with a ``>=``."""
    own = _normalise(str(pyproject["project"]["name"]))  # type: ignore[index]
    pins: dict[str, tuple[str, str | None]] = {}
    for text in requirements(pyproject):
        match = _REQUIREMENT.match(text)
        if match is None:
            raise SystemExit(f"cannot read the requirement {text!r}")
        name = _normalise(match["name"])
        lower = _LOWER.search(match["spec"])
        if name == own or lower is None:
            continue  # a self-reference (an extra of extras), or nothing to pin
        pin = (lower["version"], match["marker"])
        if pins.setdefault(name, pin) != pin:
            raise SystemExit(f"{name} has two lower bounds: {pins[name][0]} and {pin[0]}")
    return pins


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "pyproject.toml")
    with path.open("rb") as file:
        pyproject = tomllib.load(file)
    for name, (version, marker) in sorted(lowest(pyproject).items()):
        print(f"{name}=={version}" + (f"; {marker}" if marker else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
