"""What installing trio_sse with fewer extras means: the core imports alone, and every part
whose extra is missing says which one to install.

Each check runs in a fresh interpreter whose first meta-path finder refuses some packages
(trio, hypercorn, httpx, httpx2), as if they were not installed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import trio_sse

from ._backends import requires_trio
from .processes import REPO, child_env, free_port


def _load_tool(name: str) -> Any:
    """A script of tools/ (not a package) as a module."""
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lowest_constraints = _load_tool("lowest_constraints")

BLOCKER = """
import sys

class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
        return None

sys.meta_path.insert(0, _Blocker())
"""

OPTIONAL = ("trio", "hypercorn", "httpx", "httpx2", "coredis", "opentelemetry")


def run_blocked(
    code: str, *blocked: str, argv: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run *code* in a fresh interpreter in which *blocked* cannot be imported."""
    program = BLOCKER.format(blocked=set(blocked)) + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", program, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=child_env(),
        check=False,
    )


def run_module_blocked(
    module: str, *args: str, blocked: tuple[str, ...]
) -> subprocess.CompletedProcess[str]:
    """``python -m MODULE ARGS`` with *blocked* not importable."""
    code = f"""
        import runpy
        sys.argv[0] = {module!r}
        runpy.run_module({module!r}, run_name="__main__", alter_sys=True)
    """
    return run_blocked(code, *blocked, argv=args)


def test_the_blocker_blocks() -> None:
    result = run_blocked("import trio", "trio")
    assert result.returncode == 1
    assert "No module named 'trio' (blocked)" in result.stderr


