"""The chaos harness's own parts that decide its figures: the database proxy's cut and the
recovery and stall arithmetic."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.chaos.harness import Sample, TcpProxy, longest_stall, recovery_seconds


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the proxy resets its upstream on a cut
            while data := conn.recv(1024):
                conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()
    stop.set()
    server.close()
    thread.join(timeout=5)


def roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(payload)
        return conn.recv(1024)


def test_the_proxy_forwards_cuts_live_connections_refuses_new_ones_and_restores(
    echo_server: tuple[str, int],
) -> None:
    proxy = TcpProxy(echo_server)
    try:
        assert roundtrip(proxy.port, b"before") == b"before"
        live = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        live.sendall(b"x")
        assert live.recv(1024) == b"x"

        proxy.cut()
        with pytest.raises(OSError):  # reset, or closed: no answer
            live.sendall(b"y")
            if not live.recv(1024):
                raise ConnectionResetError("closed")
        live.close()
        with pytest.raises(OSError):
            if not roundtrip(proxy.port, b"during"):
                raise ConnectionResetError("closed")

        proxy.restore()
        assert roundtrip(proxy.port, b"after") == b"after"
    finally:
        proxy.close()


def samples(*points: tuple[float, int]) -> list[Sample]:
    return [Sample(at, final) for at, final in points]


def test_recovery_is_the_first_progress_after_the_fault_ends() -> None:
    run = samples((0, 10), (1, 20), (2, 20), (5, 20), (6, 20), (7.5, 21), (8, 30))
    assert recovery_seconds(run, fault_ended=5, devices=30) == 2.5
    assert recovery_seconds(run[:5], fault_ended=5, devices=30) is None
    assert recovery_seconds(run, fault_ended=9, devices=30) == 0.0


def test_the_longest_stall_counts_from_the_fault_and_to_the_last_sample_when_unfinished() -> None:
    run = samples((0, 10), (1, 12), (4, 12), (5, 13), (15, 14), (16, 30))
    assert longest_stall(run, fault_started=1, devices=30) == 10  # 5 -> 15
    unfinished = samples((0, 10), (1, 12), (2, 13), (30, 13))
    assert longest_stall(unfinished, fault_started=1, devices=30) == 28
