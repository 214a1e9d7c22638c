"""httpx or httpx2: the client speaks to whichever library the caller's ``AsyncClient`` is from.

httpx2 continues httpx under a new name with the same API; a program may have one, the
other or both installed. Nothing here imports either: the library of a client is found among
the modules already imported (a client object exists, so its module was imported), and the
command line imports the first one installed. Importing this module checks that one of them
is installed: ``import trio_sse.client`` without either fails with an ``ImportError`` that
names the extras.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeAlias

from .._extras import MissingExtraError, install_hint, installed

if TYPE_CHECKING:
    import httpx
    import httpx2

    AsyncClient: TypeAlias = httpx.AsyncClient | httpx2.AsyncClient
    Response: TypeAlias = httpx.Response | httpx2.Response
    URL: TypeAlias = httpx.URL | httpx2.URL

__all__ = ["LIBRARIES", "HTTPLibrary", "check_installed", "default_library", "library_of"]

LIBRARIES = ("httpx", "httpx2")
"""The HTTP libraries the client works with, in order of preference for the command line."""

EXTRAS = ("client", "httpx2")
"""The extras that install them: ``client`` brings httpx, ``httpx2`` brings httpx2."""


@dataclass(frozen=True)
class HTTPLibrary:
    """One HTTP library and the errors of it that the client handles."""

    module: Any  # httpx or httpx2: the same API
    # Errors after which a browser "reestablishes the connection" (9.2.3: a network error).
    # UnsupportedProtocol and LocalProtocolError are TransportErrors too, but they are
    # mistakes on this side that no amount of retrying fixes: they propagate unchanged.
    network_errors: tuple[type[Exception], ...]
    # While reading a body, a corrupt content-encoding is handled like a dropped connection.
    read_errors: tuple[type[Exception], ...]

    @classmethod
    def of_module(cls, module: ModuleType) -> HTTPLibrary:
        network = (
            module.NetworkError,
            module.TimeoutException,
            module.RemoteProtocolError,
            module.ProxyError,
        )
        return cls(module, network, (*network, module.DecodingError))


_cache: dict[str, HTTPLibrary] = {}


def _library(name: str, module: ModuleType) -> HTTPLibrary:
    library = _cache.get(name)
    if library is None or library.module is not module:
        library = _cache[name] = HTTPLibrary.of_module(module)
    return library


def library_of(client: object) -> HTTPLibrary:
    """The library *client* is an ``AsyncClient`` of; ``TypeError`` for anything else."""
    for name in LIBRARIES:
        module = sys.modules.get(name)
        if module is not None and isinstance(client, module.AsyncClient):
            return _library(name, module)
    raise TypeError(
        "client must be an httpx.AsyncClient or an httpx2.AsyncClient,"
        f" got {type(client).__module__}.{type(client).__qualname__}"
    )


def check_installed() -> None:
    """Raise :class:`~trio_sse._extras.MissingExtraError` unless httpx or httpx2 is installed."""
    if not any(map(installed, LIBRARIES)):
        raise MissingExtraError(
            f"trio_sse.client needs httpx or httpx2: {install_hint(*EXTRAS)}", name="httpx"
        )


def default_library() -> HTTPLibrary:
    """The first of :data:`LIBRARIES` installed, imported (for the command line)."""
    check_installed()
    name = next(name for name in LIBRARIES if installed(name))
    return _library(name, importlib.import_module(name))


check_installed()
