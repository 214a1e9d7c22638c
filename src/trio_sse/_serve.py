"""Run an app on hypercorn, trio or asyncio, with signals wired to a ShutdownToken.

The first SIGINT/SIGTERM triggers the token: every stream bound to it starts its
cooperative phase and ends by its own grace period. The runner waits for the streams to
drain (at most ``shutdown_grace_period`` seconds), then tells hypercorn to stop; a second
signal stops at once (streams still get a clean end of body). The same code path serves
both backends: hypercorn's own per-backend worker does the HTTP, anyio does the rest.
"""

from __future__ import annotations

import copy
import functools
import logging
import signal
import socket
import threading
from typing import Any, Literal

import anyio
import anyio.abc
from starlette.types import ASGIApp

from ._app_target import load_app
from ._asyncio_loop import backend_options
from ._asynclib import running_under_trio
from ._extras import require
from ._listen import ClientCert, PathLike, apply_listen_options, bind_urls, check_tls
from ._proxy import ProxyHeaders, with_proxy_headers
from ._shutdown import ShutdownToken, _run_token_for_server, _server_token
from ._validate import choice, optional_instance, positive_int, seconds

__all__ = ["DEFAULT_SEND_TIMEOUT", "run", "serve"]

DEFAULT_SEND_TIMEOUT = 30.0

logger = logging.getLogger("trio_sse")

Backend = Literal["trio", "asyncio"]
_BACKENDS = ("trio", "asyncio")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# Beyond hypercorn's documented API this relies on ``hypercorn.trio.run.worker_serve`` and
# ``hypercorn.asyncio.run.worker_serve`` (``sockets=``, ``shutdown_trigger=``, and
# ``task_status=`` for trio), ``hypercorn.utils.wrap_app`` and ``Config.create_sockets``:
# pyproject.toml bounds hypercorn above the newest release tested.
def _hypercorn(module: str) -> Any:
    """``hypercorn.<module>``, or an ImportError naming the ``serve`` extra."""
    return require(f"hypercorn.{module}", part="trio_sse.serve", extras=("serve",))


def _make_config(config: Any, host: str | None, port: int | None) -> Any:
    if config is None:
        config = _hypercorn("config").Config()
        config.accesslog = None
        # hypercorn's own error log would get a handler of its own (level INFO, whatever the
        # application configured) and propagate to the root logger as well: its "Running on"
        # line came out twice and ignored the log level. Given a Logger, hypercorn logs
        # through it as it is: standard logging decides the level and the output, once.
        config.errorlog = logging.getLogger("hypercorn.error")
        # Streams have drained (or were given up on) before hypercorn is told to stop; what
        # is left is ordinary requests, which get a short wait of their own.
        config.graceful_timeout = 1.0
        host = host or "127.0.0.1"
    else:
        config = copy.copy(config)  # ours to change (bind, and graceful_timeout on a forced stop)
    if host is not None or port is not None:
        config.bind = [f"{host or '127.0.0.1'}:{8000 if port is None else port}"]
    return config


def _bound_unread_data(sock: socket.socket, timeout: float) -> None:
    """Set ``TCP_USER_TIMEOUT`` (milliseconds) on a TCP listening socket: its accepted
    connections inherit it (see :func:`serve`'s ``send_timeout``). Other sockets (a Unix
    socket) and systems without the option are left alone."""
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    if option is None:
        logger.debug("TCP_USER_TIMEOUT is not available here: send_timeout is not applied")
        return
    sock.setsockopt(socket.IPPROTO_TCP, option, max(1, round(timeout * 1000)))


