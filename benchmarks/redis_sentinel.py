"""What ``wait_replicas=1`` costs per publish, and what it saves across a failover.

``python -m benchmarks.redis_sentinel [--publishes 2000] [--rounds 3]`` (needs
``redis-server`` and ``redis-sentinel``; starts its own primary, replica and three sentinels
on 127.0.0.1 with ``tests/redis_sentinel.py``, under trio):

* cost: the mean time of one ``publish`` awaited after another, ``wait_replicas`` 0 vs 1;
* loss: 8 publishers publish as fast as they can while the primary is killed (``SIGKILL``);
  once the replica is promoted, count the acknowledged ids that it does not hold.

Not a test: nothing is asserted; the figures are printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import anyio
import anyio.to_thread
from tests.redis_sentinel import SentinelGroup, ask

from trio_sse import Broadcaster
from trio_sse.backends import RedisBackend, RedisError, RedisNotReplicatedError

PUBLISHERS = 8
MAX_CONNECTIONS = int(os.environ.get("BENCH_MAX_CONNECTIONS", "4"))


def _backend(group: SentinelGroup, wait_replicas: int, prefix: str) -> RedisBackend:
    return RedisBackend(
        group.url, prefix=prefix, wait_replicas=wait_replicas, wait_timeout=0.5,
        connect_timeout=0.5, command_timeout=2, max_connections=MAX_CONNECTIONS,
    )  # fmt: skip


async def cost(group: SentinelGroup, publishes: int) -> dict[int, float]:
    """Mean seconds per publish, for wait_replicas 0 and 1."""
    means: dict[int, float] = {}
    for wait in (0, 1, 0, 1):  # twice each, interleaved; the second run is kept (warm)
        async with Broadcaster(_backend(group, wait, f"cost-{uuid.uuid4().hex[:8]}:")) as hub:
            start = time.perf_counter()
            for n in range(publishes):
                await hub.publish("t", f"event {n}")
            means[wait] = (time.perf_counter() - start) / publishes
    return means


async def loss(group: SentinelGroup, wait: int) -> tuple[int, int, int]:
    """(acknowledged, acknowledged but lost, failed or unconfirmed) across one failover."""
    prefix = f"loss-{uuid.uuid4().hex[:8]}:"
    acked: list[str] = []
    refused = 0
    async with Broadcaster(_backend(group, wait, prefix), history=1_000_000) as hub:

        async def publisher(deadline: float) -> None:
            nonlocal refused
            while time.monotonic() < deadline:
                try:
                    acked.append(await hub.publish("t", "x" * 64))
                except (RedisNotReplicatedError, RedisError):
                    refused += 1
                    await anyio.sleep(0.05)

        deadline = time.monotonic() + 1.0
        async with anyio.create_task_group() as tasks:
            for _ in range(PUBLISHERS):
                tasks.start_soon(publisher, deadline)
            await anyio.sleep(0.5)
            await anyio.to_thread.run_sync(group.kill_primary)
    await anyio.to_thread.run_sync(group.wait_promoted)
    held = ask(group.replica.port, "XRANGE", f"{prefix}t", "-", "+", timeout=10)
    assert isinstance(held, list)
    kept = {entry[0] for entry in held if isinstance(entry, list)}
    return len(acked), sum(1 for i in acked if i not in kept), refused


async def main(publishes: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "cost").mkdir()
        group = SentinelGroup(Path(directory) / "cost")
        try:
            await anyio.to_thread.run_sync(group.start)
            means = await cost(group, publishes)
        finally:
            group.stop()
        print(f"publish, {publishes} one after another on 127.0.0.1:")
        for wait, mean in means.items():
            print(f"  wait_replicas={wait}: {mean * 1e6:.0f} µs per publish")
        for wait in (int(w) for w in os.environ.get("BENCH_WAITS", "0,1").split(",")):
            for number in range(rounds):
                folder = Path(directory) / f"loss-{wait}-{number}"
                folder.mkdir()
                group = SentinelGroup(folder)
                try:
                    await anyio.to_thread.run_sync(group.start)
                    acked, lost, refused = await loss(group, wait)
                finally:
                    group.stop()
                print(
                    f"failover, wait_replicas={wait}, round {number + 1}: {acked} acknowledged, "
                    f"{lost} of them lost, {refused} raised"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publishes", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    anyio.run(main, arguments.publishes, arguments.rounds, backend="trio")
