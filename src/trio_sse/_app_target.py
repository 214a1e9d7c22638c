"""``module:attribute`` app targets, as the command line and worker processes name an app."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

__all__ = ["load_app"]


def load_app(target: str, *, factory: bool = False) -> Any:
    """Import ``module:attr[.attr...]`` and return the object (called, if *factory*).

    Like uvicorn and hypercorn, the current directory is put on ``sys.path`` so that apps
    in it import. A malformed target exits with a message (``SystemExit``); an import error
    propagates. Blocking (it imports).
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"error: expected module:attribute, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj() if factory else obj
