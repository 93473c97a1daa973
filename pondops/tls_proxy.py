"""A small TLS-terminating reverse proxy: the stand-in for the load balancer in front of the
web process, for the local production rehearsal (``./dev prod``) and the production-layout
test (``tests/deploy``). Not for production: a real deployment terminates TLS in its load
balancer or ingress, which does what this does.

What it promises, because the settings rely on it (``PONDOPS_BEHIND_TLS_PROXY``):

- HTTPS on its own port with a self-signed certificate for ``127.0.0.1``, ``::1`` and
  ``localhost`` (:func:`self_signed_certificate_create`; clients verify against that file);
- every request is forwarded to the upstream with ``X-Forwarded-Proto: https`` and
  ``X-Forwarded-For: <client address>``, *overwriting* whatever the client sent in either
  (a client must never be able to claim https on its own); the ``Host`` header is kept, so
  the application sees the name the browser used;
- one request per connection (HTTP/1.0-style close), bodies by ``Content-Length`` only (a
  chunked request is a 411), the upstream's answer relayed as it came, several
  ``Set-Cookie`` included; no upstream: 502.

``python -m pondops.tls_proxy --listen 127.0.0.1:8443 --upstream 127.0.0.1:8000
--cert-dir DIR`` runs it in the foreground until SIGTERM or Ctrl-C, on the certificate in DIR
(made there when there is none).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import ipaddress
import signal
import socket
import ssl
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CERTIFICATE_FILE = "proxy-cert.pem"
KEY_FILE = "proxy-key.pem"
UPSTREAM_TIMEOUT_SECONDS = 300.0  # longer than the web's graceful timeout: never cut it short
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones this proxy writes itself.
_NOT_FORWARDED = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "x-forwarded-proto",
        "x-forwarded-for",
        "x-forwarded-host",
        "forwarded",
    }
)


@dataclass(frozen=True)
class Certificate:
    """A certificate and its private key, as PEM files."""

    certificate: Path
    key: Path


def self_signed_certificate_create(*, directory: Path) -> Certificate:
    """Write a fresh self-signed certificate (P-256, valid 30 days) for the loopback names into
    ``directory``, the key readable by its owner only; clients pass the certificate file as
    their CA (``requests``' ``verify=``)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PondOps local TLS proxy")])
    now = datetime.datetime.now(datetime.UTC)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    files = Certificate(certificate=directory / CERTIFICATE_FILE, key=directory / KEY_FILE)
    files.key.touch(mode=0o600)
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.certificate.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return files


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer

    def _forward(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.send_error(411, "Length Required")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        host, port = self.server.upstream
        upstream = http.client.HTTPConnection(host, port, timeout=UPSTREAM_TIMEOUT_SECONDS)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _NOT_FORWARDED:
                    upstream.putheader(name, value)
            upstream.putheader("X-Forwarded-Proto", "https")
            upstream.putheader("X-Forwarded-For", self.client_address[0])
            upstream.putheader("Connection", "close")
            upstream.endheaders(body or None)
            response = upstream.getresponse()
            content = response.read()
        except OSError:
            self.send_error(502, "Bad Gateway")
            return
        finally:
            upstream.close()
        self.log_request(response.status)
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _NOT_FORWARDED and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _forward

    def log_message(self, format: str, *args: Any) -> None:
        """Method, path without its query (it may carry a callback token), status."""
        if self.server.quiet:
            return
        path = self.path.split("?", 1)[0]
        sys.stderr.write(f"tls_proxy: {self.client_address[0]} {self.command} {path} {args[1]}\n")

    def log_error(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            sys.stderr.write(f"tls_proxy: {format % args}\n")


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        listen: tuple[str, int],
        *,
        upstream: tuple[str, int],
        certificate: Certificate,
        quiet: bool,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in listen[0] else socket.AF_INET
        super().__init__(listen, _ProxyHandler)
        self.upstream = upstream
        self.quiet = quiet
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certificate.certificate, certificate.key)
        # The handshake runs in the request's thread (finish_request), not in the accept loop.
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            request.do_handshake()
        except (ssl.SSLError, OSError):
            return  # a client that does not speak TLS (or gives up) gets nothing
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.quiet:
            super().handle_error(request, client_address)


class TlsProxy:
    """The proxy on ``listen`` (port 0: a free one) in a background thread; ``url`` once
    started. ``stop`` closes it."""

    def __init__(
        self,
        *,
        listen: tuple[str, int],
        upstream: tuple[str, int],
        certificate: Certificate,
        quiet: bool = False,
    ) -> None:
        self._server = _ProxyServer(listen, upstream=upstream, certificate=certificate, quiet=quiet)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tls-proxy", daemon=True
        )

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        shown = f"[{host}]" if ":" in host else host
        return f"https://{shown}:{self.port}"

    def start(self) -> TlsProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def request_stop(self) -> None:
        """Stop soon, from any thread (a signal handler may not wait for the serving loop)."""
        threading.Thread(target=self._server.shutdown, daemon=True).start()

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` (from a signal handler, say)."""
        self._server.serve_forever()
        self._server.server_close()


def _address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pondops.tls_proxy", description=__doc__)
    parser.add_argument("--listen", type=_address, default=("127.0.0.1", 8443))
    parser.add_argument("--upstream", type=_address, default=("127.0.0.1", 8000))
    parser.add_argument(
        "--cert-dir",
        type=Path,
        required=True,
        help=f"holds {CERTIFICATE_FILE} and {KEY_FILE}; made there (self-signed) when missing",
    )
    options = parser.parse_args(argv)
    certificate = Certificate(
        certificate=options.cert_dir / CERTIFICATE_FILE, key=options.cert_dir / KEY_FILE
    )
    if not (certificate.certificate.exists() and certificate.key.exists()):
        certificate = self_signed_certificate_create(directory=options.cert_dir)
    proxy = TlsProxy(listen=options.listen, upstream=options.upstream, certificate=certificate)

    def stop(signum: int, frame: FrameType | None) -> None:
        proxy.request_stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sys.stderr.write(
        f"tls_proxy: {proxy.url} -> http://{options.upstream[0]}:{options.upstream[1]} "
        f"(certificate {certificate.certificate})\n"
    )
    proxy.serve_forever()


if __name__ == "__main__":
    main()
