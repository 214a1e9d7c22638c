"""A ``redis-server`` for the cross-process scenario: plain TCP and TLS, on 127.0.0.1 only.

One process serves both: ``--port`` for ``redis://`` and ``--tls-port`` for ``rediss://``,
with a CA and a certificate for ``127.0.0.1`` made by ``trustme`` for this run. Nothing is
persisted (``--save ""``, no AOF): the scenario measures delivery, not the disk. The server
runs in its own session and is killed by its process group on the way out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ._servers import free_port

__all__ = ["RedisForBench", "redis_server"]


@dataclass(frozen=True)
class RedisForBench:
    url: str  # redis://
    tls_url: str  # rediss://, verified against this run's CA
    pid: int


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    try:
        import trustme
    except ImportError:
        raise SystemExit(
            "the redis scenario makes TLS certificates with trustme: pip install -e '.[bench]'"
        ) from None
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = (directory / name for name in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    return ca_file, cert_file, key_file


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_server(timeout: float = 10.0) -> Iterator[RedisForBench]:
    """Start Debian's ``redis-server`` with a plain and a TLS port; stop it on the way out."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("the redis scenario needs redis-server: apt-get install redis-server")
    with tempfile.TemporaryDirectory(prefix="trio_sse-bench-redis-") as name:
        directory = Path(name)
        ca_file, cert_file, key_file = _certificates(directory)
        port, tls_port = free_port(), free_port()
        command = [
            binary, "--bind", "127.0.0.1", "--port", str(port), "--tls-port", str(tls_port),
            "--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file),
            "--tls-ca-cert-file", str(ca_file), "--tls-auth-clients", "no",
            "--save", "", "--appendonly", "no", "--dir", name, "--maxclients", "1000",
        ]  # fmt: skip
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout
            while not _answers(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
            yield RedisForBench(
                url=f"redis://127.0.0.1:{port}/0",
                tls_url=f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca_file}",
                pid=process.pid,
            )
        finally:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
