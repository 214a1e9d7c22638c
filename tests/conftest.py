"""Shared fixtures: every anyio-marked test runs under trio and under asyncio."""

from __future__ import annotations

import pytest

# The shared broadcast suite is imported by two test modules: let pytest rewrite its asserts.
pytest.register_assert_rewrite("tests.broadcast_suite")


@pytest.fixture(params=["trio", "asyncio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)
