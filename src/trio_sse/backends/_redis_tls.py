"""The TLS options of ``rediss://`` and ``rediss+cluster://`` URLs, and the context they make.

``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_check_hostname`` (``true``/``false``)
and ``ssl_cert_reqs`` (``required``/``optional``/``none``) in the URL's query. The defaults
verify the server and its host name against the system's CAs. Standard library only; nothing
here is a checkpoint.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from urllib.parse import parse_qs

__all__ = ["TLS_OPTIONS", "context_for", "read_options"]

TLS_OPTIONS = (
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
    "ssl_cert_reqs",
)
_CERT_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


def read_options(
    query: str, allowed: tuple[str, ...], invalid: Callable[[str], ValueError]
) -> dict[str, str]:
    """The options of *query* (the last value of each), each one of *allowed*; else the
    ``ValueError`` that *invalid* makes of the reason (it names the URL, without password)."""
    options: dict[str, str] = {}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        if name not in allowed:
            expected = ", ".join(allowed) if allowed else "none"
            raise invalid(f"unknown option {name!r} (expected: {expected})")
        options[name] = values[-1]
    if options.get("ssl_cert_reqs", "required") not in _CERT_REQS:
        raise invalid("ssl_cert_reqs must be required, optional or none")
    if options.get("ssl_check_hostname", "true") not in ("true", "false"):
        raise invalid("ssl_check_hostname must be true or false")
    return options


def context_for(options: Mapping[str, str]) -> ssl.SSLContext:
    """A context that verifies the server (and its host name) unless *options* say not to;
    with a client certificate when they name one. Reads the files named (``OSError``,
    ``ssl.SSLError`` when they cannot be read)."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if "ssl_certfile" in options:
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    requirement = _CERT_REQS[options.get("ssl_cert_reqs", "required")]
    context.check_hostname = (
        options.get("ssl_check_hostname", "true") == "true" and requirement != ssl.CERT_NONE
    )
    context.verify_mode = requirement
    return context
