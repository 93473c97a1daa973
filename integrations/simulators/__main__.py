"""Command line: serve the simulators in the foreground.

``python -m integrations.simulators --host 127.0.0.1 --port 8765 [--latency-ms N] [--verbose]``
"""

from __future__ import annotations

import argparse
import sys

from .runner import run_until_signalled
from .server import DEFAULT_HOST, NonLoopbackHostError

DEFAULT_PORT = 8765


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m integrations.simulators",
        description="Serve the carrier and Rev.io simulators on a loopback port.",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help="loopback address (default %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="default %(default)s; 0 = any free port"
    )
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="latency added to every carrier request"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    options = parser.parse_args(argv)
    try:
        run_until_signalled(
            host=options.host,
            port=options.port,
            latency_ms=options.latency_ms,
            verbose=options.verbose,
            announce=lambda line: print(line, flush=True),
        )
    except (NonLoopbackHostError, OSError) as error:
        print(f"simulators: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
