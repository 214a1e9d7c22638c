"""Shared fixtures: every anyio-marked test runs under trio and under asyncio.

``@pytest.mark.service("redis-server", ...)`` names the system programs a test needs: before
its fixtures are set up, each is looked up on ``PATH`` (``tests/services.py``); a missing one
skips the test naming its Debian package, or fails it under ``CI=true``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from trio_sse._stream import UNOPENED_LOG

from ._backends import BACKENDS
from .redis_server import RedisServer
from .services import PACKAGES, require

# tests/test_timing_trio.py pairs each pytest-trio test (its marker, trio's MockClock) with an
# asyncio twin; without trio (``nox -s notrio``) the module cannot be collected at all.
collect_ignore = (
    [] if importlib.util.find_spec("trio") else ["test_timing_trio.py", "test_lifetime_trio.py"]
)

# The shared broadcast suite is imported by two test modules: let pytest rewrite its asserts.
pytest.register_assert_rewrite("tests.broadcast_suite")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "service(*programs): the test needs these programs on PATH "
        f"(one of {', '.join(sorted(PACKAGES))}); skipped without them, failed under CI=true",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("service"):
        for program in marker.args:
            require(program)


@pytest.fixture(autouse=True)
def _fresh_log_limits() -> None:
    """Every test sees the first failure of each kind logged (trio_sse._stream.UNOPENED_LOG)."""
    UNOPENED_LOG.reset()


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """One real ``redis-server`` per test module (tests use a prefix of their own); a module
    that needs other settings defines its own. Tests using it carry the ``service`` mark."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
