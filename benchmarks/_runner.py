"""``python -m benchmarks``: every scenario, side by side, interleaved, into one report.

Each contestant (trio_sse, sse-starlette, the raw ASGI floor) is served by its own server
process and driven by the lean client (``benchmarks.client``) in another process. Within a
scenario the contestants take turns (A B C A B C ...), so that a machine that gets busier
or quieter during the run affects them alike; the report gives medians and the ratios of
each round's figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ._node import node_ready, node_versions
from ._redis import RedisForBench, redis_server
from ._report import render
from ._servers import ROOT, Server, running
from ._targets import SERVERS, target_rows
from .client import cpu_seconds

__all__ = ["SCENARIOS", "Settings", "choose_scenarios", "main"]

SCENARIOS = ("encode", "throughput", "fanout", "idle", "idle10k", "publish", "shutdown", "redis")
MAIN_SERVERS = SERVERS  # the servers the targets are judged on (benchmarks._targets)

#: left out of a ``--quick`` run unless named in ``--scenarios`` (10,000 streams per server
#: process are not a smoke test: about 10-15 s per contestant and server)
NOT_QUICK = ("idle10k",)

#: idle scenario contestants: (name, app, subscription route); the trio_sse hub path
#: (``hub.subscribe`` streamed as is), the producer path (a producer function forwarding it)
IDLE_CONTESTANTS = (
    ("trio_sse", "trio_sse", "/subscribe"),
    ("trio_sse-producer", "trio_sse", "/subscribe-producer"),
    ("sse-starlette", "sse-starlette", "/subscribe"),
    ("raw", "raw", "/subscribe"),
)

#: the idle10k scenario's contestants: those the "held at 10,000 streams" targets compare
IDLE10K_NAMES = ("trio_sse", "trio_sse-producer", "raw", "better-sse")
IDLE10K_STREAMS = 10_000

#: (server, app) pairs of the shutdown scenario: trio_sse on its own runner (both backends),
#: on uvicorn (its signal-chaining hook) and on plain hypercorn; sse-starlette where it runs.
SHUTDOWN_CASES = (
    ("trio_sse-serve-trio", "trio_sse"),
    ("trio_sse-serve-asyncio", "trio_sse"),
    ("uvicorn", "trio_sse"),
    ("hypercorn-asyncio", "trio_sse"),
    ("hypercorn-trio", "trio_sse"),
    ("uvicorn", "sse-starlette"),
    ("hypercorn-asyncio", "sse-starlette"),
    ("hypercorn-trio", "sse-starlette"),
)


@dataclass
class Settings:
    quick: bool
    reps: int
    servers: tuple[str, ...]
    throughput_events: int
    fanout_subscribers: int
    fanout_events: int
    fanout_rate: float
    idle_connections: int
    shutdown_streams: int
    publish_events: int
    grace: int
    payload: int = 32
    log: Path | None = None
    node: bool = True  # the Node.js reference rows (benchmarks/node/), when node is there

    @classmethod
    def make(cls, quick: bool, reps: int | None, servers: tuple[str, ...]) -> Settings:
        if quick:
            return cls(
                quick=True,
                reps=reps or 1,
                servers=servers,
                throughput_events=20_000,
                fanout_subscribers=200,
                fanout_events=10,
                fanout_rate=20,
                idle_connections=200,
                shutdown_streams=100,
                publish_events=50,
                grace=2,
            )
        return cls(
            quick=False,
            reps=reps or 3,
            servers=servers,
            throughput_events=100_000,
            fanout_subscribers=1000,
            fanout_events=50,
            fanout_rate=20,
            idle_connections=1000,
            shutdown_streams=500,
            publish_events=200,
            grace=2,
        )


@dataclass
class Results:
    settings: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    encode: dict[str, Any] = field(default_factory=dict)
    # scenario -> server -> contestant -> [one result per round]
    throughput: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    fanout: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    idle: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    idle10k: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    # loop (trio, asyncio) -> subscribers -> [one publish_latency row per round]
    publish: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    # the "Targets (issue 18)" rows (benchmarks._targets), filled in when the run ends
    targets: list[dict[str, Any]] = field(default_factory=list)
    shutdown: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    fanout_impl: str = ""
    redis: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    return env


def run_client(mode: str, limit: float, **options: object) -> dict[str, Any]:
    """Run ``python -m benchmarks.client MODE --option value ...`` and parse its JSON."""
    command = [sys.executable, "-m", "benchmarks.client", mode]
    for name, value in options.items():
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        command += [f"--{name.replace('_', '-')}", str(value)]
    completed = subprocess.run(
        command, cwd=ROOT, env=_env(), capture_output=True, timeout=limit, check=False
    )
    if completed.returncode != 0:
        return {"error": completed.stderr.decode(errors="replace")[-2000:]}
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


# -- scenarios ------------------------------------------------------------------------------


def scenario_encode(settings: Settings, results: Results) -> None:
    _log("encode: microbenchmark")
    command = [sys.executable, "-m", "benchmarks.encode", *(["--quick"] if settings.quick else [])]
    completed = subprocess.run(
        command, cwd=ROOT, env=_env(), capture_output=True, timeout=600, check=True
    )
    results.encode = json.loads(completed.stdout)


def _node_servers(settings: Settings) -> list[Server]:
    """The Node.js reference servers (raw node:http, better-sse), if the run has them."""
    if not settings.node:
        return []
    return [Server("node", app, log=settings.log) for app in ("node-raw", "better-sse")]


#: Node contestant -> (its server's app, throughput route, fan-out publish route, newline)
NODE_CONTESTANTS = {
    "node-raw": ("node-raw", "/stream", "/publish", "crlf"),
    "better-sse": ("better-sse", "/stream", "/publish", "lf"),
    "better-sse-batch": ("better-sse", "/stream-batch", "/publish?mode=batch", "lf"),
}


def _node_contestants(servers: list[Server], route: int) -> list[tuple[str, Server, str, str]]:
    """(name, server, route, newline) of each Node contestant; *route* 1: throughput, 2: fan-out."""
    by_app = {server.app: server for server in servers}
    return [
        (name, by_app[spec[0]], spec[route], spec[3])
        for name, spec in NODE_CONTESTANTS.items()
        if spec[0] in by_app
    ]


def scenario_throughput(settings: Settings, results: Results) -> None:
    n = settings.throughput_events
    for server_name in settings.servers:
        servers = [
            Server(server_name, app, log=settings.log)
            for app in ("trio_sse", "sse-starlette", "raw")
        ]
        node = _node_servers(settings)
        with running(servers + node):
            trio_sse, sse_starlette, raw = servers
            contestants = [
                ("trio_sse", trio_sse, "/stream", "crlf"),
                ("trio_sse-gen", trio_sse, "/stream-gen", "crlf"),
                ("sse-starlette", sse_starlette, "/stream", "crlf"),
                ("raw", raw, "/stream", "crlf"),
                *_node_contestants(node, 1),
            ]
            table = results.throughput.setdefault(server_name, {})
            for _name, server, path, newline in contestants:  # warm-up, not recorded
                run_client(
                    "throughput", 120, port=server.port, path=f"{path}?n=2000&size={settings.payload}",
                    expect=2000, pids=server.pids, newline=newline,
                )  # fmt: skip
            for round_number in range(settings.reps):
                for name, server, path, newline in contestants:
                    result = run_client(
                        "throughput", 300, port=server.port,
                        path=f"{path}?n={n}&size={settings.payload}", expect=n, pids=server.pids,
                        newline=newline,
                    )  # fmt: skip
                    table.setdefault(name, []).append(result)
                    _log(
                        f"throughput {server_name} {name} round {round_number + 1}: "
                        f"{result.get('rate', 0):,.0f} events/s"
                    )


def scenario_fanout(settings: Settings, results: Results) -> None:
    for server_name in settings.servers:
        servers = [
            Server(server_name, app, log=settings.log)
            for app in ("trio_sse", "sse-starlette", "raw")
        ]
        node = _node_servers(settings)
        with running(servers + node):
            results.fanout_impl = str(servers[0].stats.get("impl", "?"))
            contestants = [
                *((app, server, "/publish", "crlf") for app, server in zip(
                    ("trio_sse", "sse-starlette", "raw"), servers, strict=True)),
                *_node_contestants(node, 2),
            ]  # fmt: skip
            table = results.fanout.setdefault(server_name, {})
            for round_number in range(settings.reps):
                for app, server, publish_path, newline in contestants:
                    result = run_client(
                        "fanout", 300, port=server.port, subscribers=settings.fanout_subscribers,
                        events=settings.fanout_events, rate=settings.fanout_rate, pids=server.pids,
                        publish_path=publish_path, newline=newline,
                    )  # fmt: skip
                    table.setdefault(app, []).append(result)
                    _log(
                        f"fanout {server_name} {app} round {round_number + 1}: p99 "
                        f"{result.get('p99_ms', float('nan')):.1f} ms, "
                        f"{result.get('server_us_per_event', float('nan')):.1f} us/event"
                    )


def _idle_contestants(
    settings: Settings, names: tuple[str, ...] | None
) -> list[tuple[str, str, str]]:
    """(name, app, route) of each idle contestant, the Node ones too if the run has them;
    only those in *names* when given."""
    node = [(app, app, "/subscribe") for app in ("node-raw", "better-sse")] if settings.node else []
    every = [*IDLE_CONTESTANTS, *node]
    return [entry for entry in every if names is None or entry[0] in names]


def _idle_rounds(
    settings: Settings, results: Results, table: dict[str, list[dict[str, Any]]],
    server_name: str, connections: int, names: tuple[str, ...] | None = None,
) -> None:  # fmt: skip
    """The idle rounds of one server: a fresh server process per contestant and round."""
    limit = 60.0 + connections / 20
    for round_number in range(settings.reps):
        for name, app, route in _idle_contestants(settings, names):
            kind = "node" if app in ("node-raw", "better-sse") else server_name
            with running([Server(kind, app, log=settings.log)]) as (server,):
                if name == "trio_sse":
                    results.fanout_impl = str(server.stats.get("impl", "?"))
                result = run_client(
                    "idle", 2 * limit, port=server.port, connections=connections,
                    pids=server.pids, settle=1.0, timeout=limit, subscribe_path=route,
                )  # fmt: skip
            table.setdefault(name, []).append(result)
            _log(
                f"idle {connections:,} {server_name} {name} round {round_number + 1}: "
                f"{result.get('bytes_per_connection', float('nan')) / 1024:.1f} KiB/connection"
            )


def scenario_idle(settings: Settings, results: Results) -> None:
    for server_name in settings.servers:
        table = results.idle.setdefault(server_name, {})
        _idle_rounds(settings, results, table, server_name, settings.idle_connections)


def scenario_idle10k(settings: Settings, results: Results) -> None:
    """Idle memory held at 10,000 streams: one server process holds them, the client process
    opens them (each process has its own file-descriptor limit, raised to 20,000)."""
    for server_name in settings.servers:
        table = results.idle10k.setdefault(server_name, {})
        _idle_rounds(settings, results, table, server_name, IDLE10K_STREAMS, IDLE10K_NAMES)


def scenario_publish(settings: Settings, results: Results) -> None:
    """``benchmarks.publish_latency`` (in one process, no sockets), once per round."""
    command = [
        sys.executable, "-m", "benchmarks.publish_latency", "--subscribers", "0", "1000",
        "10000", "--events", str(settings.publish_events),
    ]  # fmt: skip
    for round_number in range(settings.reps):
        completed = subprocess.run(
            command, cwd=ROOT, env=_env(), capture_output=True, timeout=900, check=False
        )
        if completed.returncode != 0:
            _log(f"publish round {round_number + 1} failed: {completed.stderr.decode()[-500:]}")
            continue
        for row in json.loads(completed.stdout)["results"]:
            loop = results.publish.setdefault(row["backend"], {})
            loop.setdefault(str(row["subscribers"]), []).append(row)
            _log(
                f"publish {row['backend']} {row['subscribers']:,} round {round_number + 1}: "
                f"p50 {row['publish']['p50']:,.0f} µs, fan-out p50 {row['fan_out']['p50']:,.0f} µs"
            )


def scenario_shutdown(settings: Settings, results: Results) -> None:
    for round_number in range(settings.reps):
        for server_name, app in SHUTDOWN_CASES:
            server = Server(server_name, app, grace=settings.grace, log=settings.log)
            with running([server]):
                assert server.process is not None
                result = run_client(
                    "shutdown", 300, port=server.port, connections=settings.shutdown_streams,
                    path="/endless", main_pid=server.process.pid, grace=settings.grace,
                    timeout=max(30.0, settings.grace + 10.0),
                )  # fmt: skip
                code = server.wait_exit(timeout=settings.grace + 10)
                result["exit_code"] = code
            results.shutdown.setdefault(server_name, {}).setdefault(app, []).append(result)
            _log(
                f"shutdown {server_name} {app} round {round_number + 1}: "
                f"{result.get('clean', '?')}/{result.get('connections', '?')} clean, "
                f"exit after {result.get('exit_s', float('nan')):.2f} s"
            )


#: the redis scenario's contestants: how the subscribers' server gets the events
REDIS_CASES = ("memory", "redis", "rediss")


def _redis_servers(server_name: str, redis: RedisForBench, log: Path | None) -> dict[str, Any]:
    """For each case: (publishing server, subscribers' server); one process for memory."""
    memory = Server(server_name, "trio_sse", log=log)
    pairs: dict[str, Any] = {"memory": (memory, memory)}
    for case, url in (("redis", redis.url), ("rediss", redis.tls_url)):
        env = {"TRIO_SSE_BENCH_REDIS_URL": url, "TRIO_SSE_BENCH_REDIS_PREFIX": f"{case}:"}
        pairs[case] = tuple(Server(server_name, "trio_sse", log=log, env=env) for _ in range(2))
    return pairs


def scenario_redis(settings: Settings, results: Results) -> None:
    """Fan-out across processes through Redis (plain and TLS) against memory in one process.

    The publisher posts to one server process; the subscribers are connected to another,
    and both share the topic through one ``redis-server``. Server CPU counts both app
    processes; Redis's own CPU is reported beside it.
    """
    if shutil.which("redis-server") is None:
        _log("redis: skipped, it needs redis-server: apt-get install redis-server")
        return
    with redis_server() as redis:
        for server_name in settings.servers:
            pairs = _redis_servers(server_name, redis, settings.log)
            every = list(dict.fromkeys(server for pair in pairs.values() for server in pair))
            with running(every):
                table = results.redis.setdefault(server_name, {})
                for round_number in range(settings.reps):
                    for case in REDIS_CASES:
                        publisher, subscribed = pairs[case]
                        pids = list(dict.fromkeys([*publisher.pids, *subscribed.pids]))
                        redis_cpu = cpu_seconds([redis.pid])
                        result = run_client(
                            "fanout", 300, port=subscribed.port, publish_port=publisher.port,
                            subscribers=settings.fanout_subscribers, events=settings.fanout_events,
                            rate=settings.fanout_rate, pids=pids,
                        )  # fmt: skip
                        result["redis_cpu"] = cpu_seconds([redis.pid]) - redis_cpu
                        table.setdefault(case, []).append(result)
                        _log(
                            f"redis {server_name} {case} round {round_number + 1}: p99 "
                            f"{result.get('p99_ms', float('nan')):.1f} ms, "
                            f"{result.get('server_us_per_event', float('nan')):.1f} us/event"
                        )


_RUNNERS: dict[str, Callable[[Settings, Results], None]] = {
    "encode": scenario_encode,
    "throughput": scenario_throughput,
    "fanout": scenario_fanout,
    "idle": scenario_idle,
    "idle10k": scenario_idle10k,
    "publish": scenario_publish,
    "shutdown": scenario_shutdown,
    "redis": scenario_redis,
}


# -- the run --------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> dict[str, str]:
    from importlib import metadata

    found = {}
    for name in ("trio", "anyio", "starlette", "uvicorn", "httptools", "hypercorn", "h11",
                 "sse-starlette", "psutil"):  # fmt: skip
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    init = (ROOT / "src" / "trio_sse" / "__init__.py").read_text()
    version = next(
        (line.split("=", 1)[1].strip().strip("\"'") for line in init.splitlines()
         if line.startswith("__version__")), "?",
    )  # fmt: skip
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
            timeout=10, check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        commit = ""
    found["trio_sse"] = f"{version} ({commit})" if commit else version
    return found


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 20_000 if hard == resource.RLIM_INFINITY else min(hard, 20_000)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _parse_list(values: list[str] | None, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    if not values:
        return allowed
    chosen: list[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            if item not in allowed:
                raise SystemExit(f"unknown {what} {item!r}; choose from {', '.join(allowed)}")
            chosen.append(item)
    return tuple(chosen)


def choose_scenarios(values: list[str] | None, *, quick: bool) -> tuple[str, ...]:
    """The scenarios named in ``--scenarios``, else all (``NOT_QUICK`` left out of a quick run)."""
    scenarios = _parse_list(values, SCENARIOS, "scenario")
    if quick and not values:
        return tuple(name for name in scenarios if name not in NOT_QUICK)
    return scenarios


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="trio_sse vs sse-starlette vs a raw ASGI floor, side by side, on 127.0.0.1",
    )
    parser.add_argument("--quick", action="store_true", help="small counts, one round (smoke)")
    parser.add_argument("--scenarios", nargs="+", metavar="NAME", help=f"of {', '.join(SCENARIOS)}")
    parser.add_argument(
        "--servers", nargs="+", metavar="NAME", help=f"of {', '.join(MAIN_SERVERS)}"
    )
    parser.add_argument("--reps", type=int, help="rounds per scenario (default 3, quick 1)")
    parser.add_argument(
        "--no-node", action="store_true", help="leave out the Node.js rows (benchmarks/node/)"
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "benchmarks" / "results" / "latest.md"
    )
    parser.add_argument("--json", type=Path, help="also write the raw results as JSON here")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="only write the report of a saved --json run"
    )
    args = parser.parse_args(argv)
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(render(Results(**saved)))
        return
    scenarios = choose_scenarios(args.scenarios, quick=args.quick)
    settings = Settings.make(
        args.quick, args.reps, _parse_list(args.servers, MAIN_SERVERS, "server")
    )
    settings.node = not args.no_node and any(
        scenario in scenarios for scenario in ("throughput", "fanout", "idle", "idle10k")
    )
    settings.node = settings.node and node_ready(_log)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    settings.log = args.output.with_suffix(".servers.log")
    settings.log.write_bytes(b"")
    _raise_file_limit()
    settings_dict = asdict(settings)
    settings_dict["log"] = str(settings.log)
    results = Results(settings=settings_dict)
    started = time.monotonic()
    results.meta = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": _versions() | (node_versions() if settings.node else {}),
        "load_before": os.getloadavg(),
        "scenarios": list(scenarios),
        "command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    for scenario in scenarios:
        _RUNNERS[scenario](settings, results)
    results.meta["load_after"] = os.getloadavg()
    results.meta["duration_s"] = time.monotonic() - started
    results.targets = [asdict(row) for row in target_rows(results)]
    args.output.write_text(render(results))
    if args.json:
        args.json.write_text(json.dumps(asdict(results), indent=1, default=str))
    _log(f"wrote {args.output} in {results.meta['duration_s']:.0f} s")
