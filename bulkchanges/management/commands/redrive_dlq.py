"""``manage.py redrive_dlq [--max-messages N] [--dry-run]`` — move dead-lettered messages back
to the queue once the cause is fixed (``services.dead_letters``, which the console's
dead-letter page uses too)."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkchanges import sqs
from bulkchanges.services.dead_letters import dead_letters_redrive


class Command(BaseCommand):
    help = "Move messages from the dead-letter queue back to the bulk-change queue."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-messages", type=int, default=10_000)
        parser.add_argument("--dry-run", action="store_true", help="count one batch only")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            moved = dead_letters_redrive(
                actor=f"cli:{getpass.getuser()}",
                max_messages=options["max_messages"],
                dry_run=options["dry_run"],
            )
        except (RuntimeError, sqs.SqsUnavailable) as error:
            raise CommandError(str(error)) from None
        verb = "would move at least" if options["dry_run"] else "moved"
        self.stdout.write(f"redrive: {verb} {len(moved.acted)} messages")
