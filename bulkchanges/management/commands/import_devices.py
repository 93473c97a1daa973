"""``manage.py import_devices FILE --tenant NAME --integration X [--status CODE]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkchanges.devicelists import DeviceListError, parse_device_list
from bulkchanges.errors import ApplicationError
from bulkchanges.services.inventory import devices_import, tenant_get
from integrations.base import Integration


class Command(BaseCommand):
    help = "Load device inventory from a device list (CSV with iccid[,msisdn,eid] or bare ICCIDs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--tenant", required=True)
        parser.add_argument(
            "--integration", required=True, choices=Integration.values, type=str.upper
        )
        parser.add_argument("--status", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with Path(options["file"]).open("rb") as device_file:
                parsed = parse_device_list(device_file)
            tenant = tenant_get(name=options["tenant"])
            created, updated = devices_import(
                tenant=tenant,
                integration=options["integration"],
                devices=parsed.devices,
                status_code=options["status"],
            )
        except (OSError, DeviceListError, ApplicationError) as error:
            raise CommandError(str(error)) from None
        for line in parsed.rejected:
            self.stderr.write(str(line))
        if parsed.rejected_count > len(parsed.rejected):
            self.stderr.write(f"and {parsed.rejected_count - len(parsed.rejected):,} more lines")
        self.stdout.write(
            f"imported {created} new and {updated} existing devices; "
            f"skipped {parsed.malformed_count} malformed and "
            f"{parsed.duplicate_count} duplicate lines"
        )
