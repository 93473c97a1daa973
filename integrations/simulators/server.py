"""The HTTP/1.1 front of the simulators: a threaded stdlib server bound to loopback only.

Each connection gets a daemon thread and keep-alive works (``requests.Session`` reuses
connections), so a benchmark can hold many slow requests open at once. ``stop()`` closes the
listener *and* every open connection, so nothing keeps answering after a test's teardown.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from .core import Simulator
from .messages import Drop, SimRequest, SimResponse, json_response

DEFAULT_HOST = "127.0.0.1"
LOCALHOST_NAMES = {"localhost": "127.0.0.1"}
MAX_BODY_BYTES = 64 * 1024 * 1024
BODYLESS_STATUSES = frozenset({204, 304})  # RFC 9110: no Content-Length, no body
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class NonLoopbackHostError(ValueError):
    """The simulators hold fake credentials and accept any seeding: never expose them."""


def loopback_address(host: str) -> str:
    """The IPv4 loopback address for ``host``; raises :class:`NonLoopbackHostError` otherwise."""
    address = LOCALHOST_NAMES.get(host.lower(), host)
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        parsed = None
    if parsed is None or parsed.version != 4 or not parsed.is_loopback:
        raise NonLoopbackHostError(
            f"simulators bind only to IPv4 loopback (e.g. 127.0.0.1); refusing host {host!r}"
        )
    return address


class SimulatorServer:
    """A running simulator on ``host:port`` (``port=0`` picks a free port).

    The socket is bound on construction, so :attr:`url` is known before :meth:`start`.
    Usable as a context manager: ``with SimulatorServer() as server: ...``.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        *,
        latency_ms: int = 0,
        verbose: bool = False,
    ) -> None:
        self.simulator = Simulator(latency_ms=latency_ms)
        self._httpd = _HTTPServer((loopback_address(host), port), self.simulator, verbose)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def base_url(self, carrier: str) -> str:
        """The base_url a client of ``carrier`` (``"pond"``, ``"rev"``) should be given."""
        return self.url + self.simulator.carriers[carrier].prefix

    def start(self) -> SimulatorServer:
        """Serve in a background daemon thread; returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("simulator server already started")
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"simulators:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listener and every open connection. Idempotent."""
        self.simulator.stop()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        self._httpd.close_connections()

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` is called from another thread."""
        self._httpd.serve_forever(poll_interval=0.1)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.stop()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive connections must not block stop()
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], simulator: Simulator, verbose: bool) -> None:
        self.simulator = simulator
        self.verbose = verbose
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, _CLIENT_GONE) or (isinstance(error, OSError) and not self.verbose):
            return  # a client that times out or drops the line is routine here
        super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer
    server_version = "PondOpsSimulators/1"

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError as error:
            self.close_connection = True
            self._write(json_response(400, {"error": str(error)}))
            return
        request = SimRequest(
            method=self.command,
            target=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        try:
            outcome = self.server.simulator.handle(request)
        except Exception as error:  # a simulator bug: say so loudly, keep serving
            sys.stderr.write(f"simulators: unhandled error on {self.command} {self.path}\n")
            traceback.print_exc()
            outcome = json_response(500, {"error": f"simulator bug: {error!r}"})
        if isinstance(outcome, Drop):
            self.close_connection = True
            return
        self._write(outcome)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if not length_header:
            return b""
        if not length_header.isdigit() or int(length_header) > MAX_BODY_BYTES:
            raise ValueError("invalid Content-Length")
        return self.rfile.read(int(length_header))

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size_line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            size = int(size_line, 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise ValueError("request body too large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _write(self, response: SimResponse) -> None:
        if response.final is not None and 100 <= response.status < 200:
            self._write_interim(response)
            if self.close_connection:
                return
            time.sleep(response.final_delay_s)
            response = response.final
        try:
            self.send_response(response.status)
            if response.content_type is not None:
                self.send_header("Content-Type", response.content_type)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if response.status not in BODYLESS_STATUSES:
                self.send_header("Content-Length", str(len(response.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if response.body and response.status not in BODYLESS_STATUSES:
                self.wfile.write(response.body)
        except _CLIENT_GONE:
            self.close_connection = True

    def _write_interim(self, response: SimResponse) -> None:
        """A real 1xx interim response: status line and headers, no Content-Length, no body."""
        try:
            self.send_response_only(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
        except _CLIENT_GONE:
            self.close_connection = True
