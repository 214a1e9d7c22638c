"""Command line: ``trio-sse serve|demo|client ...`` (also ``python -m trio_sse ...``).

* ``serve module:app [--backend trio] [--host] [--port] [--uds] [--grace] [--send-timeout]
  [--certfile --keyfile [--ca-certs] [--client-cert]] [--root-path]
  [--proxy-headers [legacy|modern]] [--proxy-trusted-hops N] [--workers N] [--factory]
  [--log-level]``: serve an ASGI app on hypercorn, draining SSE streams on SIGINT/SIGTERM
  (extra ``serve``);
* ``demo [--host] [--port] [--backend]``: the live demo, as ``python -m trio_sse.demo``
  (extra ``demo``);
* ``client URL [...]``: print an event stream, as ``python -m trio_sse.client`` (extra
  ``client``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ._extras import MissingExtraError
from ._serve import check_installed
from ._serve_cli import add_serve_arguments, serve_command

# Subcommands that are whole programs of their own: their arguments are passed on untouched.
_DELEGATED = {
    "demo": ("trio_sse.demo.__main__", "serve the live demo on hypercorn"),
    "client": ("trio_sse.client._cli", "print a Server-Sent Events stream as it arrives"),
}


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve an ASGI app with hypercorn, draining SSE on SIGINT/SIGTERM"
    )
    add_serve_arguments(serve)
    for name, (_, summary) in _DELEGATED.items():
        commands.add_parser(name, help=f"{summary} (see: {prog} {name} --help)", add_help=False)
    return parser


def _delegate(command: str, argv: Sequence[str]) -> int:
    try:
        module = importlib.import_module(_DELEGATED[command][0])
    except MissingExtraError as error:
        raise SystemExit(f"error: {error}") from None
    status: int | None = module.main(list(argv))
    return status or 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (errors exit through ``SystemExit``)."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    prog = os.path.basename(sys.argv[0]) if argv is None else "trio-sse"
    if prog == "__main__.py":
        prog = "python -m trio_sse"
    if arguments and arguments[0] in _DELEGATED:
        return _delegate(arguments[0], arguments[1:])
    args = _parser(prog).parse_args(arguments)
    try:
        check_installed(args.backend)
    except MissingExtraError as error:
        raise SystemExit(f"error: {error}") from None
    return serve_command(args)


if __name__ == "__main__":
    raise SystemExit(main())
