"""The runner's listening options (trio_sse._listen): checks, the hypercorn config they set,
and the URLs named for the sockets. Pure, but for real sockets bound on 127.0.0.1 / a path."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
from hypercorn.config import Config

from trio_sse import serve
from trio_sse._listen import apply_listen_options, bind_urls

from .helpers import sse_app


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"certfile": "c.pem"}, ValueError, "certfile and keyfile go together .*keyfile=None"),
        ({"keyfile": "k.pem"}, ValueError, "certfile and keyfile go together .*certfile=None"),
        ({"ca_certs": "ca.pem"}, ValueError, "ca_certs .*needs TLS: give certfile and keyfile"),
        ({"certfile": b"c.pem"}, TypeError, r"certfile must be a path .*got b'c.pem'"),
        ({"uds": 3}, TypeError, "uds must be a path .*got 3"),
        ({"uds": ""}, ValueError, "uds must be a non-empty path, got ''"),
        ({"client_cert": "maybe"}, ValueError, "client_cert must be one of 'required', 'optional'"),
        ({"root_path": 5}, TypeError, "root_path must be a str or None, got 5"),
        ({"root_path": "api"}, ValueError, "root_path must start with '/', got 'api'"),
    ],
)
def test_bad_options_name_themselves(
    options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        apply_listen_options(Config(), **options)


def test_the_options_set_hypercorns_config(tmp_path: Path) -> None:
    config = Config()
    apply_listen_options(
        config,
        uds=tmp_path / "s.sock",
        certfile=tmp_path / "c.pem",
        keyfile="k.pem",
        ca_certs=tmp_path / "ca.pem",
        client_cert="optional",
        root_path="/api/",
    )
    assert config.bind == [f"unix:{tmp_path / 's.sock'}"]
    assert (config.certfile, config.keyfile) == (str(tmp_path / "c.pem"), "k.pem")
    assert config.ca_certs == str(tmp_path / "ca.pem")
    assert config.verify_mode == ssl.CERT_OPTIONAL
    assert config.root_path == "/api"  # hypercorn strips the trailing slash
    other = Config()
    apply_listen_options(other, ca_certs="ca.pem", certfile="c", keyfile="k")
    assert other.verify_mode == ssl.CERT_REQUIRED


def test_nothing_given_leaves_the_config_alone() -> None:
    config = Config()
    config.bind = ["127.0.0.1:1234"]
    apply_listen_options(config)
    assert config.bind == ["127.0.0.1:1234"]
    assert (config.certfile, config.ca_certs, config.verify_mode) == (None, None, None)
    assert config.root_path == ""


def test_bind_urls_name_every_kind_of_socket(tmp_path: Path) -> None:
    with (
        socket.socket(socket.AF_UNIX) as unix,
        socket.socket(socket.AF_INET) as inet,
        socket.socket(socket.AF_UNIX) as secure_unix,
    ):
        unix.bind(str(tmp_path / "a.sock"))
        secure_unix.bind(str(tmp_path / "b.sock"))
        inet.bind(("127.0.0.1", 0))
        port = inet.getsockname()[1]
        sockets = SimpleNamespace(secure_sockets=[inet, secure_unix], insecure_sockets=[unix])
        assert bind_urls(sockets) == [
            f"https://127.0.0.1:{port}",
            f"https+unix://{tmp_path / 'b.sock'}",
            f"http+unix://{tmp_path / 'a.sock'}",
        ]


def test_bind_urls_bracket_ipv6() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 here")
    with socket.socket(socket.AF_INET6) as sock:
        try:
            sock.bind(("::1", 0))
        except OSError:
            pytest.skip("no ::1 here")
        port = sock.getsockname()[1]
        sockets = SimpleNamespace(secure_sockets=[], insecure_sockets=[sock])
        assert bind_urls(sockets) == [f"http://[::1]:{port}"]


@pytest.mark.anyio
async def test_serve_refuses_uds_with_host_or_port(tmp_path: Path) -> None:
    app = sse_app(list)
    with anyio.fail_after(5):
        for where in ({"port": 0}, {"host": "127.0.0.1"}):
            with pytest.raises(ValueError, match="give uds or host/port, not both"):
                await serve(app, uds=tmp_path / "s.sock", handle_signals=False, **where)
    assert not (tmp_path / "s.sock").exists()


@pytest.mark.anyio
async def test_serve_reads_the_certificates_before_listening(tmp_path: Path) -> None:
    app = sse_app(list)
    missing = tmp_path / "missing.pem"
    with anyio.fail_after(5), pytest.raises(FileNotFoundError):
        await serve(
            app, uds=tmp_path / "s.sock", certfile=missing, keyfile=missing, handle_signals=False
        )
    assert not (tmp_path / "s.sock").exists()  # nothing was bound
