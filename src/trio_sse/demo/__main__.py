"""``python -m trio_sse.demo [--host HOST] [--port PORT] [--backend trio|asyncio]``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .._extras import MissingExtraError
from .._serve import check_installed, run
from ._app import SHUTDOWN_GRACE_PERIOD, create_app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m trio_sse.demo",
        description="Serve the trio_sse live demo (Server-Sent Events) on hypercorn.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--backend",
        choices=["trio", "asyncio"],
        default="trio",
        help="event loop for hypercorn (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    try:
        check_installed(args.backend, part="trio_sse.demo", extra="demo")
    except MissingExtraError as error:  # before the banner: say what to install, no traceback
        raise SystemExit(f"error: {error}") from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"trio_sse demo on http://{host}:{args.port} (hypercorn, {args.backend}) — Ctrl-C to stop",
        flush=True,
    )
    print(
        "Open it in two tabs: the room is shared, and every tab says goodbye on Ctrl-C.",
        flush=True,
    )
    run(
        create_app(),
        host=args.host,
        port=args.port,
        backend=args.backend,
        # The runner waits this long for streams to drain: a little more than their own grace.
        shutdown_grace_period=SHUTDOWN_GRACE_PERIOD + 1,
    )


if __name__ == "__main__":
    main()
