"""``manage.py cancel_bulk_change ID`` — cancel an open bulk change (scheduled, awaiting
approval or running), logged as ``cli:<user>``."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkchanges.errors import ApplicationError
from bulkchanges.services import bulk_change_cancel, bulk_change_get


class Command(BaseCommand):
    help = "Cancel an open bulk change: devices not yet sent to the carrier are cancelled."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("bulk_change_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            bulk_change = bulk_change_get(bulk_change_id=options["bulk_change_id"])
            outcome = bulk_change_cancel(bulk_change=bulk_change, actor=f"cli:{getpass.getuser()}")
        except ApplicationError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"bulk change {bulk_change.pk}: {outcome.status}. {outcome.describe()}")