async def _watch_signals(
    token: ShutdownToken,
    stop_now: anyio.CancelScope,
    signals: tuple[signal.Signals, ...],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    with anyio.open_signal_receiver(*signals) as received_signals:
        task_status.started()
        received = 0
        async for signum in received_signals:
            received += 1
            if received == 1:
                logger.info("%s received: draining streams", signal.Signals(signum).name)
                token.trigger(signal.Signals(signum))
            else:
                logger.warning("second signal: stopping now")
                stop_now.cancel()
                return


async def serve(
    app: ASGIApp,
    *,
    host: str | None = None,
    port: int | None = None,
    backend: Backend | None = None,
    shutdown: ShutdownToken | None = None,
    shutdown_grace_period: float = 5.0,
    config: Any = None,
    handle_signals: bool = True,
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    certfile: PathLike | None = None,
    keyfile: PathLike | None = None,
    ca_certs: PathLike | None = None,
    client_cert: ClientCert = "required",
    uds: PathLike | None = None,
    root_path: str | None = None,
    proxy_headers: ProxyHeaders | None = None,
    proxy_trusted_hops: int = 1,
    task_status: anyio.abc.TaskStatus[list[str]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* with hypercorn in the current trio or asyncio loop until shut down.

    * ``host``/``port``: where to listen (default 127.0.0.1:8000; ``port=0`` picks a free one).
      ``config``: a ``hypercorn.config.Config`` for everything else (its ``bind`` is used unless
      ``host``/``port`` are given).
    * ``backend``: ``"trio"`` or ``"asyncio"``; checked against the running loop (``None``:
      whichever is running).
    * ``shutdown``: the token to trigger on the first signal and to drain (default: a new
      child of the process-wide default token, which responses without ``shutdown=`` in this
      server obey). Triggering it yourself shuts the server down the same way.
    * ``shutdown_grace_period``: how long to wait for streams to drain before hypercorn is
      told to stop. Give responses a ``shutdown_grace_period`` below it.
    * ``handle_signals``: install SIGINT/SIGTERM handling (main thread only).
    * ``send_timeout``: seconds a connection may go without the client taking the data
      sent to it (default 30, ``DEFAULT_SEND_TIMEOUT``; ``None``: no limit). Set as Linux's
      ``TCP_USER_TIMEOUT`` on the listening sockets, which every accepted connection inherits:
      the kernel aborts a connection whose peer stopped reading (a zero window) or vanished
      once that long passed, whatever the worker. A stream's own ``send_timeout`` cannot do
      that on hypercorn's trio worker, which shields its socket writes. Elsewhere than Linux
      it is not available and is ignored (said at debug level).
    * ``certfile``/``keyfile``: serve HTTPS (PEM files), HTTP/2 and HTTP/1.1 offered by ALPN;
      ``ca_certs``: verify client certificates (``client_cert="required"``, the default, or
      ``"optional"``). The files are read before anything listens.
    * ``uds``: listen on this Unix socket instead of ``host``/``port`` (not both).
      ``root_path``: the ASGI ``root_path`` (the prefix a proxy mounts the app under).
    * ``proxy_headers``: behind a reverse proxy, take the client's address, scheme and host
      from ``X-Forwarded-*`` (``"legacy"``) or ``Forwarded`` (``"modern"``) headers, trusting
      the last ``proxy_trusted_hops`` (default 1) entries: hypercorn's ``ProxyFixMiddleware``.

    Use with ``nursery.start`` / ``task_group.start``: it reports the list of URLs it listens
    on once the sockets accept connections. Returns after hypercorn stopped; cancelling it
    stops the server at once (streams still end their bodies cleanly).
    """
    if backend is not None:
        choice("backend", backend, _BACKENDS)
    shutdown_grace_period = seconds("shutdown_grace_period", shutdown_grace_period)
    send_timeout = seconds("send_timeout", send_timeout, allow_none=True, positive=True)
    optional_instance("shutdown", shutdown, ShutdownToken, "a ShutdownToken")
    under_trio = running_under_trio()
    running: Backend = "trio" if under_trio else "asyncio"
    if backend is not None and backend != running:
        raise RuntimeError(f"serve(backend={backend!r}) called from a {running} event loop")
    token = shutdown if shutdown is not None else _run_token_for_server()
    config = prepare_config(
        config,
        host=host,
        port=port,
        uds=uds,
        certfile=certfile,
        keyfile=keyfile,
        ca_certs=ca_certs,
        client_cert=client_cert,
        root_path=root_path,
    )
    app = with_proxy_headers(app, proxy_headers, proxy_trusted_hops)
    sockets = listening_sockets(config, send_timeout)
    await serve_sockets(
        app,
        config,
        sockets,
        token,
        shutdown_grace_period=shutdown_grace_period,
        signals=_SIGNALS if handle_signals else (),
        task_status=task_status,
    )


def prepare_config(
    config: Any,
    *,
    host: str | None = None,
    port: int | None = None,
    uds: PathLike | None = None,
    **listen: Any,
) -> Any:
    """A copy of *config* (or a new one) with :func:`serve`'s listening options set and its
    certificates loaded once (a missing file fails here, before anything listens)."""
    if uds is not None and (host is not None or port is not None):
        raise ValueError("give uds or host/port, not both")
    config = _make_config(config, host, port)
    apply_listen_options(config, uds=uds, **listen)
    check_tls(config)
    return config


def listening_sockets(config: Any, send_timeout: float | None) -> Any:
    """Bind and listen on *config*'s sockets (hypercorn ``Sockets``), with ``send_timeout``
    as their ``TCP_USER_TIMEOUT``. Blocking, but never for long (no connection is made)."""
    sockets = config.create_sockets()
    for sock in sockets.secure_sockets + sockets.insecure_sockets:
        if send_timeout is not None:
            _bound_unread_data(sock, send_timeout)
        sock.listen(config.backlog)
    return sockets


async def serve_sockets(
    app: ASGIApp,
    config: Any,
    sockets: Any,
    token: ShutdownToken,
    *,
    shutdown_grace_period: float,
    signals: tuple[signal.Signals, ...],
    task_status: anyio.abc.TaskStatus[list[str]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """:func:`serve` on sockets that listen already (a worker process gets its parent's).

    *signals* (none: no handling) trigger *token*, a second one stops now; handled only in
    the main thread. Reports the URLs once hypercorn accepts; returns when it stopped.
    """
    urls = bind_urls(sockets)
    stop_now = anyio.CancelScope()  # cancelled to make hypercorn's asyncio worker stop now

    async def shutdown_trigger() -> None:
        with stop_now:
            await token.wait()
            with anyio.move_on_after(shutdown_grace_period):
                await token._wait_drained()

    wrapped = _hypercorn("utils").wrap_app(app, config.wsgi_max_body_size, "asgi")
    # Every task hypercorn starts inherits this context: responses without shutdown= in this
    # server obey its token, even when several servers share a process.
    context_token = _server_token.set(token)
    try:
        async with anyio.create_task_group() as group:
            if signals and threading.current_thread() is threading.main_thread():
                await group.start(_watch_signals, token, group.cancel_scope, signals)
            if running_under_trio():
                await group.start(
                    _serve_trio, wrapped, config, sockets, shutdown_trigger, group.cancel_scope
                )
            else:
                group.start_soon(
                    _serve_asyncio, wrapped, config, sockets, shutdown_trigger, group.cancel_scope
                )
                group.start_soon(_stop_when_cancelled, config, stop_now)
            running = "trio" if running_under_trio() else "asyncio"
            logger.info("serving on %s (hypercorn, %s)", ", ".join(urls), running)
            task_status.started(urls)
    finally:
        _server_token.reset(context_token)


async def _serve_trio(
    app: Any,
    config: Any,
    sockets: Any,
    shutdown_trigger: Any,
    done: anyio.CancelScope,
    *,
    task_status: anyio.abc.TaskStatus[Any],
) -> None:
    await _hypercorn("trio.run").worker_serve(
        app, config, sockets=sockets, shutdown_trigger=shutdown_trigger, task_status=task_status
    )
    done.cancel()  # hypercorn has stopped: so does the signal watcher


async def _serve_asyncio(
    app: Any, config: Any, sockets: Any, shutdown_trigger: Any, done: anyio.CancelScope
) -> None:
    # hypercorn's asyncio worker cannot be cancelled from outside: its cleanup then fails
    # (InvalidStateError, exit status 1) and skips the lifespan shutdown. It is shielded, and
    # _stop_when_cancelled turns a cancellation (a second signal, or serve() cancelled) into
    # an orderly stop instead.
    with anyio.CancelScope(shield=True):
        await _hypercorn("asyncio.run").worker_serve(
            app, config, sockets=sockets, shutdown_trigger=shutdown_trigger
        )
    done.cancel()


async def _stop_when_cancelled(config: Any, stop_now: anyio.CancelScope) -> None:
    try:
        await anyio.sleep_forever()
    finally:
        # No drain and no grace: hypercorn cancels its connections at once, and every stream
        # still ends its body cleanly (shielded).
        config.graceful_timeout = 0
        stop_now.cancel()


def check_installed(
    backend: Backend, *, part: str = "trio_sse.serve", extra: str = "serve"
) -> None:
    """Raise an ImportError naming *extra* unless hypercorn (and, for trio, trio) is there.

    Called before the loop starts, so that a missing package is named with its extra, not
    as anyio's "No such backend" or a traceback from inside the loop.
    """
    if backend == "trio":
        require("trio", part=f"{part} (backend 'trio')", extras=(extra,))
    require("hypercorn.config", part=part, extras=(extra,))


def run(app: ASGIApp | str, *, backend: Backend = "trio", workers: int = 1, **options: Any) -> None:
    """Blocking form of :func:`serve`: ``trio.run`` or ``asyncio.run`` it until shut down.

    *app* may be a ``"module:attribute"`` target, which ``workers > 1`` needs: then that many
    processes serve it on the same sockets, every one drained on SIGTERM/SIGINT to this one
    (``shutdown`` and ``handle_signals`` do not apply), and a worker that failed or exited
    early raises ``RuntimeError`` once all have exited.
    """
    choice("backend", backend, _BACKENDS)
    positive_int("workers", workers)
    if workers > 1:
        from ._workers import run_workers  # it imports this module

        if run_workers(app, workers=workers, backend=backend, **options) != 0:  # type: ignore[arg-type]
            raise RuntimeError("a worker failed or exited early (see the log)")
        return
    check_installed(backend)
    served: ASGIApp = load_app(app) if isinstance(app, str) else app
    anyio.run(
        functools.partial(serve, served, backend=backend, **options),
        backend=backend,
        backend_options=backend_options(backend),
    )
