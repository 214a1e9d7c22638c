"""The anyio backends the suite runs on: trio only where it is installed.

``nox -s notrio`` runs the suite without trio: every test parametrized over the backends
then runs on asyncio and skips on trio, with a reason that says how to install it.
tests/conftest.py builds its ``anyio_backend`` fixture from :data:`BACKENDS`.
"""

from __future__ import annotations

import importlib.util

import pytest

TRIO_INSTALLED = importlib.util.find_spec("trio") is not None

requires_trio = pytest.mark.skipif(
    not TRIO_INSTALLED, reason="trio is not installed (pip install 'trio_sse[trio]')"
)
"""Mark for a test that needs trio whatever the backend fixture says."""

BACKENDS = [pytest.param("trio", marks=requires_trio, id="trio"), "asyncio"]
"""The ``anyio_backend`` fixture's params: ``["trio", "asyncio"]``, trio skipped if absent."""
