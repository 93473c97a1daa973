"""Run the simulators in the foreground until SIGINT or SIGTERM (CLI and Django command)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from .server import SimulatorServer


def run_until_signalled(
    *,
    host: str,
    port: int,
    latency_ms: int = 0,
    verbose: bool = False,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve until SIGINT/SIGTERM, then close every connection and return normally.

    Must run in the main thread (signal handlers). Announces exactly one line,
    ``simulators listening on http://HOST:PORT``, once the socket accepts connections.
    Raises :class:`~integrations.simulators.server.NonLoopbackHostError` for a public host.
    """
    server = SimulatorServer(host=host, port=port, latency_ms=latency_ms, verbose=verbose)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        server.start()
        announce(f"simulators listening on {server.url}")
        while not stop_requested.wait(0.5):
            pass
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
