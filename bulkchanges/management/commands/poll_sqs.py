"""``manage.py poll_sqs [--once] [--max-messages N]`` — the production SQS consumer. It stays
up through SQS and database outages (``consumer.SqsConsumer``) and stops within one batch or
backoff wait on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from bulkchanges.consumer import SqsConsumer
from pondops.startup import command_preflight


class Command(BaseCommand):
    help = "Long-poll the bulk-change SQS queue and hand each message to django-q2."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one receive, then exit")
        parser.add_argument("--max-messages", type=int, default=10, help="1-10 per receive")
        parser.add_argument(
            "--wait-seconds",
            type=int,
            default=None,
            help="long-poll wait (default BULKCHANGE_SQS_WAIT_SECONDS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        command_preflight()
        consumer = SqsConsumer(
            max_messages=options["max_messages"], wait_seconds=options["wait_seconds"]
        )

        def drain(signum: int, frame: FrameType | None) -> None:
            self.stderr.write(f"poll_sqs: signal {signum}, finishing the current batch")
            consumer.stop.set()

        signal.signal(signal.SIGTERM, drain)
        signal.signal(signal.SIGINT, drain)
        self.stdout.write(f"poll_sqs: polling {consumer.queue_url}")
        self.stdout.flush()
        stats = consumer.run(once=options["once"])
        self.stdout.write(
            f"poll_sqs: stopped; received {stats.received}, handed off {stats.handed_off}, "
            f"no-ops {stats.no_ops}, deferred {stats.deferred}, malformed {stats.malformed}, "
            f"outages {stats.outages}"
        )
