"""The host lists of ``redis+sentinel://`` and ``redis+cluster://`` URLs: ``host[:port]``
items, IPv6 in brackets, separated by commas. Pure functions, nothing is a checkpoint."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

__all__ = ["hosts_text", "invalid_url", "parse_host", "parse_netloc"]


def invalid_url(url: str, why: str) -> ValueError:
    """The error for a malformed *url*, shown without anything up to its ``@``: no password."""
    scheme, _, rest = url.partition("://")
    return ValueError(f"invalid Redis URL {f'{scheme}://' + rest.rpartition('@')[2]!r}: {why}")


def hosts_text(hosts: Iterable[tuple[str, int]]) -> str:
    """``h1:p1,[::1]:p2``: how addresses are shown (in errors, reprs and logs)."""
    return ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in hosts)


def parse_host(url: str, text: str, *, default_port: int, what: str) -> tuple[str, int]:
    """One ``host[:port]`` item of *url*'s list (*what*: ``"node"``, ``"sentinel"``, for the
    messages). ``ValueError`` when malformed."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise invalid_url(url, f"bad {what} address {text!r}")
        port_text = rest[1:]
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise invalid_url(url, f"a {what} address has no host")
    if not port_text:
        return host, default_port
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise invalid_url(url, f"bad port {port_text!r}")
    return host, int(port_text)


def parse_netloc(
    url: str, netloc: str, *, default_port: int, what: str
) -> tuple[str | None, str | None, tuple[tuple[str, int], ...]]:
    """``[[user]:password@]host[:port][,host[:port]...]`` -> (user, password, hosts), the
    credentials unquoted. ``ValueError`` without any host, or for a malformed one."""
    credentials, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    if not hosts:
        raise invalid_url(url, f"expected at least one {what} host[:port]")
    parsed = tuple(
        parse_host(url, text, default_port=default_port, what=what) for text in hosts.split(",")
    )
    return username, password, parsed
