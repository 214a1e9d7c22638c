"""``--workers N``: several processes serving one app on the same address, drained together.

TCP (the usual case): the parent binds each address with ``SO_REUSEPORT`` but does not
listen, which turns ``port=0`` into one port for all and keeps it reserved; every worker
binds and listens on that address with ``SO_REUSEPORT`` too, and the kernel spreads new
connections over the workers by a hash of their addresses. (One listening socket shared by
all would do, but then whichever worker wakes first takes nearly every connection: SSE
connections are long and cheap, so one worker would hold almost all of them.) A Unix socket
cannot be shared that way: then the parent listens and the workers inherit its socket.
Workers are multiprocessing ``spawn`` processes, each importing the app from its
``module:attribute`` target, and each runs :func:`trio_sse._serve.serve_sockets`.

Signals: the workers ignore SIGINT (a Ctrl-C reaches the whole process group, and must count
once) and handle SIGTERM as a single runner does. The parent turns every SIGINT/SIGTERM it
gets into one SIGTERM to each worker: the first starts every worker's drain, a second stops
them now. A signal that comes before a worker is ready (its handler installed) is passed on
once it is. The parent exits when every worker has: status 0 if all exited 0. A worker that
exits on its own before any signal shuts the others down (drained) and the status is 1.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import anyio
import anyio.abc

from ._app_target import load_app
from ._asyncio_loop import backend_options
from ._proxy import ProxyHeaders, check_proxy_options, with_proxy_headers
from ._serve import (
    _BACKENDS,
    DEFAULT_SEND_TIMEOUT,
    Backend,
    _watch_signals,
    check_installed,
    listening_sockets,
    prepare_config,
    serve_sockets,
)
from ._shutdown import ShutdownToken, _run_token_for_server
from ._validate import choice, positive_int, seconds

__all__ = ["run_workers"]

logger = logging.getLogger("trio_sse")


@dataclass(frozen=True)
class _Worker:
    """What a worker process needs (pickled to it): the app's target and how to serve it."""

    target: str
    factory: bool
    backend: Backend
    config: Any
    shutdown_grace_period: float
    proxy_headers: ProxyHeaders | None
    proxy_trusted_hops: int
    log_level: str | None
    send_timeout: float | None


def run_workers(
    target: str,
    *,
    workers: int,
    backend: Backend = "trio",
    factory: bool = False,
    log_level: str | None = None,
    config: Any = None,
    shutdown_grace_period: float = 5.0,
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
    proxy_headers: ProxyHeaders | None = None,
    proxy_trusted_hops: int = 1,
    **listen: Any,
) -> int:
    """Serve the app at *target* (``module:attribute``) in *workers* processes; blocks until
    they all exited, and returns the exit status (0: all drained and exited cleanly).

    *listen* are :func:`trio_sse.serve`'s listening options (``host``, ``port``, ``uds``,
    ``certfile``, ...). *log_level* configures standard logging in each worker. Main thread
    only (it installs SIGINT/SIGTERM handlers, restored on return).
    """
    if not isinstance(target, str):
        raise TypeError(
            f"with workers > 1 the app must be a 'module:attribute' str, got {target!r}"
        )
    positive_int("workers", workers)
    choice("backend", backend, _BACKENDS)
    check_installed(backend)
    grace = seconds("shutdown_grace_period", shutdown_grace_period)
    send_timeout = seconds("send_timeout", send_timeout, allow_none=True, positive=True)
    check_proxy_options(proxy_headers, proxy_trusted_hops)
    config = prepare_config(config, **listen)
    tcp = _binds_are_tcp(config)
    sockets = _reserve(config, workers) if tcp else listening_sockets(config, send_timeout)
    if tcp and not _all_reuse_port(sockets):  # a hypercorn that does not set it: share one
        _close(sockets)
        tcp, sockets = False, listening_sockets(config, send_timeout)
    spec = _Worker(
        target, factory, backend, config, grace, proxy_headers, proxy_trusted_hops, log_level,
        send_timeout,
    )  # fmt: skip
    try:
        return _Supervisor(spec, None if tcp else sockets, workers).run()
    finally:
        _close(sockets)


def _close(sockets: Any) -> None:
    for sock in sockets.secure_sockets + sockets.insecure_sockets:
        sock.close()


def _all_reuse_port(sockets: Any) -> bool:
    every = sockets.secure_sockets + sockets.insecure_sockets
    return all(sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for sock in every)


def _binds_are_tcp(config: Any) -> bool:
    binds = [*config.bind, *(config.insecure_bind if config.ssl_enabled else [])]
    special = any(bind.startswith(("unix:", "fd://")) for bind in binds)
    return hasattr(socket, "SO_REUSEPORT") and not special


