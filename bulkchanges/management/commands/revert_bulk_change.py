"""``manage.py revert_bulk_change ID [--dry-run] [--timeout S]`` — preview the revert of a
finished bulk change (each changed device read, back to its previous status), print what would
be reverted, left out and not undone (Rev.io services), then — unless ``--dry-run`` — create
the revert: one bulk change per previous status, whose ids end the output."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkchanges.errors import ApplicationError
from bulkchanges.management.commands.preview_bulk_change import preview_wait, verdict_lines
from bulkchanges.models import Preview, PreviewDevice
from bulkchanges.services import bulk_change_get
from bulkchanges.services.reverts import revert_create, revert_preview_create


class Command(BaseCommand):
    help = "Revert a finished bulk change: set each device it changed back to its previous status."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("bulk_change_id", type=int)
        parser.add_argument(
            "--dry-run", action="store_true", help="preview only: create no bulk change"
        )
        parser.add_argument("--timeout", type=float, default=600, help="seconds to wait")

    def handle(self, *args: Any, **options: Any) -> None:
        actor = f"cli:{getpass.getuser()}"
        try:
            bulk_change = bulk_change_get(bulk_change_id=options["bulk_change_id"])
            preview = revert_preview_create(bulk_change=bulk_change, actor=actor)
        except ApplicationError as error:
            raise CommandError(error.detail) from None
        preview = preview_wait(preview.pk, timeout=options["timeout"])
        if preview.status == Preview.Status.ERROR:
            raise CommandError(f"revert preview {preview.pk} failed: {preview.error_text}")
        self.stdout.write(f"revert preview {preview.pk} of bulk change {bulk_change.pk}:")
        for line in verdict_lines(preview):
            self.stdout.write(f"  {line}")
        services = [
            str(service_id)
            for service_id in preview.devices.values_list("rev_service_id", flat=True)
            if service_id is not None
        ]
        if services:
            self.stdout.write(f"Rev.io services not undone: {', '.join(services)}")
        for device in preview.devices.exclude(verdict__in=(PreviewDevice.Verdict.WOULD_CHANGE, ""))[
            :20
        ]:
            self.stdout.write(f"  left out {device.iccid}: {device.message}")
        if options["dry_run"]:
            self.stdout.write("dry run: no bulk change created")
            return
        try:
            created = revert_create(preview=preview, actor=actor)
        except ApplicationError as error:
            raise CommandError(error.detail) from None
        for revert in created:
            self.stdout.write(
                f"bulk change {revert.pk}: {revert.device_changes.count()} devices back to "
                f"{revert.request['UpdateStatus']}"
            )
        self.stdout.write("reverted by " + " ".join(str(revert.pk) for revert in created))
