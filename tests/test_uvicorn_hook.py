"""uvicorn's signals chained to a run token (``trio_sse._uvicorn``), with uvicorn's real Server.

uvicorn's handlers are installed by uvicorn itself (``Server.capture_signals``, what
``Server.serve`` wraps the run in), so these tests chain exactly what a uvicorn run installs.
The last test runs a real uvicorn process whose app chains explicitly from its lifespan.
"""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectSendStream

import trio_sse
import trio_sse._shutdown as shutdown_module
import trio_sse._uvicorn as uvicorn_module
from trio_sse import (
    EventSourceResponse,
    ServerSentEvent,
    ShutdownToken,
    chain_uvicorn_signals,
    current_shutdown_token,
    default_shutdown_token,
    set_uvicorn_chaining,
)
from trio_sse.testing import open_event_stream

from .helpers import app_for
from .processes import REPO, child_env, free_port, wait_accepting
from .test_graceful_shutdown import Streams, make_client

Send = MemoryObjectSendStream[Any]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[ShutdownToken]:
    """A process token, no run token, nothing chained, chaining on; all restored after."""
    process_token = ShutdownToken()
    monkeypatch.setattr(shutdown_module, "_default_token", process_token)
    monkeypatch.setattr(shutdown_module, "_run_token", None)
    monkeypatch.setattr(uvicorn_module, "_chained", None)
    monkeypatch.setattr(uvicorn_module, "_automatic", True)
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    try:
        yield process_token
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _ignore(signum: int, frame: object) -> None:
    """What uvicorn restores when its run ends, and re-raises the signals it caught into."""


@contextmanager
def uvicorn_run() -> Iterator[Any]:
    """A uvicorn Server with its signal handlers installed, as during ``Server.serve``."""
    import uvicorn

    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        raise AssertionError("not served")

    server = uvicorn.Server(uvicorn.Config(app))
    for signum in SIGNALS:
        signal.signal(signum, _ignore)
    with server.capture_signals():
        yield server


def test_a_run_gets_a_child_of_the_process_token(fresh_state: ShutdownToken) -> None:
    process_token = fresh_state
    with uvicorn_run() as server:
        token = chain_uvicorn_signals()
        assert token is not None
        assert token is not process_token
        assert default_shutdown_token() is token
        signal.raise_signal(signal.SIGTERM)
        assert token.triggered
        assert token.reason == signal.SIGTERM
        assert server.should_exit  # uvicorn's own handler still ran
    # The process token is neither triggered nor replaced; triggering it would end the run's.
    assert not process_token.triggered
    assert shutdown_module._default_token is process_token
    assert token._parent is process_token


def test_chaining_is_idempotent_and_covers_sigint() -> None:
    with uvicorn_run() as server:
        token = chain_uvicorn_signals()
        chained = signal.getsignal(signal.SIGTERM)
        assert isinstance(chained, uvicorn_module._ChainedHandler)
        assert chain_uvicorn_signals() is token
        assert signal.getsignal(signal.SIGTERM) is chained  # not chained twice
        sigint = signal.getsignal(signal.SIGINT)
        assert isinstance(sigint, uvicorn_module._ChainedHandler)
        assert sigint.original == server.handle_exit
        signal.raise_signal(signal.SIGINT)
        assert token is not None
        assert token.reason == signal.SIGINT
    # uvicorn restored what it found: the chain went with its handlers.
    assert signal.getsignal(signal.SIGTERM) is _ignore


def test_a_later_run_gets_a_fresh_token(fresh_state: ShutdownToken) -> None:
    with uvicorn_run():
        first = chain_uvicorn_signals()
        signal.raise_signal(signal.SIGTERM)
    with uvicorn_run():
        second = chain_uvicorn_signals()
        assert second is not None
        assert second is not first
        assert not second.triggered
        assert default_shutdown_token() is second
        assert second._parent is fresh_state


def test_triggering_the_process_token_ends_the_run_too(fresh_state: ShutdownToken) -> None:
    with uvicorn_run():
        token = chain_uvicorn_signals()
        fresh_state.trigger("by hand")
        assert token is not None
        assert token.triggered
        assert token.reason == "by hand"


def test_other_handlers_are_left_alone(fresh_state: ShutdownToken) -> None:
    def mine(signum: int, frame: object) -> None:  # pragma: no cover
        pass

    signal.signal(signal.SIGTERM, mine)
    assert chain_uvicorn_signals() is None
    assert signal.getsignal(signal.SIGTERM) is mine
    assert default_shutdown_token() is fresh_state


class _NotUvicorn:
    def handle_exit(self, signum: int, frame: object) -> None:  # pragma: no cover
        pass


class _Unreadable:
    """A callable whose attributes raise: ``getattr(handler, name, default)`` does not help."""

    def __call__(self, signum: int, frame: object) -> None:  # pragma: no cover
        pass

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name} here")


# What signal.getsignal may return besides uvicorn's handler (None: see the next test).
NOT_UVICORN: dict[str, Any] = {
    "SIG_DFL": signal.SIG_DFL,
    "SIG_IGN": signal.SIG_IGN,
    "C function": signal.default_int_handler,
    "function": _ignore,
    "other handle_exit": _NotUvicorn().handle_exit,
    "unreadable": _Unreadable(),
}


@pytest.mark.parametrize("handler", NOT_UVICORN.values(), ids=NOT_UVICORN.keys())
def test_any_other_sigterm_handler_is_left_alone(handler: Any, fresh_state: ShutdownToken) -> None:
    import uvicorn  # noqa: F401 - loaded, as in a process uvicorn runs

    signal.signal(signal.SIGTERM, handler)
    assert chain_uvicorn_signals() is None
    assert signal.getsignal(signal.SIGTERM) is handler
    assert default_shutdown_token() is fresh_state


