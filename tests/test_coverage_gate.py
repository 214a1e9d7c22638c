"""``tools/coverage_gate.py``: the coverage gate applies in CI and wherever no service is missing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TOOL = Path(__file__).resolve().parent.parent / "tools" / "coverage_gate.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("coverage_gate", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("coverage_gate", module)
    spec.loader.exec_module(module)
    return module


def test_missing_services_are_the_programs_not_found() -> None:
    gate = load()
    assert gate.missing_services(lambda program: f"/usr/bin/{program}") == []
    found = {"redis-server", "redis-cli"}
    missing = gate.missing_services(lambda p: f"/usr/bin/{p}" if p in found else None)
    assert missing == ["redis-sentinel", "chromium", "node", "npm"]


def test_the_gate_applies_with_every_service_or_in_ci_only() -> None:
    gate = load()
    assert gate.gate_applies({}, [])
    assert not gate.gate_applies({}, ["chromium"])
    assert gate.gate_applies({"CI": "true"}, ["chromium"])
    assert not gate.gate_applies({"CI": "false"}, ["redis-server"])
