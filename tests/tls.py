"""Certificates made for a test run by ``trustme``: a CA, a server certificate for 127.0.0.1
and localhost, a client certificate, all written as PEM files, and client SSL contexts."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class Certificates:
    ca: trustme.CA
    ca_file: Path
    server_cert: Path
    server_key: Path
    client: trustme.LeafCert

    def client_context(self, *, with_certificate: bool = False) -> ssl.SSLContext:
        """A client context that trusts the CA (and presents the client certificate)."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if with_certificate:
            self.client.configure_cert(context)
        return context


def make_certificates(folder: Path) -> Certificates:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(folder / "ca.pem")
    server = ca.issue_cert("127.0.0.1", "localhost")
    (folder / "server.pem").write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    server.private_key_pem.write_to_path(folder / "server.key")
    client = ca.issue_cert("client.test")
    return Certificates(ca, folder / "ca.pem", folder / "server.pem", folder / "server.key", client)
