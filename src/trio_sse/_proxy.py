"""Proxy headers for the runner: hypercorn's ``ProxyFixMiddleware`` in front of the app.

Behind a reverse proxy the app sees the proxy as its client. With ``proxy_headers`` the
runner trusts the last ``proxy_trusted_hops`` entries of ``X-Forwarded-For``,
``X-Forwarded-Proto`` and ``X-Forwarded-Host`` (``"legacy"``) or of ``Forwarded``
(``"modern"``, RFC 7239), and rewrites the request's ``client``, ``scheme`` and ``Host``
accordingly. Only turn it on behind a proxy that sets those headers itself: from anyone
else they are lies. Nothing here is a checkpoint.
"""

from __future__ import annotations

from typing import Any, Literal

from starlette.types import ASGIApp

from ._extras import require
from ._validate import choice, positive_int

__all__ = ["ProxyHeaders", "check_proxy_options", "with_proxy_headers"]

ProxyHeaders = Literal["legacy", "modern"]
_MODES = ("legacy", "modern")


def check_proxy_options(mode: object, trusted_hops: object) -> None:
    """``TypeError`` / ``ValueError`` naming ``proxy_headers`` or ``proxy_trusted_hops``."""
    positive_int("proxy_trusted_hops", trusted_hops, hint=" (proxies in front)")
    if mode is not None:
        choice("proxy_headers", mode, _MODES)


def with_proxy_headers(app: ASGIApp, mode: ProxyHeaders | None, trusted_hops: int) -> ASGIApp:
    """*app* behind ``ProxyFixMiddleware(mode, trusted_hops)``, or *app* itself when *mode*
    is ``None``; the options are checked first (:func:`check_proxy_options`)."""
    check_proxy_options(mode, trusted_hops)
    if mode is None:
        return app
    middleware: Any = require(
        "hypercorn.middleware", part="trio_sse.serve", extras=("serve",)
    ).ProxyFixMiddleware
    wrapped: ASGIApp = middleware(app, mode=mode, trusted_hops=trusted_hops)
    return wrapped
