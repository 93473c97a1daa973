"""``manage.py preview_bulk_change`` — the same arguments as ``create_bulk_change``: a dry run of
that request against the carrier (reads only). Prints the preview id as the last token, or with
``--wait`` waits for it (the qcluster reads it) and prints the verdict counts."""

from __future__ import annotations

import getpass
import time
from typing import Any

from django.core.management.base import CommandError, CommandParser

from bulkchanges.devicelists import DeviceListError
from bulkchanges.errors import ApplicationError
from bulkchanges.management.commands.create_bulk_change import Command as CreateCommand
from bulkchanges.models import Preview, PreviewDevice
from bulkchanges.services.previews import preview_create, preview_progress


def preview_wait(preview_id: int, *, timeout: float) -> Preview:
    """The preview once DONE or ERROR; CommandError naming its progress after ``timeout``
    seconds (the preview goes on in the background)."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        preview = Preview.objects.get(pk=preview_id)
        if preview.status in Preview.TERMINAL:
            return preview
        if time.monotonic() >= deadline:
            progress = preview_progress(preview_id=preview_id)
            raise CommandError(
                f"preview {preview_id} is still {preview.status} after {timeout:g} s "
                f"({progress.read} of {progress.total} read); is a qcluster running?"
            )
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def verdict_lines(preview: Preview) -> list[str]:
    """ "would change: 12", one line per verdict some device has."""
    counts = preview_progress(preview_id=preview.pk).counts
    return [f"{PreviewDevice.Verdict(v).label}: {n}" for v, n in counts.items()]


class Command(CreateCommand):
    help = (
        "Preview (dry run) a status-update bulk change: read each device's status from the "
        "carrier, no write; the same arguments as create_bulk_change."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--wait", action="store_true", help="wait and print the verdicts")
        parser.add_argument("--timeout", type=float, default=600, help="seconds --wait waits")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["request_id"]:
            raise CommandError("--request-id names a bulk change; a preview takes none")
        try:
            tenant, parsed, validated = self.read_request(options)
            preview = preview_create(
                tenant=tenant,
                actor=f"cli:{getpass.getuser()}",
                validated=validated,
                devices=parsed.devices,
            )
        except (OSError, DeviceListError, ApplicationError) as error:
            raise CommandError(str(error)) from None
        self.report_rejected(parsed)
        if not options["wait"]:
            self.stdout.write(f"reading {len(parsed.devices)} devices; preview {preview.pk}")
            return
        preview = preview_wait(preview.pk, timeout=options["timeout"])
        if preview.status == Preview.Status.ERROR:
            raise CommandError(f"preview {preview.pk} failed: {preview.error_text}")
        for line in verdict_lines(preview):
            self.stdout.write(line)
        self.stdout.write(f"preview {preview.pk}")