def test_a_handler_not_installed_from_python_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, fresh_state: ShutdownToken
) -> None:
    # getsignal() says None for a handler installed by C code: the SIGTERM case...
    getsignal = signal.getsignal
    with uvicorn_run() as server:
        monkeypatch.setattr(signal, "getsignal", lambda signum: None)
        assert chain_uvicorn_signals() is None
        # ... and the SIGINT case, with uvicorn's handler on SIGTERM: only SIGTERM is chained.
        monkeypatch.setattr(
            signal,
            "getsignal",
            lambda signum: None if signum == signal.SIGINT else getsignal(signum),
        )
        token = chain_uvicorn_signals()
        monkeypatch.setattr(signal, "getsignal", getsignal)
        assert token is not None
        assert isinstance(signal.getsignal(signal.SIGTERM), uvicorn_module._ChainedHandler)
        assert signal.getsignal(signal.SIGINT) == server.handle_exit


def test_sigterm_is_chained_alone_when_sigint_is_not_uvicorns() -> None:
    with uvicorn_run() as server:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        token = chain_uvicorn_signals()
        assert token is not None
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.raise_signal(signal.SIGTERM)
        assert token.reason == signal.SIGTERM
        assert server.should_exit


def test_without_uvicorn_loaded_no_handler_is_even_looked_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def getsignal(signum: int) -> Any:
        raise AssertionError("looked at a handler")

    monkeypatch.delitem(sys.modules, "uvicorn", raising=False)
    monkeypatch.setattr(signal, "getsignal", getsignal)
    assert chain_uvicorn_signals() is None


def test_nothing_is_chained_outside_the_main_thread() -> None:
    results: list[ShutdownToken | None] = []
    with uvicorn_run() as server:
        thread = threading.Thread(target=lambda: results.append(chain_uvicorn_signals()))
        thread.start()
        thread.join(10)
        assert results == [None]
        assert signal.getsignal(signal.SIGTERM) == server.handle_exit
        # Once chained (from the main thread), other threads see the run's token too.
        token = chain_uvicorn_signals()
        thread = threading.Thread(target=lambda: results.append(chain_uvicorn_signals()))
        thread.start()
        thread.join(10)
        assert results == [None, token]


def test_set_uvicorn_chaining_takes_a_bool() -> None:
    with pytest.raises(TypeError, match="enabled must be a bool, got 0"):
        set_uvicorn_chaining(0)  # type: ignore[arg-type]


# -- at the response's edge --------------------------------------------------------------------


async def up_until_shutdown(send: Send) -> None:
    async with send:
        await send.send(ServerSentEvent("up"))
        await current_shutdown_token().wait()


def streaming_app() -> Any:
    return app_for(lambda: EventSourceResponse(up_until_shutdown, farewell=ServerSentEvent("bye")))


@pytest.mark.anyio
async def test_a_response_chains_by_itself_and_drains_on_the_signal() -> None:
    with uvicorn_run(), anyio.fail_after(5):
        async with open_event_stream(streaming_app()) as stream:
            assert [event.data for event in await stream.read_events(1)] == ["up"]
            token = signal.getsignal(signal.SIGTERM).token  # type: ignore[union-attr]
            assert default_shutdown_token() is token
            signal.raise_signal(signal.SIGTERM)
            assert [event.data async for event in stream] == ["bye"]
        assert stream.complete


@pytest.mark.anyio
async def test_turned_off_a_response_does_not_chain(fresh_state: ShutdownToken) -> None:
    set_uvicorn_chaining(False)
    with uvicorn_run() as server, anyio.fail_after(5):
        async with open_event_stream(streaming_app()) as stream:
            await stream.read_events(1)
            assert signal.getsignal(signal.SIGTERM) == server.handle_exit
            assert default_shutdown_token() is fresh_state
        # An explicit call still chains.
        assert chain_uvicorn_signals() is not None
        assert isinstance(signal.getsignal(signal.SIGTERM), uvicorn_module._ChainedHandler)


def test_the_public_names_are_exported() -> None:
    assert trio_sse.chain_uvicorn_signals is chain_uvicorn_signals
    assert trio_sse.set_uvicorn_chaining is set_uvicorn_chaining


# -- a real uvicorn process ----------------------------------------------------------------------


def launch_uvicorn(port: int, record: Path, log_path: Path) -> subprocess.Popen[bytes]:
    command = [
        *(sys.executable, "-m", "uvicorn", "tests.servers.uvicorn_hook_app:app"),
        *("--host", "127.0.0.1", "--port", str(port)),
    ]
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command,
            cwd=REPO,
            env=child_env({"SSE_COUNT_FILE": str(record)}),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


@pytest.mark.slow
@pytest.mark.anyio
async def test_uvicorn_process_chained_from_the_lifespan(tmp_path: Path) -> None:
    """Automatic chaining off; the app chains in its lifespan; SIGTERM drains every stream."""
    port = free_port()
    record = tmp_path / "record.txt"
    log_path = tmp_path / "uvicorn.log"
    process = launch_uvicorn(port, record, log_path)
    try:
        await wait_accepting(port, process, log_path.read_text, 15)
        async with make_client() as client:
            streams = Streams(client, f"http://127.0.0.1:{port}/sse", 5)
            with anyio.fail_after(20):
                async with anyio.create_task_group() as group:
                    streams.start(group)
                    await streams.all_started.wait()
                    process.send_signal(signal.SIGTERM)
                    code = await anyio.to_thread.run_sync(functools.partial(process.wait, 10))
        streams.assert_farewell()
        assert code in (0, -signal.SIGTERM), log_path.read_text()
        lines = record.read_text().splitlines()
        assert lines == ["lifespan chained: True"] + ["same token"] * 5, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(5)
