"""``manage.py retry_bulk_change ID [--device ID …] [--include-stuck | --resubmit] [--dry-run]``."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkchanges.errors import ApplicationError
from bulkchanges.services import bulk_change_get, bulk_change_retry


class Command(BaseCommand):
    help = "Re-queue a bulk change's failed (or stuck) devices with a fresh RetryNumber."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("bulk_change_id", type=int)
        parser.add_argument(
            "--device",
            type=int,
            action="append",
            dest="devices",
            help="a device change id (repeatable); default: every ERROR device",
        )
        parser.add_argument(
            "--include-stuck",
            action="store_true",
            help="also expired leases, overdue retries, PENDING without progress",
        )
        parser.add_argument(
            "--resubmit",
            action="store_true",
            help="submit again the ERROR devices whose carrier request was accepted but never "
            "confirmed (check the carrier first); a plain retry confirms the old request",
        )
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["include_stuck"] and options["resubmit"]:
            raise CommandError("--resubmit takes ERROR devices only; drop --include-stuck")
        actor = f"cli:{getpass.getuser()}"
        try:
            bulk_change = bulk_change_get(bulk_change_id=options["bulk_change_id"])
            ids = bulk_change_retry(
                bulk_change=bulk_change,
                actor=actor,
                device_change_ids=options["devices"],
                include_stuck=options["include_stuck"],
                resubmit=options["resubmit"],
                dry_run=options["dry_run"],
            )
        except ApplicationError as error:
            raise CommandError(str(error)) from None
        verb = "would re-queue" if options["dry_run"] else "re-queued"
        listed = " ".join(str(pk) for pk in ids) or "-"
        self.stdout.write(f"bulk change {bulk_change.pk}: {verb} {len(ids)} devices: {listed}")
