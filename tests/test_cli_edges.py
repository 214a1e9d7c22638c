"""The command lines' and runner's edges that no other test reached (found by coverage).

``python -m trio_sse.client URL | head -1`` stops quietly when its reader goes away;
``python -m trio_sse client ...`` exits with the delegated command's status; ``serve`` names a
malformed app target; ``run``/``serve`` check their arguments before starting anything.
Servers are real (hypercorn in-process, on 127.0.0.1); the command lines run as subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys

import anyio
import anyio.to_thread
import pytest
from starlette.applications import Starlette

import trio_sse

from ._backends import requires_trio
from .live import REPO, free_port, serving, subprocess_env
from .servers.client_app import make_app

pytestmark = pytest.mark.anyio


async def run_python(*args: str) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(30):
        return await anyio.run_process(
            [sys.executable, *args], check=False, env=subprocess_env(), cwd=REPO
        )


async def test_the_client_stops_quietly_when_its_reader_goes_away() -> None:
    # As in `python -m trio_sse.client URL | head -1`: the pipe closes while events keep
    # coming. A pipe of our own (not the backend's stream wrapper) so that closing the read
    # end really closes it, under trio and asyncio alike.
    read_end, write_end = os.pipe()
    async with serving(make_app()) as url:
        with anyio.fail_after(30):
            try:
                async with await anyio.open_process(
                    [sys.executable, "-m", "trio_sse.client", f"{url}/stream?interval=0.02"],
                    stdout=write_end,
                    env=subprocess_env(),
                    cwd=REPO,
                ) as process:
                    os.close(write_end)
                    write_end = -1
                    assert process.stderr is not None
                    output = b""
                    while b"\n" not in output:
                        output += await anyio.to_thread.run_sync(os.read, read_end, 4096)
                    os.close(read_end)  # the reader is gone
                    read_end = -1
                    returncode = await process.wait()
                    errors = b"".join([chunk async for chunk in process.stderr])
            finally:
                for fd in (read_end, write_end):
                    if fd >= 0:
                        os.close(fd)
    assert output.startswith(b'[1] message: {"n": 1')
    assert (returncode, errors) == (0, b"")


async def test_the_delegated_client_command_exits_with_its_status() -> None:
    url = f"http://127.0.0.1:{free_port()}/stream"  # nothing listens there
    result = await run_python("-m", "trio_sse", "client", url, "--no-reconnect")
    assert result.returncode == 1
    assert result.stderr.startswith(b"error: ")
    assert result.stdout == b""


@requires_trio  # serve needs the serve extra (hypercorn and trio) before it reads the target
async def test_serve_names_a_malformed_app_target() -> None:
    result = await run_python("-m", "trio_sse", "serve", "no_colon_here")
    assert result.returncode == 1
    assert result.stderr == b"error: expected module:attribute, got 'no_colon_here'\n"


def test_run_refuses_an_unknown_backend() -> None:
    with pytest.raises(ValueError, match=r"^backend must be .*'trio'.*'asyncio'.*got 'curio'"):
        trio_sse.run(Starlette(), backend="curio")  # type: ignore[arg-type]


async def test_serve_refuses_a_negative_grace_period_before_binding() -> None:
    with anyio.fail_after(5), pytest.raises(ValueError, match="shutdown_grace_period must be >= 0"):
        await trio_sse.serve(Starlette(), port=free_port(), shutdown_grace_period=-1)
