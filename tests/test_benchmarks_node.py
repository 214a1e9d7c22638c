"""The Node.js reference apps of the benchmarks serve what the lean client counts.

Each app (``benchmarks/node/raw.js``, ``better_sse.js``) is started as the benchmark runner
starts it, a ``node`` process on a free 127.0.0.1 port, after the runner's own install of its
node_modules (``npm ci``); the client's throughput and fan-out modes then read it with tiny
counts. Outside CI an install that cannot happen (no network) skips, naming why; with
``CI=true`` it fails, as a missing ``node``/``npm`` does (``tests/services.py``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks import _node
from benchmarks._runner import NODE_CONTESTANTS
from benchmarks._servers import Server, running
from benchmarks.client import TERMINATORS, fanout, throughput

from .services import in_ci

needs_node = pytest.mark.service("node", "npm")

#: every client call below ends within this many seconds, or returns an error
LIMIT = 10.0


@pytest.fixture(scope="module")
def node_modules() -> None:
    problem = _node.install()
    if problem is None:
        return
    if in_ci(os.environ):
        pytest.fail(f"{problem} (CI=true: the Node apps must run)", pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="module")
def servers(node_modules: None) -> Iterator[dict[str, Server]]:
    found = {app: Server("node", app) for app in _node.NODE_APPS}
    with running(list(found.values())):
        yield found


@needs_node
@pytest.mark.parametrize("name", sorted(NODE_CONTESTANTS))
def test_stream_route_sends_n_events_then_ends(name: str, servers: dict[str, Server]) -> None:
    app, route, _, newline = NODE_CONTESTANTS[name]
    server = servers[app]
    result = throughput(
        server.port, f"{route}?n=2500&size=40", 2500, server.pids, LIMIT, TERMINATORS[newline]
    )
    assert result["status"] == 200
    assert result["complete"]
    assert result["events"] == 2500


@needs_node
@pytest.mark.parametrize("name", sorted(NODE_CONTESTANTS))
def test_fan_out_delivers_each_event_to_every_subscriber(
    name: str, servers: dict[str, Server]
) -> None:
    app, _, publish_path, newline = NODE_CONTESTANTS[name]
    server = servers[app]
    result = fanout(
        server.port, 5, 3, 0, server.pids, LIMIT,
        terminator=TERMINATORS[newline], publish_path=publish_path,
    )  # fmt: skip
    assert "error" not in result, result
    assert (result["delivered"], result["expected"]) == (15, 15)
    assert result["publisher_status"] == 200
    assert result["p99_ms"] >= 0


@needs_node
def test_stats_names_the_stack(servers: dict[str, Server]) -> None:
    assert servers["node-raw"].stats["impl"].startswith("node:http v")
    assert servers["better-sse"].stats["impl"].startswith("better-sse 0.16.1 on node:http")


def test_without_node_the_install_says_which_package() -> None:
    assert _node.install(which=lambda program: None) == (
        "node not found on PATH: apt-get install nodejs"
    )
    only_node = _node.install(which=lambda program: "/bin/node" if program == "node" else None)
    assert only_node == "npm not found on PATH: apt-get install npm"


def test_a_failed_install_says_so(tmp_path: Path) -> None:
    # An "npm" that exits 1 (the Python interpreter running a one-line script) in an empty folder.
    script = tmp_path / "npm"
    script.write_text(f"#!{sys.executable}\nimport sys; sys.exit('no registry')\n")
    script.chmod(0o755)
    found = {"node": "/bin/node", "npm": str(script)}
    problem = _node.install(which=found.get, directory=tmp_path)
    assert problem == f"npm ci in {tmp_path} failed (exit 1): no registry"
    found["npm"] = str(tmp_path / "missing")
    problem = _node.install(which=found.get, directory=tmp_path)
    assert problem is not None
    assert problem.startswith(f"npm ci in {tmp_path} failed: ")
