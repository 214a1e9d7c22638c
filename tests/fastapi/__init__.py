"""FastAPI with trio_sse (issue 14): ``yield`` path operations, OpenAPI, dependencies, servers.

``fastapi.sse`` (FastAPI >= 0.135) is the reference these tests compare with: without it (the
``lowest`` session installs an older FastAPI) every module of this folder is skipped.
"""

import pytest

pytest.importorskip("fastapi.sse", reason="fastapi.sse needs FastAPI >= 0.135")
