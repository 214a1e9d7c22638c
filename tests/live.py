"""Real servers for the client, conformance and browser tests: in-process and as subprocesses.

All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

import trio_sse
from trio_sse import ShutdownToken

from .processes import REPO, child_env, free_port

# Re-exported for the client tests.
subprocess_env = child_env
__all__ = ["REPO", "free_port", "serving", "start_server_process", "subprocess_env"]


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve *app* with hypercorn in the current loop (trio or asyncio); yield its base URL.

    Leaving stops the server at once by cancellation (streams still end their bodies).
    """
    token = ShutdownToken()
    async with anyio.create_task_group() as group:
        urls = await group.start(
            partial(
                trio_sse.serve,
                app,
                host="127.0.0.1",
                port=0,
                handle_signals=False,
                shutdown=token,
                shutdown_grace_period=0.5,
            )
        )
        try:
            yield str(urls[0])
        finally:
            # A graceful stop (hypercorn waits up to 1 s for open connections), then a hard one.
            token.trigger("test over")
            group.cancel_scope.deadline = anyio.current_time() + 2


async def start_server_process(
    target: str,
    port: int,
    *,
    backend: str = "trio",
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> anyio.abc.Process:
    """``python -m trio_sse serve TARGET --port PORT`` in its own session (process group);
    *env*: variables added to its environment."""
    command = [
        sys.executable,
        "-m",
        "trio_sse",
        "serve",
        target,
        "--port",
        str(port),
        "--backend",
        backend,
        "--log-level",
        "warning",
    ]
    output = subprocess.DEVNULL if log is None else log.open("ab")
    try:
        return await anyio.open_process(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            cwd=REPO,
            env=child_env(env),
            start_new_session=True,
        )
    finally:
        if log is not None and not isinstance(output, int):
            output.close()


async def kill_process_group(process: anyio.abc.Process) -> None:
    """SIGKILL the process's whole group (it was started in a new session) and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    with anyio.move_on_after(10, shield=True):
        await process.wait()
    await process.aclose()