def test_the_core_imports_without_any_extra() -> None:
    code = """
        import trio_sse, trio_sse.testing, trio_sse.demo, trio_sse.backends
        from trio_sse import EventSourceResponse, Broadcaster, ServerSentEvent
        print("loaded:", sorted({name.partition(".")[0] for name in sys.modules} & set(sys.argv)))
    """
    result = run_blocked(code, *OPTIONAL, argv=OPTIONAL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "loaded: []"


def test_a_response_streams_under_asyncio_without_trio() -> None:
    code = """
        import anyio
        from starlette.applications import Starlette
        from starlette.routing import Route
        from trio_sse import EventSourceResponse
        from trio_sse.testing import open_event_stream

        async def events():
            for number in range(3):
                yield {"data": number}

        app = Starlette(routes=[Route("/", lambda request: EventSourceResponse(events()))])

        async def main():
            with anyio.fail_after(10):
                async with open_event_stream(app, "/") as stream:
                    print([event.data async for event in stream])

        anyio.run(main, backend="asyncio")
    """
    result = run_blocked(code, *OPTIONAL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['0', '1', '2']"


@pytest.mark.parametrize(
    ("blocked", "backend", "expected"),
    [
        (
            ("hypercorn",),
            "asyncio",
            "trio_sse.serve needs hypercorn: pip install 'trio_sse[serve]'",
        ),
        (
            ("trio",),
            "trio",
            "trio_sse.serve (backend 'trio') needs trio: pip install 'trio_sse[serve]'",
        ),
    ],
)
def test_run_names_the_serve_extra(blocked: tuple[str, ...], backend: str, expected: str) -> None:
    code = f"""
        import trio_sse
        from trio_sse._extras import MissingExtraError
        try:
            trio_sse.run(lambda scope, receive, send: None, backend={backend!r}, port=0)
        except ImportError as error:
            assert isinstance(error, MissingExtraError), type(error)
            print(error)
    """
    result = run_blocked(code, *blocked)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


@requires_trio  # the default backend: without trio, trio is what the message names
def test_serve_command_names_the_extra() -> None:
    result = run_module_blocked(
        "trio_sse", "serve", "tests.servers.sse_app:app", blocked=("hypercorn",)
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "error: trio_sse.serve needs hypercorn: pip install 'trio_sse[serve]'"
    )


# Without trio installed, the demo's default backend names trio whatever is blocked.
@pytest.mark.parametrize("blocked", [pytest.param("hypercorn", marks=requires_trio), "trio"])
def test_demo_names_the_demo_extra_before_its_banner(blocked: str) -> None:
    result = run_module_blocked("trio_sse.demo", "--port", "0", blocked=(blocked,))
    assert result.returncode == 1
    assert (
        result.stdout == ""
    )  # no "trio_sse demo on http://..." banner for a server that won't run
    assert f"needs {blocked}: pip install 'trio_sse[demo]'" in result.stderr


def test_fastapi_module_names_the_fastapi_extra() -> None:
    result = run_blocked("import trio_sse.fastapi", "fastapi")
    assert result.returncode == 1
    assert "trio_sse.fastapi needs fastapi: pip install 'trio_sse[fastapi]'" in result.stderr


def test_the_metrics_module_names_the_otel_extra() -> None:
    result = run_blocked("import trio_sse.metrics", "opentelemetry")
    assert result.returncode == 1
    assert "trio_sse.metrics needs opentelemetry: pip install 'trio_sse[otel]'" in result.stderr


def test_the_redis_backend_names_the_redis_extra() -> None:
    # The backends module imports without coredis; the backend says what to install when made.
    code = """
        from trio_sse.backends import RedisBackend
        RedisBackend("redis://127.0.0.1:6379/0")
    """
    result = run_blocked(code, "coredis")
    assert result.returncode == 1
    assert (
        "trio_sse.backends.RedisBackend needs coredis: pip install 'trio_sse[redis]'"
        in result.stderr
    )


def test_a_fastapi_app_is_not_needed_by_the_core() -> None:
    # A Starlette app's stream never imports FastAPI (nor Pydantic), even with a route in the
    # scope: trio_sse only looks for FastAPI's routes when FastAPI is loaded.
    code = """
        from starlette.applications import Starlette
        from starlette.routing import Route
        from starlette.testclient import TestClient
        from trio_sse import EventSourceResponse

        async def events(request):
            return EventSourceResponse([{"data": "a", "event": "x"}])

        with TestClient(Starlette(routes=[Route("/", events)])) as client:
            body = client.get("/").text
        assert body == "event: x\\r\\ndata: a\\r\\n\\r\\n", repr(body)
        assert "fastapi" not in sys.modules and "pydantic" not in sys.modules
    """
    result = run_blocked(code, "fastapi", "pydantic")
    assert result.returncode == 0, result.stderr


def test_the_client_names_both_extras() -> None:
    expected = (
        "trio_sse.client needs httpx or httpx2:"
        " pip install 'trio_sse[client]' or pip install 'trio_sse[httpx2]'"
    )
    result = run_blocked("import trio_sse.client", "httpx", "httpx2")
    assert result.returncode == 1
    assert f"ImportError: {expected}" in result.stderr.replace("MissingExtraError", "ImportError")
    command = run_module_blocked(
        "trio_sse", "client", "http://127.0.0.1:9/", blocked=("httpx", "httpx2")
    )
    assert command.returncode == 1
    assert command.stderr.strip() == f"error: {expected}"


def test_the_client_works_on_httpx2_alone_under_asyncio() -> None:
    pytest.importorskip("httpx2", reason="httpx2 is not installed")
    code = """
        import trio_sse.client
        from trio_sse.client._http import default_library
        print(default_library().module.__name__)
    """
    result = run_blocked(code, "httpx", "trio")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "httpx2"
    # The command line: on httpx2, under asyncio, its network errors are reported as such.
    url = f"http://127.0.0.1:{free_port()}/"
    command = run_module_blocked(
        "trio_sse.client", url, "--no-reconnect", blocked=("httpx", "trio")
    )
    assert command.returncode == 1, command.stderr
    assert command.stderr.startswith(f"error: could not connect to {url}: ConnectError")


# -- metadata ------------------------------------------------------------------------------


def test_one_version_and_the_console_script() -> None:
    try:
        distribution = importlib.metadata.distribution("trio_sse")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("trio_sse is not installed (only on PYTHONPATH)")
    assert distribution.version == trio_sse.__version__
    (script,) = [entry for entry in distribution.entry_points if entry.name == "trio-sse"]
    assert (script.group, script.value) == ("console_scripts", "trio_sse.__main__:main")
    requires = distribution.requires or []
    core = [requirement for requirement in requires if "extra ==" not in requirement]
    names = sorted(re.split(r"[\s<>=!~\[;,]", requirement)[0] for requirement in core)
    assert names == ["anyio", "starlette"]


def test_the_lowest_constraints_pin_every_runtime_lower_bound() -> None:
    import tomllib

    with (REPO / "pyproject.toml").open("rb") as file:
        pyproject = tomllib.load(file)
    pins = lowest_constraints.lowest(pyproject)
    assert pins["trio"] == ("0.32", None)
    assert pins["starlette"] == ("0.46", None)
    assert {"anyio", "hypercorn", "httpx", "httpx2"} <= set(pins)
    assert "pytest" not in pins  # the test tools are not the project's bounds
    conflicting = {
        "project": {
            "name": "x",
            "dependencies": ["trio>=0.29"],
            "optional-dependencies": {"serve": ["trio>=0.30; python_version >= '3.11'"]},
        }
    }
    with pytest.raises(SystemExit, match=r"trio has two lower bounds: 0\.29 and 0\.30"):
        lowest_constraints.lowest(conflicting)


# -- the pytest plugin, found through its entry point ---------------------------------------

PLUGIN_USER_TEST = """
import anyio
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from trio_sse import EventSourceResponse


async def numbers(request):
    async def producer(send):
        async with send:
            for number in range(3):
                await send.send(number)

    return EventSourceResponse(producer)


@pytest.fixture
def sse_app():
    return Starlette(routes=[Route("/", numbers)])


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
async def test_streams(sse_stream):
    with anyio.fail_after(5):
        async with sse_stream("/") as stream:
            assert [event.data async for event in stream] == ["0", "1", "2"]
"""


def run_child_pytest(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """pytest in *tmp_path*, a project with one test module and no conftest or pytest config."""
    (tmp_path / "test_user.py").write_text(PLUGIN_USER_TEST)
    env = {k: v for k, v in child_env().items() if k != "PYTEST_DISABLE_PLUGIN_AUTOLOAD"}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *options]
    return subprocess.run(
        [*command, "test_user.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _plugin_entry_point() -> importlib.metadata.EntryPoint:
    try:
        distribution = importlib.metadata.distribution("trio_sse")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("trio_sse is not installed (only on PYTHONPATH)")
    plugins = [entry for entry in distribution.entry_points if entry.group == "pytest11"]
    assert plugins, "no pytest11 entry point: reinstall trio_sse (pip install -e .)"
    (plugin,) = plugins
    return plugin


def test_the_plugin_is_an_entry_point_whose_fixtures_a_project_gets_by_installing(
    tmp_path: Path,
) -> None:
    plugin = _plugin_entry_point()
    assert (plugin.name, plugin.value) == ("trio_sse", "trio_sse.testing._plugin")
    result = run_child_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout, result.stdout


def test_the_plugin_can_be_turned_off_by_its_entry_point_name(tmp_path: Path) -> None:
    _plugin_entry_point()
    result = run_child_pytest(tmp_path, "-p", "no:trio_sse")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "fixture 'sse_stream' not found" in result.stdout, result.stdout