def _reserve(config: Any, workers: int) -> Any:
    """Bind *config*'s TCP addresses with ``SO_REUSEPORT`` (hypercorn sets it on the sockets
    it makes when ``workers > 1``), without listening, and set the bound addresses (a port 0
    resolved) on *config*, for the workers to bind the same."""
    config.workers = workers
    sockets = config.create_sockets()
    if config.ssl_enabled:
        config.bind = [_address(sock) for sock in sockets.secure_sockets]
        config.insecure_bind = [_address(sock) for sock in sockets.insecure_sockets]
    else:
        config.bind = [_address(sock) for sock in sockets.insecure_sockets]
    return sockets


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Supervisor:
    """The parent: starts the workers, passes signals on, waits for them all."""

    def __init__(self, spec: _Worker, sockets: Any, count: int) -> None:
        self.spec, self.sockets, self.count = spec, sockets, count
        self.processes: list[BaseProcess] = []
        self.ready: dict[Connection, BaseProcess] = {}  # workers not ready yet
        self.forwarded: dict[int, int] = {}  # pid -> SIGTERMs sent, for the ready ones
        self.exited: set[int] = set()
        self.signals = 0  # SIGINT/SIGTERM received (a worker's early exit counts as one)
        self.failed = False
        self.wakeup_read, self.wakeup_write = os.pipe()

    def run(self) -> int:
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self._start()
            self._supervise()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(self.wakeup_read)
            os.close(self.wakeup_write)
        statuses = [process.exitcode for process in self.processes]
        logger.info("workers exited: %s", ", ".join(map(str, statuses)))
        return 0 if not self.failed and all(status == 0 for status in statuses) else 1

    def _on_signal(self, signum: int, frame: object) -> None:
        # Only counts and wakes the loop below: the loop does the sending, so that a signal
        # landing in the middle of it cannot send a worker the same SIGTERM twice.
        self.signals += 1
        os.write(self.wakeup_write, b"!")

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        for _ in range(self.count):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(
                target=_worker_main, args=(self.spec, self.sockets, send), daemon=False
            )
            process.start()
            send.close()
            self.processes.append(process)
            self.ready[receive] = process
        logger.info("started %d workers: %s", self.count, [p.pid for p in self.processes])

    def _supervise(self) -> None:
        while True:
            # Reap before waiting: reading a process's exitcode reaps it, and a worker reaped
            # unseen would never wake the wait below again.
            self._reap()
            self._forward()
            running = [p.sentinel for p in self.processes if p.pid not in self.exited]
            if not running:
                return
            for ready in wait([self.wakeup_read, *self.ready, *running]):
                if ready == self.wakeup_read:
                    os.read(self.wakeup_read, 64)
                elif ready in self.ready:
                    self._became_ready(ready)

    def _became_ready(self, connection: Connection) -> None:
        process = self.ready.pop(connection)
        try:
            connection.recv()
        except EOFError:
            pass  # it exited before it was ready: _reap sees it
        else:
            assert process.pid is not None
            self.forwarded[process.pid] = 0
            if not self.ready:
                logger.info("all %d workers ready", self.count)
        connection.close()

    def _reap(self) -> None:
        for process in self.processes:
            if process.exitcode is None or process.pid in self.exited:
                continue
            assert process.pid is not None
            self.exited.add(process.pid)
            self.forwarded.pop(process.pid, None)
            if self.signals == 0:
                logger.error("worker %s exited (%s): stopping", process.pid, process.exitcode)
                self.failed = True
                self.signals = 1

    def _forward(self) -> None:
        for pid, sent in self.forwarded.items():
            for _ in range(sent, min(self.signals, 2)):
                os.kill(pid, signal.SIGTERM)
            self.forwarded[pid] = max(sent, min(self.signals, 2))


def _worker_main(spec: _Worker, sockets: Any, ready: Connection) -> None:
    """A worker process: serve the app on the inherited sockets (``None``: on sockets of
    its own, ``SO_REUSEPORT``) until drained."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent passes Ctrl-C on as SIGTERM
    if spec.log_level is not None:
        logging.basicConfig(
            level=spec.log_level.upper(),
            format=f"%(levelname)s [{os.getpid()}] %(name)s: %(message)s",
        )
    app = with_proxy_headers(
        load_app(spec.target, factory=spec.factory), spec.proxy_headers, spec.proxy_trusted_hops
    )
    if sockets is None:
        sockets = listening_sockets(spec.config, spec.send_timeout)
    anyio.run(
        _serve_worker,
        *(app, spec, sockets, ready),
        backend=spec.backend,
        backend_options=backend_options(spec.backend),
    )


async def _serve_worker(app: Any, spec: _Worker, sockets: Any, ready: Connection) -> None:
    token = _run_token_for_server()
    async with anyio.create_task_group() as group:
        # The worker's own SIGTERM watcher (first: drain; second: cancel all, stop now), so
        # that it can outlive hypercorn: see _serve_then_mask.
        await group.start(_watch_signals, token, group.cancel_scope, (signal.SIGTERM,))
        await group.start(_serve_then_mask, app, spec, sockets, token, group.cancel_scope)
        ready.send(os.getpid())
        ready.close()


async def _serve_then_mask(
    app: Any,
    spec: _Worker,
    sockets: Any,
    token: ShutdownToken,
    done: anyio.CancelScope,
    *,
    task_status: anyio.abc.TaskStatus[list[str]],
) -> None:
    await serve_sockets(
        app,
        spec.config,
        sockets,
        token,
        shutdown_grace_period=spec.shutdown_grace_period,
        signals=(),
        task_status=task_status,
    )
    # Drained and stopped. The parent's second SIGTERM may still come while this process
    # exits, and once the watcher is gone (asyncio restores SIG_DFL, not the previous
    # handler) it would kill it: keep it pending instead, never delivered.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    done.cancel()
