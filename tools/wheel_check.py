"""The wheel as a user gets it: build it from a clean clone, install it, run the demo from it.

1. ``git clone`` this repository's HEAD into a temporary folder (what is committed, nothing
   else) and build a wheel there with pip;
2. check the wheel's contents: the demo page, ``py.typed``, the LICENSE, no tests;
3. into an empty venv, install the wheel alone: only the core's dependencies arrive (anyio,
   starlette and theirs; no trio, hypercorn or httpx) and ``import trio_sse`` works;
4. into another empty venv, install ``wheel[demo]``, start ``trio-sse demo`` from a folder
   outside the checkout, fetch ``/`` and the first clock event, stop it with SIGINT.

Usage: ``python tools/wheel_check.py [--keep]`` (``--keep``: leave the temporary folder).
Exit status 0 when every check passed. Needs git, and pip's access to the package index.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What the core may bring besides trio_sse itself (anyio's and starlette's own dependencies).
CORE_ALLOWED = {"trio-sse", "anyio", "starlette", "idna", "typing-extensions", "sniffio"}
NOT_IN_CORE = {"trio", "hypercorn", "httpx", "httpx2", "httpcore", "outcome"}


def _environment() -> dict[str, str]:
    """This process's environment less what would let a child import another trio_sse."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _step(text: str) -> None:
    print(f"wheel check: {text}", flush=True)


def _run(*command: str | Path, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        env=_environment(),
    )
    if result.returncode != 0:
        raise SystemExit(
            f"wheel check failed: {' '.join(map(str, command))} exited {result.returncode}\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result.stdout


def build(work: Path) -> Path:
    clone = work / "clone"
    _run("git", "clone", "--quiet", "--no-hardlinks", ROOT, clone)
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", work / "dist", clone)
    (wheel,) = (work / "dist").glob("trio_sse-*.whl")
    _step(f"built {wheel.name} from a clean clone")
    return wheel


def check_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("trio_sse/__init__.py", "trio_sse/py.typed", "trio_sse/demo/index.html"):
        if needed not in names:
            raise SystemExit(f"wheel check failed: {needed} is not in {wheel.name}")
    if not any(name.endswith(".dist-info/licenses/LICENSE") for name in names):
        raise SystemExit(f"wheel check failed: no LICENSE in {wheel.name}")
    strays = sorted({name.split("/")[0] for name in names} - {"trio_sse"})
    if [name for name in strays if not name.endswith(".dist-info")]:
        raise SystemExit(f"wheel check failed: {wheel.name} holds more than trio_sse: {strays}")
    _step(f"contents ok ({len(names)} files)")


def venv(path: Path) -> Path:
    _run(sys.executable, "-m", "venv", path)
    return path / "bin" / "python"


def check_core(work: Path, wheel: Path) -> None:
    python = venv(work / "core")
    _run(python, "-m", "pip", "install", "--quiet", wheel)
    listed = json.loads(_run(python, "-m", "pip", "list", "--format", "json", "--exclude-editable"))
    names = {entry["name"].lower().replace("_", "-") for entry in listed} - {"pip", "setuptools"}
    if names & NOT_IN_CORE or not names <= CORE_ALLOWED:
        raise SystemExit(f"wheel check failed: the core installed {sorted(names)}")
    where = _run(
        python,
        "-c",
        "import trio_sse, trio_sse.testing, trio_sse.demo; print(trio_sse.__file__)",
        cwd=work,
    ).strip()
    if not Path(where).is_relative_to(work / "core"):
        raise SystemExit(f"wheel check failed: trio_sse was imported from {where}, not the venv")
    _step(f"core install: {len(names) - 1} packages besides trio_sse ({', '.join(sorted(names))})")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str, *, first_line_of_stream: bool = False) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        if response.status != 200:
            raise SystemExit(f"wheel check failed: GET {url} answered {response.status}")
        if first_line_of_stream:
            return str(response.readline().decode())
        return str(response.read().decode())


def check_demo(work: Path, wheel: Path) -> None:
    python = venv(work / "demo")
    _run(python, "-m", "pip", "install", "--quiet", f"{wheel}[demo]")
    port = _free_port()
    log = work / "demo.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [python.parent / "trio-sse", "demo", "--port", str(port)],
            cwd=work,  # not the checkout: trio_sse must come from the wheel
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            env=_environment(),
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        page = None
        while page is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"wheel check failed: the demo did not start\n{log.read_text()}")
            try:
                page = _get(f"http://127.0.0.1:{port}/")
            except OSError:
                time.sleep(0.1)
        if "EventSource" not in page:
            raise SystemExit("wheel check failed: / is not the demo page")
        line = _get(f"http://127.0.0.1:{port}/clock", first_line_of_stream=True)
        if not line.startswith(("event:", "id:", "data:", "retry:", ":")):
            raise SystemExit(f"wheel check failed: /clock sent {line!r}")
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=30)
        if status != 0:
            raise SystemExit(f"wheel check failed: the demo exited {status}\n{log.read_text()}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    _step("demo from the wheel served / and /clock under trio, and stopped on SIGINT")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="trio_sse-wheel-"))
    try:
        wheel = build(work)
        check_contents(wheel)
        check_core(work, wheel)
        check_demo(work, wheel)
    finally:
        if args.keep:
            _step(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    _step("passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
