"""Command line: ``python -m trio_sse serve module:app [--backend trio] [--host] [--port] [--grace]``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

from ._serve import run


def _load(target: str, *, factory: bool) -> Any:
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"error: expected module:attribute, got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like uvicorn and hypercorn: apps in the cwd import
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj() if factory else obj


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m trio_sse", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve an ASGI app with hypercorn, draining SSE on SIGINT/SIGTERM"
    )
    serve.add_argument("app", help="the app to serve, as module:attribute")
    serve.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--grace", type=float, default=5.0, help="seconds streams get to drain (default 5)"
    )
    serve.add_argument("--factory", action="store_true", help="app is a factory to call")
    serve.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    app = _load(args.app, factory=args.factory)
    run(app, backend=args.backend, host=args.host, port=args.port, shutdown_grace_period=args.grace)


if __name__ == "__main__":
    main()
