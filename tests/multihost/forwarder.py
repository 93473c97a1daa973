"""A small TCP forwarder: the only way a test "host" (a network namespace) reaches the shared
services, which listen on 127.0.0.1 of the machine and are never reconfigured.

One forwarder runs per host, on the host side of that host's veth pair: it listens on the
veth's host address, on the same port numbers as the services (so a URL changes only its
address), and copies bytes both ways to 127.0.0.1. Because it listens only on that veth's
address, taking the veth down cuts the host off from everything at once: PostgreSQL, Redis,
SQS and the carriers. The forwarder does not notice a cut, as a real network would not: its
connections stay open and resume if the link comes back before TCP gives up.

An end of stream on one side is passed on as a half-close (``write_eof``) and the connection
is closed on both sides once both directions have ended, or at once when one side fails.

Run as its own process so that its copying never competes with the test process for the GIL:

    python -m tests.multihost.forwarder --listen 10.213.77.1 --port 5432 --port 6379 ...

It prints ``forwarding <address> <ports>`` once every listener is bound and stops on SIGTERM or
SIGINT, closing every connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

TARGET_HOST = "127.0.0.1"
CHUNK = 65536


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then half-close the other side."""
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


class Forwarder:
    """Listeners on ``listen``:``port`` for each port, each forwarding to 127.0.0.1:``port``."""

    def __init__(self, *, listen: str, ports: Sequence[int]) -> None:
        self.listen = listen
        self.ports = list(ports)
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for port in self.ports:
            server = await asyncio.start_server(
                lambda r, w, port=port: self._accept(r, w, port),  # type: ignore[misc]
                host=self.listen,
                port=port,
                reuse_address=True,
            )
            self._servers.append(server)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    async def _accept(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter, port: int
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(TARGET_HOST, port)
            both = [
                asyncio.create_task(_copy(client_reader, upstream_writer)),
                asyncio.create_task(_copy(upstream_reader, client_writer)),
            ]
            try:
                # Both directions must end (a half-close is passed on, not treated as the end);
                # the first failure ends the connection.
                _, pending = await asyncio.wait(both, return_when=asyncio.FIRST_EXCEPTION)
                for copy in pending:
                    copy.cancel()
                await asyncio.gather(*both, return_exceptions=True)
            except asyncio.CancelledError:
                for copy in both:
                    copy.cancel()
                await asyncio.gather(*both, return_exceptions=True)
                raise
        except OSError:
            pass  # the service refused or the peer reset: close both sides below
        finally:
            for writer in (client_writer, upstream_writer):
                if writer is not None:
                    writer.close()
                    with contextlib.suppress(OSError, asyncio.CancelledError):
                        await writer.wait_closed()
            if task is not None:
                self._connections.discard(task)


async def _serve(listen: str, ports: Sequence[int]) -> None:
    forwarder = Forwarder(listen=listen, ports=ports)
    await forwarder.start()
    print(f"forwarding {listen} {','.join(map(str, ports))}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await forwarder.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.multihost.forwarder")
    parser.add_argument("--listen", required=True, help="the veth's host-side address")
    parser.add_argument("--port", type=int, action="append", required=True, dest="ports")
    options = parser.parse_args(argv)
    asyncio.run(_serve(options.listen, options.ports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
