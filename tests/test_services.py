"""The run/skip/fail decision for tests that need a system program (``tests/services.py``).

First the decision itself, with a stand-in ``which``; then the whole mechanism: the suite's
service tests run in a child pytest whose ``PATH`` holds none of the programs, once as on a
developer's machine (every one skipped, naming its Debian package, nothing raised at
collection) and once with ``CI=true`` (every one failed, naming its package).
"""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from .processes import REPO, child_env
from .services import PACKAGES, decide, in_ci

# Every module with a test marked @pytest.mark.service: the child runs only those tests.
SERVICE_MODULES = [
    "tests/test_browser.py",
    "tests/test_demo_browser.py",
    "tests/test_broadcast_redis.py",
    "tests/test_examples.py",
    "tests/reliability/test_redis_faults.py",
]


def nowhere(program: str) -> str | None:
    return None


@pytest.mark.parametrize(("program", "package"), sorted(PACKAGES.items()))
def test_missing_program_is_skipped_naming_its_package(program: str, package: str) -> None:
    decision = decide(program, which=nowhere, environ={})
    assert decision.action == "skip"
    assert decision.path is None
    assert decision.reason == f"{program} not found on PATH: apt-get install {package}"


def test_the_debian_packages() -> None:
    assert PACKAGES == {
        "redis-server": "redis-server",
        "redis-sentinel": "redis-sentinel",
        "redis-cli": "redis-tools",
        "chromium": "chromium",
        "node": "nodejs",
        "npm": "npm",
    }


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "1", " true "])
def test_missing_program_fails_in_ci(value: str) -> None:
    decision = decide("redis-cli", which=nowhere, environ={"CI": value})
    assert decision.action == "fail"
    assert "apt-get install redis-tools" in decision.reason
    assert "CI=true" in decision.reason


@pytest.mark.parametrize("value", ["", "false", "0", "no"])
def test_other_ci_values_skip(value: str) -> None:
    assert not in_ci({"CI": value})
    assert decide("chromium", which=nowhere, environ={"CI": value}).action == "skip"


@pytest.mark.parametrize("environ", [{}, {"CI": "true"}])
def test_found_program_runs_with_its_path(environ: dict[str, str]) -> None:
    looked_up: list[str] = []

    def which(program: str) -> str | None:
        looked_up.append(program)
        return f"/opt/bin/{program}"

    decision = decide("redis-sentinel", which=which, environ=environ)
    assert looked_up == ["redis-sentinel"]
    assert decision.action == "run"
    assert decision.path == "/opt/bin/redis-sentinel"


def test_real_lookup_is_shutil_which_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = tmp_path / "redis-cli"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert decide("redis-cli").path == str(program)
    assert decide("chromium").action == "skip"
    monkeypatch.setenv("CI", "true")
    assert decide("chromium").action == "fail"


def test_unknown_program_is_a_value_error_and_a_non_string_a_type_error() -> None:
    with pytest.raises(ValueError, match=r"program must be one of \[.*\], got 'redis'"):
        decide("redis")
    with pytest.raises(TypeError, match="program must be a str, got 3"):
        decide(3)  # type: ignore[arg-type]


def run_service_tests(tmp_path: Path, ci: str | None) -> tuple[int, dict[str, str], str]:
    """The service tests in a child pytest with an empty ``PATH``: exit code, outcomes, output."""
    empty = tmp_path / "bin"
    empty.mkdir(exist_ok=True)
    env = child_env({"PATH": str(empty)})
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    report = tmp_path / f"report-{ci}.xml"
    command = [sys.executable, "-m", "pytest", "-m", "service", "-q", "-p", "no:cacheprovider"]
    command += [f"--junitxml={report}", *SERVICE_MODULES]
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    outcomes: dict[str, str] = {}
    for case in ElementTree.parse(report).iter("testcase"):
        name = f"{case.get('classname')}.{case.get('name')}"
        verdicts = [child for child in case if child.tag in {"skipped", "failure", "error"}]
        assert len(verdicts) == 1, f"{name} ran: {output[-3000:]}"
        outcomes[name] = f"{verdicts[0].tag}: {verdicts[0].get('message', '')}"
    return result.returncode, outcomes, output


def package_for(name: str) -> str:
    return "chromium" if "browser" in name else "redis-server"


def test_without_the_programs_service_tests_skip_and_under_ci_they_fail(tmp_path: Path) -> None:
    code, outcomes, output = run_service_tests(tmp_path, ci=None)
    assert code == 0, output[-3000:]
    # Every browser test and every Redis test of those modules is there, and each is skipped.
    assert len(outcomes) >= 40, outcomes
    assert {package_for(name) for name in outcomes} == {"chromium", "redis-server"}
    for name, outcome in outcomes.items():
        program = package_for(name)
        expected = f"skipped: {program} not found on PATH: apt-get install {program}"
        assert outcome == expected, (name, outcome)

    code, failed, output = run_service_tests(tmp_path, ci="true")
    assert code == 1, output[-3000:]
    assert failed.keys() == outcomes.keys()
    for name, outcome in failed.items():
        program = package_for(name)
        assert outcome.startswith(("error: ", "failure: ")), (name, outcome)
        assert f"{program} not found on PATH: apt-get install {program}" in outcome
        assert "CI=true" in outcome
