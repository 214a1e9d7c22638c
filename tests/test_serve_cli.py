"""``trio-sse serve`` flags that cannot work end with one ``error:`` line, before the app is
imported or anything listens (``trio_sse._serve_cli``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trio_sse.__main__ import main

APP = "tests.servers.no_such_app:app"  # never imported: the checks come first


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--certfile", "c.pem"], "certfile and keyfile go together"),
        (["--ca-certs", "ca.pem"], "ca_certs (client certificates) needs TLS"),
        (["--uds", "s.sock", "--port", "1"], "give uds or host/port, not both"),
        (["--root-path", "api"], "root_path must start with '/'"),
        (["--proxy-trusted-hops", "0"], "proxy_trusted_hops must be >= 1"),
        (["--workers", "0"], "--workers must be >= 1, got 0"),
    ],
)
def test_flags_that_do_not_go_together(flags: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match="^error: " + re.escape(message)):
        main(["serve", APP, *flags])


def test_a_certificate_that_does_not_load(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(SystemExit, match=r"^error: .*No such file or directory"):
        main(["serve", APP, "--certfile", missing, "--keyfile", missing])
    (tmp_path / "bad.pem").write_text("not a certificate")
    bad = str(tmp_path / "bad.pem")
    with pytest.raises(SystemExit, match=r"^error: .*PEM"):
        main(["serve", APP, "--certfile", bad, "--keyfile", bad])
