"""Where and how the runner listens: TLS, a Unix socket, the root path (issue 17 item 2).

:func:`apply_listen_options` checks the runner's listening options and sets them on a
``hypercorn.config.Config`` (``certfile``, ``keyfile``, ``ca_certs``, ``verify_mode``,
``bind``, ``root_path``); :func:`bind_urls` names the sockets made from it. Nothing here is a
checkpoint; :func:`check_tls` reads the certificate files (blocking, before the loop serves).

HTTP/2 comes with TLS: hypercorn offers ``h2`` and ``http/1.1`` by ALPN (its
``Config.alpn_protocols``), and a client that picks ``h2`` gets every stream of an origin
multiplexed on one connection (browsers open at most 6 HTTP/1.1 connections per origin).
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any, Literal

from ._validate import choice, shown

__all__ = ["ClientCert", "apply_listen_options", "bind_urls", "check_tls"]

ClientCert = Literal["required", "optional"]
_CLIENT_CERT = ("required", "optional")

PathLike = str | os.PathLike[str]


def _path(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or isinstance(value, bytes):
        raise TypeError(f"{name} must be a path (str or os.PathLike) or None, got {shown(value)}")
    path = os.fspath(value)
    if not isinstance(path, str) or not path:
        raise ValueError(f"{name} must be a non-empty path, got {shown(value)}")
    return path


def _tls(
    config: Any, certfile: object, keyfile: object, ca_certs: object, client_cert: object
) -> None:
    cert, key, cas = (
        _path("certfile", certfile),
        _path("keyfile", keyfile),
        _path("ca_certs", ca_certs),
    )
    mode = choice("client_cert", client_cert, _CLIENT_CERT)
    if (cert is None) != (key is None):
        raise ValueError(
            f"certfile and keyfile go together (TLS), got certfile={shown(certfile)}, "
            f"keyfile={shown(keyfile)}"
        )
    if cas is not None and cert is None:
        raise ValueError("ca_certs (client certificates) needs TLS: give certfile and keyfile")
    if cert is not None:
        config.certfile, config.keyfile = cert, key
    if cas is not None:
        config.ca_certs = cas
        # hypercorn loads ca_certs but leaves verify_mode alone (CERT_NONE for a server
        # context): without this, a client certificate would never be asked for.
        config.verify_mode = ssl.CERT_REQUIRED if mode == "required" else ssl.CERT_OPTIONAL


def apply_listen_options(
    config: Any,
    *,
    uds: PathLike | None = None,
    certfile: PathLike | None = None,
    keyfile: PathLike | None = None,
    ca_certs: PathLike | None = None,
    client_cert: ClientCert = "required",
    root_path: str | None = None,
) -> None:
    """Set the given options on *config*; ``None`` leaves its own setting.

    * ``uds``: listen on this Unix socket instead of ``bind`` (a stale socket file is replaced);
    * ``certfile``/``keyfile``: TLS (PEM files, together), HTTP/2 by ALPN;
    * ``ca_certs``: verify client certificates against these CAs (``client_cert="required"``:
      a client without one is refused in the handshake; ``"optional"``: asked for, checked
      when sent, the request served without one);
    * ``root_path``: the ASGI ``root_path`` (an app mounted under a prefix by a proxy).

    ``TypeError`` / ``ValueError`` name the option, before anything listens.
    """
    path = _path("uds", uds)
    _tls(config, certfile, keyfile, ca_certs, client_cert)
    if root_path is not None:
        if not isinstance(root_path, str):
            raise TypeError(f"root_path must be a str or None, got {shown(root_path)}")
        if root_path and not root_path.startswith("/"):
            raise ValueError(f"root_path must start with '/', got {shown(root_path)}")
        config.root_path = root_path
    if path is not None:
        config.bind = [f"unix:{path}"]


def check_tls(config: Any) -> None:
    """Load *config*'s certificates once, so that a missing file or a key that does not
    match fails before anything listens (hypercorn would only load them in its worker)."""
    config.create_ssl_context()


def bind_urls(sockets: Any) -> list[str]:
    """The URLs of hypercorn's ``Sockets``: ``http(s)://host:port``, ``http(s)+unix://path``."""
    urls = []
    kinds = [("https", sockets.secure_sockets), ("http", sockets.insecure_sockets)]
    for scheme, group in kinds:
        for sock in group:
            address = sock.getsockname()
            if sock.family == socket.AF_UNIX:
                urls.append(f"{scheme}+unix://{address}")
            else:
                host = address[0] if ":" not in address[0] else f"[{address[0]}]"
                urls.append(f"{scheme}://{host}:{address[1]}")
    return urls
