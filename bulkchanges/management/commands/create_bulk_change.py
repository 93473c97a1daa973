"""``manage.py create_bulk_change`` — validate and queue a status-update bulk change exactly as
the admin and the API do (the same gates: ``--scheduled-for`` keeps it SCHEDULED, a
destructive target or a large list AWAITING_APPROVAL); prints the bulk change id as the last
token."""

from __future__ import annotations

import getpass
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkchanges.devicelists import DeviceListError, ParsedDeviceList, parse_device_list
from bulkchanges.errors import ApplicationError
from bulkchanges.management.commands._moments import moment_parse
from bulkchanges.models import BulkChange, Tenant
from bulkchanges.services import (
    bulk_change_create,
    credentials_resolve,
    status_update_request_validate,
)
from bulkchanges.services.bulk_changes import ValidatedRequest
from bulkchanges.services.inventory import tenant_get
from integrations.base import Integration
from integrations.rev_request import RevProduct, RevServiceRequest


class Command(BaseCommand):
    help = "Create and queue a status-update bulk change from a device list."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--integration", required=True, type=str.upper)
        parser.add_argument("--status", required=True, help="target status (carrier's name)")
        parser.add_argument("--iccids-file", required=True, help="a device list file, or -")
        parser.add_argument("--credentials", type=int)
        parser.add_argument("--ignore-current-status", action="store_true")
        parser.add_argument("--post-update-status")
        parser.add_argument("--account-number", default="")
        parser.add_argument("--service-plan")
        parser.add_argument("--mdn-zip-code")
        parser.add_argument("--reason-code")
        parser.add_argument("--rev-customer-id", type=int)
        parser.add_argument("--rev-service-type-id", type=int)
        parser.add_argument("--rev-provider-id", type=int)
        parser.add_argument("--rev-credentials", type=int)
        parser.add_argument("--rev-product-id", type=int, action="append", default=[])
        parser.add_argument("--rev-rate", action="append", default=[])
        parser.add_argument("--rev-package-id", type=int)
        parser.add_argument("--prorate", action="store_true")
        parser.add_argument("--request-id", help="idempotency key: a repeat prints the same id")
        parser.add_argument(
            "--scheduled-for",
            help="start at this time (ISO 8601 with a UTC offset), at most "
            "BULKCHANGE_MAX_SCHEDULE_DAYS ahead; SCHEDULED until then",
        )

    def read_request(
        self, options: dict[str, Any]
    ) -> tuple[Tenant, ParsedDeviceList, ValidatedRequest]:
        """The tenant, the parsed device list and the validated request the options name
        (``preview_bulk_change`` takes the same). Raises OSError, DeviceListError or
        ApplicationError."""
        tenant = tenant_get(name=options["tenant"])
        limit = settings.BULKCHANGE_MAX_DEVICES_PER_REQUEST
        if options["iccids_file"] == "-":
            parsed = parse_device_list(sys.stdin.buffer, max_devices=limit)
        else:
            with Path(options["iccids_file"]).open("rb") as device_file:
                parsed = parse_device_list(device_file, max_devices=limit)
        validated = status_update_request_validate(
            tenant=tenant,
            integration=options["integration"],
            update_status=options["status"],
            credentials_id=options["credentials"],
            is_ignore_current_status=options["ignore_current_status"],
            post_update_status=options["post_update_status"],
            account_number=options["account_number"],
            options={
                name: options[name]
                for name in ("service_plan", "mdn_zip_code", "reason_code")
                if options[name]
            },
            rev_service=self._rev_service(tenant, options),
        )
        return tenant, parsed, validated

    def report_rejected(self, parsed: ParsedDeviceList) -> None:
        """The skipped lines, on standard error."""
        for line in parsed.rejected:
            self.stderr.write(str(line))
        if parsed.rejected_count > len(parsed.rejected):
            self.stderr.write(f"and {parsed.rejected_count - len(parsed.rejected):,} more lines")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            scheduled_for = (
                moment_parse(options["scheduled_for"]) if options["scheduled_for"] else None
            )
            tenant, parsed, validated = self.read_request(options)
            bulk_change, created = bulk_change_create(
                tenant=tenant,
                created_by=f"cli:{getpass.getuser()}",
                validated=validated,
                devices=parsed.devices,
                idempotency_key=options["request_id"],
                scheduled_for=scheduled_for,
            )
        except (OSError, DeviceListError, ApplicationError) as error:
            raise CommandError(str(error)) from None
        self.report_rejected(parsed)
        if created:
            self.stdout.write(
                f"{_outcome(bulk_change, len(parsed.devices))} ({parsed.duplicate_count} "
                f"duplicates and {parsed.malformed_count} malformed lines skipped); bulk change "
                f"{bulk_change.pk}"
            )
        else:
            self.stdout.write(f"request id already used; existing bulk change {bulk_change.pk}")

    def _rev_service(self, tenant: Any, options: dict[str, Any]) -> RevServiceRequest | None:
        if options["rev_customer_id"] is None:
            return None
        if options["rev_service_type_id"] is None:
            raise ApplicationError("--rev-service-type-id is required with --rev-customer-id")
        if len(options["rev_product_id"]) != len(options["rev_rate"]):
            raise ApplicationError("give one --rev-rate for each --rev-product-id")
        try:
            products = tuple(
                RevProduct(product_id=product, rate=Decimal(rate))
                for product, rate in zip(
                    options["rev_product_id"], options["rev_rate"], strict=True
                )
            )
        except InvalidOperation:
            raise ApplicationError("--rev-rate must be a decimal number") from None
        rev_credentials = credentials_resolve(
            tenant=tenant, integration=Integration.REV, credentials_id=options["rev_credentials"]
        )
        return RevServiceRequest(
            customer_id=options["rev_customer_id"],
            service_type_id=options["rev_service_type_id"],
            integration_authentication_id=rev_credentials.pk,
            provider_id=options["rev_provider_id"],
            prorate=options["prorate"],
            package_id=options["rev_package_id"],
            products=products,
        )


def _outcome(bulk_change: BulkChange, devices: int) -> str:
    """What creation did with the devices, by the bulk change's first status."""
    if bulk_change.status == BulkChange.Status.AWAITING_APPROVAL:
        return (
            f"{devices} devices await approval in the console or the API, because "
            f"{bulk_change.approval_reason}"
        )
    if bulk_change.status == BulkChange.Status.SCHEDULED and bulk_change.scheduled_for:
        return f"scheduled {devices} devices for {bulk_change.scheduled_for.isoformat()}"
    return f"queued {devices} devices"
