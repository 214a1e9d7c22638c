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
import logging
import os
import sys
from collections.abc import Sequence

from ._app_target import load_app
from ._extras import MissingExtraError
from ._serve import check_installed, run

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
    serve.add_argument("app", help="the app to serve, as module:attribute")
    serve.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8000; 0: any free)")
    serve.add_argument("--uds", metavar="PATH", help="listen on this Unix socket instead")
    serve.add_argument(
        "--grace", type=float, default=5.0, help="seconds streams get to drain (default 5)"
    )
    serve.add_argument(
        "--send-timeout",
        type=float,
        default=30.0,
        help="seconds a connection may leave sent data unread before it is dropped "
        "(TCP_USER_TIMEOUT; default 30, 0: no limit)",
    )
    _tls_arguments(serve)
    serve.add_argument(
        "--root-path", help="the ASGI root_path: the prefix a proxy mounts the app under"
    )
    serve.add_argument(
        "--proxy-headers",
        nargs="?",
        const="legacy",
        choices=("legacy", "modern"),
        help="trust X-Forwarded-For/-Proto/-Host (legacy, the default) or Forwarded (modern) "
        "from the proxy in front",
    )
    serve.add_argument(
        "--proxy-trusted-hops",
        type=int,
        default=1,
        metavar="N",
        help="how many proxies in front set those headers (default 1)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="serve from N processes on the same sockets, all drained on SIGTERM (default 1)",
    )
    serve.add_argument("--factory", action="store_true", help="app is a factory to call")
    serve.add_argument("--log-level", default="info")
    for name, (_, summary) in _DELEGATED.items():
        commands.add_parser(name, help=f"{summary} (see: {prog} {name} --help)", add_help=False)
    return parser


def _tls_arguments(parser: argparse.ArgumentParser) -> None:
    tls = parser.add_argument_group("TLS (HTTP/2 and HTTP/1.1 offered by ALPN)")
    tls.add_argument("--certfile", metavar="PEM", help="the server's certificate (chain)")
    tls.add_argument("--keyfile", metavar="PEM", help="the certificate's private key")
    tls.add_argument(
        "--ca-certs", metavar="PEM", help="verify client certificates against these CAs"
    )
    tls.add_argument(
        "--client-cert",
        choices=("required", "optional"),
        default="required",
        help="with --ca-certs: refuse clients without a certificate, or not (default required)",
    )


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
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    options = {
        "backend": args.backend,
        "host": args.host,
        "port": args.port,
        "shutdown_grace_period": args.grace,
        "send_timeout": args.send_timeout or None,
        "uds": args.uds,
        "certfile": args.certfile,
        "keyfile": args.keyfile,
        "ca_certs": args.ca_certs,
        "client_cert": args.client_cert,
        "root_path": args.root_path,
        "proxy_headers": args.proxy_headers,
        "proxy_trusted_hops": args.proxy_trusted_hops,
    }
    if args.workers != 1:
        from ._workers import run_workers

        return run_workers(
            args.app,
            workers=args.workers,
            factory=args.factory,
            log_level=args.log_level,
            **options,
        )
    run(load_app(args.app, factory=args.factory), **options)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
