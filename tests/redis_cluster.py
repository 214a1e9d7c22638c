"""A Redis Cluster for the tests: 3 primaries and 3 replicas on free ports of 127.0.0.1.

Each ``redis-server`` runs with ``--cluster-enabled yes`` in its own process group and its
own temporary directory (its ``nodes.conf``), with its cluster bus on a second free port
(``--cluster-port``); ``redis-cli --cluster create ... --cluster-replicas 1`` joins them.
``start()`` returns once every node says ``cluster_state:ok`` and every replica is linked to
its primary. ``cluster-node-timeout`` is 1000 ms: a primary killed with ``SIGKILL`` is
replaced by its replica within a few seconds. Killed by pid at the end. Debian's
``redis-server`` and ``redis-tools`` (``redis-cli``) provide the programs: without them a test
is skipped, or failed under ``CI=true`` (mark it
``@pytest.mark.service("redis-server", "redis-cli")``).

With a :class:`ClusterTLS` every node speaks TLS only (``--tls-port``, ``--port 0``), to its
clients, to the other nodes (``--tls-cluster yes``) and to its replicas
(``--tls-replication yes``), with the certificates the test made; the cluster is created with
``redis-cli --tls``, and this module's own commands go over TLS too (with the client
certificate when the nodes ask for one: ``ServerTLS.auth_clients``).
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .processes import free_port
from .redis_sentinel import ask
from .redis_server import RedisServer, ServerTLS
from .services import require

__all__ = ["ClusterGroup", "ClusterTLS", "ask", "key_slot"]


@dataclass(frozen=True)
class ClusterTLS:
    """The nodes' TLS (``server``) and the client certificate this module (and redis-cli)
    presents to them."""

    server: ServerTLS
    client_cert: Path
    client_key: Path

    def context(self) -> ssl.SSLContext:
        context = self.server.client_context()
        context.load_cert_chain(self.client_cert, self.client_key)
        return context

    def cli_options(self) -> list[str]:
        ca, cert, key = self.server.ca_file, self.client_cert, self.client_key
        return ["--tls", "--cacert", str(ca), "--cert", str(cert), "--key", str(key)]

    def node_options(self) -> list[str]:
        return ["--tls-cluster", "yes", "--tls-replication", "yes"]


def key_slot(key: str) -> int:
    """The cluster slot of *key* (CRC16 of its hash tag), computed here as Redis does."""
    data = key.encode()
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % 16384


def _until(check: Callable[[], bool], what: str, timeout: float) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} within {timeout} s")
        time.sleep(0.05)


class ClusterGroup:
    """Six cluster nodes (``--appendonly no``, as every ``RedisServer`` without a data dir); after ``start()``, ``primaries()`` and ``replicas()`` by port."""

    def __init__(self, directory: Path, *, nodes: int = 6, tls: ClusterTLS | None = None) -> None:
        self.tls = tls
        self._directory = directory
        self._context = tls.context() if tls is not None else None
        self.servers = [self._node(f"node-{index}") for index in range(nodes)]

    def _node(self, name: str) -> RedisServer:
        """A node on free ports (client and cluster bus), in a new folder *name*."""
        folder = self._directory / name
        folder.mkdir()
        options = ["--dir", str(folder), "--cluster-enabled", "yes"]
        options += ["--cluster-config-file", str(folder / "nodes.conf")]
        options += ["--cluster-port", str(free_port()), "--cluster-node-timeout", "1000"]
        options += self.tls.node_options() if self.tls is not None else []
        server_tls = self.tls.server if self.tls is not None else None
        return RedisServer(tls=server_tls, extra=options)

    def _start_nodes(self) -> None:
        """Start every node; one that cannot (a free port taken meanwhile by another process
        of this shared machine) is tried again, twice, on new ports."""
        for index in range(len(self.servers)):
            for attempt in range(1, 3):
                try:
                    self.servers[index].start()
                    break
                except RuntimeError:
                    self.servers[index] = self._node(f"node-{index}-{attempt}")
            else:
                self.servers[index].start()

    def _ask(self, port: int, *args: str) -> object:
        return ask(port, *args, context=self._context)

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    def url(self, *ports: int) -> str:
        """A ``redis+cluster://`` URL (``rediss+cluster://`` over TLS) naming *ports*
        (default: the first node)."""
        scheme = "rediss+cluster" if self.tls is not None else "redis+cluster"
        return f"{scheme}://" + ",".join(f"127.0.0.1:{p}" for p in ports or self.ports[:1])

    def _role(self, port: int) -> str | None:
        role = self._ask(port, "ROLE")
        return str(role[0]) if isinstance(role, list) else None

    def primaries(self) -> list[int]:
        return [s.port for s in self.servers if s.process and self._role(s.port) == "master"]

    def replicas(self) -> list[int]:
        return [s.port for s in self.servers if s.process and self._role(s.port) == "slave"]

    def _ok(self) -> bool:
        for server in self.servers:
            if server.process is None:
                continue
            info = self._ask(server.port, "CLUSTER", "INFO")
            if not (isinstance(info, str) and "cluster_state:ok" in info):
                return False
        return True

    def _linked(self) -> bool:
        replicas = self.replicas()
        for port in replicas:
            info = self._ask(port, "INFO", "replication")
            if not (isinstance(info, str) and "master_link_status:up" in info):
                return False
        return len(replicas) == len(self.servers) // 2

    def start(self, timeout: float = 30.0) -> None:
        cli = require("redis-cli")
        self._start_nodes()
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        tls = self.tls.cli_options() if self.tls is not None else []
        subprocess.run(
            [
                cli,
                *tls,
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=timeout,
        )
        _until(self._ok, "the cluster did not reach cluster_state:ok", timeout)
        _until(self._linked, "the replicas did not sync with their primaries", timeout)

    def owner(self, slot: int) -> int:
        """The port of the primary serving *slot*, as the first answering node says."""
        for server in self.servers:
            if server.process is not None:
                owner = self._owner_at(server.port, slot)
                if owner is not None:
                    return owner
        raise RuntimeError(f"no node serves slot {slot}")

    def move_slot(self, slot: int, to: int, timeout: float = 10.0) -> None:
        """Migrate *slot* (and its keys) to the primary on port *to*, as a resharding does:
        ``IMPORTING``/``MIGRATING``, ``MIGRATE`` of its keys, then ``SETSLOT NODE`` on every
        primary. Returns once every node names *to* as the slot's owner."""
        source = self.owner(slot)
        ids = {port: str(self._ask(port, "CLUSTER", "MYID")) for port in (source, to)}
        self._ask(to, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", ids[source])
        self._ask(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", ids[to])
        while keys := self._ask(source, "CLUSTER", "GETKEYSINSLOT", str(slot), "100"):
            assert isinstance(keys, list)
            self._ask(
                source, "MIGRATE", "127.0.0.1", str(to), "", "0", "5000", "KEYS", *map(str, keys)
            )
        for port in [to, source, *(p for p in self.primaries() if p not in (to, source))]:
            self._ask(port, "CLUSTER", "SETSLOT", str(slot), "NODE", ids[to])

        def agreed() -> bool:
            return all(self._owner_at(s.port, slot) == to for s in self.servers if s.process)

        _until(agreed, f"the nodes did not agree that {to} serves slot {slot}", timeout)

    def _owner_at(self, port: int, slot: int) -> int | None:
        slots = self._ask(port, "CLUSTER", "SLOTS")
        for low, high, primary, *_ in slots if isinstance(slots, list) else ():
            if int(str(low)) <= slot <= int(str(high)):
                assert isinstance(primary, list)
                return int(str(primary[1]))
        return None

    def kill(self, port: int) -> None:
        """``SIGKILL`` the node on *port* by its pid: no goodbye to its replica or clients."""
        server = next(s for s in self.servers if s.port == port)
        process, server.process = server.process, None
        assert process is not None
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    def wait_promoted(self, slot: int, old: int, timeout: float = 20.0) -> int:
        """Until a node other than *old* serves *slot* and the cluster is ok; its port."""
        _until(lambda: self.owner(slot) != old and self._ok(), "no replica promoted", timeout)
        return self.owner(slot)

    def stop(self) -> None:
        for server in self.servers:
            running, server.process = server.process, None
            if running is not None:
                if running.poll() is None:
                    os.kill(running.pid, signal.SIGKILL)
                running.wait()
