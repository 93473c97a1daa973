"""The two-host test's TCP forwarder, in every run (no namespace needed): it listens on another
loopback address (127.0.0.2, local on Linux like all of 127/8) and forwards to a server on
127.0.0.1 on the same port, as it does from a veth's address in tests/multihost."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.multihost.forwarder import Forwarder

LISTEN = "127.0.0.2"


async def _echo_until_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Collect everything until the client half-closes, then answer it all and close."""
    received = await reader.read()
    writer.write(b"got:" + received)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def _loopback_alias_usable() -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((LISTEN, 0))
        except OSError:
            return False
    return True


pytestmark = pytest.mark.skipif(
    not _loopback_alias_usable(), reason=f"{LISTEN} is not a local address here"
)


async def _forward_one_exchange() -> tuple[bytes, int]:
    server = await asyncio.start_server(_echo_until_eof, host="127.0.0.1", port=0)
    port = server.sockets[0].getsockname()[1]
    forwarder = Forwarder(listen=LISTEN, ports=[port])
    await forwarder.start()
    try:
        reader, writer = await asyncio.open_connection(LISTEN, port)
        writer.write(b"hello ")
        writer.write(b"world")
        await writer.drain()
        writer.write_eof()  # the half-close must reach the server through the forwarder
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        await writer.wait_closed()
        # Both sides closed: the forwarder forgets the connection.
        for _ in range(200):
            if not forwarder._connections:
                break
            await asyncio.sleep(0.01)
        return answer, len(forwarder._connections)
    finally:
        await forwarder.close()
        server.close()
        await server.wait_closed()


def test_the_forwarder_passes_bytes_and_the_half_close_and_closes_both_sides() -> None:
    answer, open_connections = asyncio.run(_forward_one_exchange())
    assert answer == b"got:hello world"
    assert open_connections == 0


async def _refused() -> bytes:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: connecting is refused
        forwarder = Forwarder(listen=LISTEN, ports=[port])
        await forwarder.start()
        try:
            reader, writer = await asyncio.open_connection(LISTEN, port)
            data = await asyncio.wait_for(reader.read(), timeout=10)
            writer.close()
            return data
        finally:
            await forwarder.close()


def test_a_refused_service_closes_the_client_connection_at_once() -> None:
    assert asyncio.run(_refused()) == b""
