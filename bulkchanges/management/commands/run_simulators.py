"""``manage.py run_simulators --port N [--host 127.0.0.1] [--latency-ms N]``.

Runs the carrier simulators (``integrations.simulators``) in the foreground until SIGINT or
SIGTERM — the same server as ``python -m integrations.simulators``, for the local demo.
``-v 2`` logs every request.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.simulators.runner import run_until_signalled
from integrations.simulators.server import DEFAULT_HOST, NonLoopbackHostError


class Command(BaseCommand):
    help = "Serve the POND and Rev.io simulators on a loopback port until interrupted."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=DEFAULT_HOST, help="loopback address to bind")
        parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
        parser.add_argument(
            "--latency-ms", type=int, default=0, help="latency added to every carrier request"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        def announce(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        try:
            run_until_signalled(
                host=options["host"],
                port=options["port"],
                latency_ms=options["latency_ms"],
                verbose=options["verbosity"] >= 2,
                announce=announce,
            )
        except (NonLoopbackHostError, OSError) as error:
            raise CommandError(str(error)) from error
