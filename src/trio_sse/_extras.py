"""Optional dependencies: import one, or say which extra installs it.

The core (``import trio_sse``, responses, the broadcaster) needs anyio and starlette only.
The parts that need more import it through :func:`require`, at the moment they are used, so
that a missing package becomes an ``ImportError`` naming the ``pip install`` that fixes it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

__all__ = ["MissingExtraError", "install_hint", "installed", "require"]


class MissingExtraError(ImportError):
    """A part of trio_sse was used without the extra that installs what it needs."""


def install_hint(*extras: str) -> str:
    """``pip install 'trio_sse[serve]'`` (several extras: alternatives joined by "or")."""
    return " or ".join(f"pip install 'trio_sse[{extra}]'" for extra in extras)


def installed(name: str) -> bool:
    """Whether the top-level module *name* can be imported, without importing it."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a finder that refuses the name (as an import blocker does)
        return False


def _is_missing(error: ImportError, module: str) -> bool:
    """Whether *error* says that *module* itself (or a package above it) is not installed."""
    name = error.name or ""
    return isinstance(error, ModuleNotFoundError) and (
        module == name or module.startswith(name + ".")
    )


def require(module: str, *, part: str, extras: tuple[str, ...]) -> ModuleType:
    """Import *module* for *part*; raise :class:`MissingExtraError` if it is not installed.

    ``require("hypercorn.config", part="trio_sse.serve", extras=("serve",))`` raises
    ``trio_sse.serve needs hypercorn: pip install 'trio_sse[serve]'`` when hypercorn is
    missing. An import that fails for another reason (a broken install) propagates unchanged.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if not _is_missing(error, module):
            raise
        top = module.partition(".")[0]
        raise MissingExtraError(
            f"{part} needs {top}: {install_hint(*extras)}", name=error.name
        ) from error
