"""TLS to a real ``redis-server`` (``--tls-port``, ``--port 0``: TLS only), with certificates
made for the test by ``trustme``: a CA we trust, one we do not, and client certificates
(``--tls-auth-clients yes``)."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import anyio
import pytest
import trustme

from trio_sse import Broadcaster
from trio_sse.backends import RedisBackend, RedisConnectionError

from .broadcast_suite import ids_of, take
from .redis_server import RedisServer, ServerTLS

pytestmark = [pytest.mark.anyio, pytest.mark.service("redis-server")]


@dataclass(frozen=True)
class Certificates:
    ca: trustme.CA
    ca_file: Path
    other_ca_file: Path  # a CA that signed nothing here
    client_cert: Path
    client_key: Path
    server: ServerTLS


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("tls")
    ca, other = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(folder / "ca.pem")
    other.cert_pem.write_to_path(folder / "other-ca.pem")
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(folder / "server.pem")
    server.private_key_pem.write_to_path(folder / "server.key")
    client = ca.issue_cert("client.test")
    client.cert_chain_pems[0].write_to_path(folder / "client.pem")
    client.private_key_pem.write_to_path(folder / "client.key")
    tls = ServerTLS(folder / "server.pem", folder / "server.key", folder / "ca.pem")
    return Certificates(
        ca, folder / "ca.pem", folder / "other-ca.pem", folder / "client.pem",
        folder / "client.key", tls,
    )  # fmt: skip


def _server(tls: ServerTLS) -> Iterator[RedisServer]:
    server = RedisServer(tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tls_server(certificates: Certificates) -> Iterator[RedisServer]:
    yield from _server(certificates.server)


@pytest.fixture(scope="module")
def mutual_tls_server(certificates: Certificates) -> Iterator[RedisServer]:
    tls = ServerTLS(
        certificates.server.cert_file, certificates.server.key_file, certificates.ca_file, True
    )
    yield from _server(tls)


def rediss(server: RedisServer, **options: Path) -> str:
    query = "&".join(f"{name}={quote(str(value))}" for name, value in options.items())
    return f"rediss://127.0.0.1:{server.port}/0" + (f"?{query}" if query else "")


async def round_trip(backend: RedisBackend) -> None:
    with anyio.fail_after(10):
        async with Broadcaster(backend) as hub:
            async with hub.subscribe("t") as events:
                first = await hub.publish("t", "over TLS")
                assert ids_of(await take(events, 1)) == [first]
            second = await hub.publish("t", "replayed over TLS")
            async with hub.subscribe("t", last_event_id=first) as resumed:
                [event] = await take(resumed, 1)
    assert (event.id, event.data) == (second, "replayed over TLS")


def prefix() -> str:
    return f"tls-{uuid.uuid4().hex[:8]}:"


async def test_rediss_url_with_the_servers_ca(
    tls_server: RedisServer, certificates: Certificates
) -> None:
    url = rediss(tls_server, ssl_ca_certs=certificates.ca_file)
    backend = RedisBackend(url, prefix=prefix())
    assert backend.address == f"rediss://127.0.0.1:{tls_server.port}/0"
    await round_trip(backend)


async def test_an_ssl_context(tls_server: RedisServer, certificates: Certificates) -> None:
    context = ssl.create_default_context()
    certificates.ca.configure_trust(context)
    url = f"rediss://127.0.0.1:{tls_server.port}/0"
    await round_trip(RedisBackend(url, prefix=prefix(), ssl_context=context))


async def test_a_wrong_ca_is_a_clear_connection_error(
    tls_server: RedisServer, certificates: Certificates
) -> None:
    url = rediss(tls_server, ssl_ca_certs=certificates.other_ca_file)
    with anyio.fail_after(10), pytest.raises(RedisConnectionError) as info:
        async with Broadcaster(RedisBackend(url, prefix=prefix())):
            pass
    message = str(info.value)
    assert f"rediss://127.0.0.1:{tls_server.port}/0" in message
    assert "certificate verify failed" in message


async def test_the_system_cas_do_not_trust_a_private_ca(tls_server: RedisServer) -> None:
    # rediss:// verifies by default: no ssl_ca_certs means the system's CAs, which do not
    # know trustme's.
    with anyio.fail_after(10), pytest.raises(RedisConnectionError, match="certificate verify"):
        async with Broadcaster(RedisBackend(rediss(tls_server), prefix=prefix())):
            pass


async def test_client_certificates(
    mutual_tls_server: RedisServer, certificates: Certificates
) -> None:
    url = rediss(
        mutual_tls_server,
        ssl_ca_certs=certificates.ca_file,
        ssl_certfile=certificates.client_cert,
        ssl_keyfile=certificates.client_key,
    )
    await round_trip(RedisBackend(url, prefix=prefix()))


async def test_without_a_client_certificate_the_server_refuses(
    mutual_tls_server: RedisServer, certificates: Certificates
) -> None:
    url = rediss(mutual_tls_server, ssl_ca_certs=certificates.ca_file)
    with anyio.fail_after(10), pytest.raises(RedisConnectionError) as info:
        async with Broadcaster(RedisBackend(url, prefix=prefix())):
            pass
    assert f"rediss://127.0.0.1:{mutual_tls_server.port}/0" in str(info.value)


async def test_an_apps_own_tls_client(tls_server: RedisServer, certificates: Certificates) -> None:
    import coredis

    context = ssl.create_default_context()
    certificates.ca.configure_trust(context)
    client = coredis.Redis("127.0.0.1", tls_server.port, ssl_context=context)
    backend = RedisBackend(client, prefix=prefix())
    assert backend.address == f"rediss://127.0.0.1:{tls_server.port}/0"
    async with client:  # the app's own use of it, around the hub's
        await round_trip(backend)
        assert await client.ping() == b"PONG"  # still the app's, still open
