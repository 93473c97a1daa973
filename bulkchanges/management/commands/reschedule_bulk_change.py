"""``manage.py reschedule_bulk_change ID --scheduled-for T`` — move a bulk change that has not
started (SCHEDULED or AWAITING_APPROVAL) to another time; now releases it at once."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkchanges.errors import ApplicationError
from bulkchanges.management.commands._moments import moment_parse
from bulkchanges.services import bulk_change_get
from bulkchanges.services.scheduling import bulk_change_reschedule


class Command(BaseCommand):
    help = "Reschedule a scheduled (or awaiting approval) bulk change."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("bulk_change_id", type=int)
        parser.add_argument(
            "--scheduled-for",
            required=True,
            help="the new start, ISO 8601 with a UTC offset (e.g. 2026-12-02T18:00:00+00:00)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            scheduled_for = moment_parse(options["scheduled_for"])
            bulk_change = bulk_change_reschedule(
                bulk_change=bulk_change_get(bulk_change_id=options["bulk_change_id"]),
                actor=f"cli:{getpass.getuser()}",
                scheduled_for=scheduled_for,
            )
        except ApplicationError as error:
            raise CommandError(str(error)) from None
        when = bulk_change.scheduled_for.isoformat() if bulk_change.scheduled_for else "-"
        self.stdout.write(
            f"bulk change {bulk_change.pk}: {bulk_change.status}, scheduled for {when}"
        )
