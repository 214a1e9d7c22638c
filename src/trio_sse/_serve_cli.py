"""The ``serve`` subcommand of ``trio-sse`` / ``python -m trio_sse``: its flags, and running
them through :func:`trio_sse.run` (one process) or the workers (``--workers N``)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ._app_target import load_app
from ._proxy import check_proxy_options
from ._serve import prepare_config, run
from ._validate import positive_int

_LISTEN = ("host", "port", "uds", "certfile", "keyfile", "ca_certs", "client_cert", "root_path")

__all__ = ["add_serve_arguments", "serve_command"]


def add_serve_arguments(serve: argparse.ArgumentParser) -> None:
    """The ``serve`` flags (see the README's "The runner's options")."""
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
    _proxy_arguments(serve)
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="serve from N processes on the same address, all drained on SIGTERM (default 1)",
    )
    serve.add_argument("--factory", action="store_true", help="app is a factory to call")
    serve.add_argument("--log-level", default="info")


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


def _proxy_arguments(parser: argparse.ArgumentParser) -> None:
    proxy = parser.add_argument_group("behind a reverse proxy")
    proxy.add_argument(
        "--root-path", help="the ASGI root_path: the prefix a proxy mounts the app under"
    )
    proxy.add_argument(
        "--proxy-headers",
        nargs="?",
        const="legacy",
        choices=("legacy", "modern"),
        help="trust X-Forwarded-For/-Proto/-Host (legacy, the default) or Forwarded (modern) "
        "from the proxy in front",
    )
    proxy.add_argument(
        "--proxy-trusted-hops",
        type=int,
        default=1,
        metavar="N",
        help="how many proxies in front set those headers (default 1)",
    )


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
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


def _check(args: argparse.Namespace, options: dict[str, Any]) -> None:
    """Flags that do not go together, and certificates that do not load, as one line
    ``error: ...`` (exit status 1) rather than a traceback, before the app is imported."""
    try:
        positive_int("--workers", args.workers)
        check_proxy_options(options["proxy_headers"], options["proxy_trusted_hops"])
        prepare_config(None, **{name: options[name] for name in _LISTEN})
    except (TypeError, ValueError, OSError) as error:  # ssl.SSLError is an OSError
        raise SystemExit(f"error: {error}") from None


def serve_command(args: argparse.Namespace) -> int:
    """Run ``serve`` until shut down (blocking); returns the exit status."""
    _check(args, _options(args))
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.workers != 1:
        from ._workers import run_workers  # multiprocessing only when asked for

        return run_workers(
            args.app,
            workers=args.workers,
            factory=args.factory,
            log_level=args.log_level,
            **_options(args),
        )
    run(load_app(args.app, factory=args.factory), **_options(args))
    return 0
