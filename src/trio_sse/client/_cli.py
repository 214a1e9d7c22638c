"""``python -m trio_sse.client URL``: print an event stream as it arrives, like a browser reads it.

One line per event: ``[id] event: data`` (the ``[id]`` part only once an id was seen, the event
type ``message`` when the server named none, newlines in data shown as ``\\n``), or with
``--json`` one JSON object per line: ``{"event", "data", "id", "retry"}``. Reconnects as a
browser does (``Last-Event-ID``, ``retry:``, backoff); a 204 or a clean end with
``--no-reconnect`` exits 0, an error exits 1 with a message on stderr, Ctrl-C exits 0 quietly.
It runs on httpx (httpx2 if httpx is not installed), under trio if installed, else asyncio.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import logging
import os
import signal
import sys
from typing import Any

import anyio
import anyio.abc

from .._events import ServerSentEvent
from .._extras import installed
from ._errors import SSEError
from ._http import default_library
from ._source import DEFAULT_BACKOFF, DEFAULT_MAX_ATTEMPTS, connect

__all__ = ["format_event", "main"]


def format_event(event: ServerSentEvent, *, as_json: bool = False) -> str:
    """One output line for *event* (without the line end)."""
    kind = event.event or "message"  # what a browser dispatches when the type is empty
    if as_json:
        return json.dumps(
            {"event": kind, "data": event.data, "id": event.id, "retry": event.retry},
            ensure_ascii=False,
        )
    data = (event.data or "").replace("\n", "\\n")
    prefix = "" if event.id is None else f"[{event.id}] "
    return f"{prefix}{kind}: {data}"


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {text!r}")
    return name.strip(), value.strip()


def _attempts(text: str) -> int:
    number = int(text)
    if number < 0:
        raise argparse.ArgumentTypeError("must be >= 0 (0: never give up)")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trio_sse.client",
        description="Print a Server-Sent Events stream as it arrives, reconnecting like a browser.",
    )
    parser.add_argument("url", help="the event stream's URL")
    parser.add_argument("--json", action="store_true", help="print one JSON object per event")
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        type=_header,
        default=[],
        metavar="NAME:VALUE",
        help="add a request header (repeatable)",
    )
    parser.add_argument("--last-event-id", metavar="ID", help="resume after this event id")
    parser.add_argument(
        "--no-reconnect", action="store_true", help="stop when the stream ends or breaks"
    )
    parser.add_argument(
        "--max-attempts",
        type=_attempts,
        default=DEFAULT_MAX_ATTEMPTS,
        metavar="N",
        help=f"give up after N consecutive failed attempts (default {DEFAULT_MAX_ATTEMPTS};"
        " 0: never)",
    )
    parser.add_argument(
        "--backoff",
        type=float,
        default=DEFAULT_BACKOFF,
        metavar="SECONDS",
        help=f"wait before reconnecting when the server set no retry (default {DEFAULT_BACKOFF:g})",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log connections and reconnections"
    )
    return parser


async def _run(args: argparse.Namespace, httpx: Any) -> int:
    """Print the stream's events until it ends or Ctrl-C (0). An error of the stream is
    raised as itself (not grouped) once the Ctrl-C watcher has stopped."""
    error: Exception | None = None
    async with anyio.create_task_group() as group:
        await group.start(_cancel_on_ctrl_c, group.cancel_scope)
        try:
            await _print_events(args, httpx)
        except Exception as exc:
            error = exc
        group.cancel_scope.cancel()  # the watcher's, or Ctrl-C's: either way, done
    if error is not None:
        raise error
    return 0


async def _cancel_on_ctrl_c(
    scope: anyio.CancelScope, *, task_status: anyio.abc.TaskStatus[None]
) -> None:
    """Turn SIGINT into a cancellation of *scope*, seen at the stream's next checkpoint.

    Without this, trio raises ``KeyboardInterrupt`` wherever the program happens to be, which
    can be between making a coroutine and awaiting it (Python then warns that it "was never
    awaited", on the quiet exit Ctrl-C is meant to be). Where the loop has no signal receiver
    (asyncio on Windows), Ctrl-C stays a ``KeyboardInterrupt``, which ``main`` handles."""
    with contextlib.ExitStack() as stack:
        try:
            signals = stack.enter_context(anyio.open_signal_receiver(signal.SIGINT))
        except NotImplementedError:  # pragma: no cover (asyncio on Windows)
            task_status.started()
            return
        task_status.started()
        async for _ in signals:
            scope.cancel()
            return


async def _print_events(args: argparse.Namespace, httpx: Any) -> None:
    """Connect and print each event (a checkpoint at each read)."""
    async with (
        httpx.AsyncClient() as http,
        connect(
            http,
            args.url,
            headers=dict(args.header),
            last_event_id=args.last_event_id,
            reconnect=not args.no_reconnect,
            max_attempts=args.max_attempts or None,
            backoff=args.backoff,
        ) as source,
    ):
        async for event in source:
            print(format_event(event, as_json=args.json), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
        stream=sys.stderr,
    )
    if isinstance(sys.stdout, io.TextIOWrapper):
        # Event data is any Unicode: never die on a terminal that cannot show a character.
        sys.stdout.reconfigure(errors="backslashreplace")
    httpx = default_library().module
    backend = "trio" if installed("trio") else "asyncio"
    try:
        return anyio.run(functools.partial(_run, args, httpx), backend=backend)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and keep the interpreter from
        # complaining when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (SSEError, httpx.HTTPError, httpx.InvalidURL) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except BaseException as error:
        if _interrupted(error):
            return 0  # Ctrl-C is how one stops watching a stream: not an error
        raise


def _interrupted(error: BaseException) -> bool:
    """A KeyboardInterrupt, possibly grouped by a task group it went through (on 3.10 too)."""
    if isinstance(error, KeyboardInterrupt):
        return True
    nested = getattr(error, "exceptions", None)
    return isinstance(nested, tuple) and bool(nested) and all(map(_interrupted, nested))
