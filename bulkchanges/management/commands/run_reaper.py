"""``manage.py run_reaper [--interval S] [--once]`` — the recovery loop (reaper and webhook
sweep), one per host beside ``qcluster`` and ``poll_sqs``."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from bulkchanges.services.recovery import recovery_pass, recovery_run
from pondops.startup import command_preflight


class Command(BaseCommand):
    help = (
        "Run the reaper and the webhook sweep every BULKCHANGE_REAPER_INTERVAL_SECONDS until "
        "SIGTERM: expired leases, overdue retries and waits, stalled bulk changes, missed "
        "completions and webhook deliveries."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            help="seconds between passes (default BULKCHANGE_REAPER_INTERVAL_SECONDS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        command_preflight()
        if options["once"]:
            self.stdout.write(str(recovery_pass()))
            return
        stop = threading.Event()

        def finish(signum: int, frame: FrameType | None) -> None:
            self.stderr.write(f"run_reaper: signal {signum}, stopping after this pass")
            stop.set()

        signal.signal(signal.SIGTERM, finish)
        signal.signal(signal.SIGINT, finish)
        interval = options["interval"] or settings.BULKCHANGE_REAPER_INTERVAL_SECONDS
        self.stdout.write(f"run_reaper: a pass every {interval:g} s")
        self.stdout.flush()
        passes = recovery_run(stop=stop, interval=interval)
        self.stdout.write(f"run_reaper: stopped after {passes} passes")
