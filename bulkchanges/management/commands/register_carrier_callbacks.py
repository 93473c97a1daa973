"""``manage.py register_carrier_callbacks`` — register (or deregister) PondOps as the
CarrierService callback listener of ThingSpace accounts."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkchanges.errors import ApplicationError
from bulkchanges.models import IntegrationAuthentication
from bulkchanges.services.callback_registration import (
    carrier_callback_deregister,
    carrier_callback_register,
)
from integrations.base import Integration


class Command(BaseCommand):
    help = (
        "Register PondOps' callback URL (CARRIER_CALLBACK_BASE_URL) as the CarrierService "
        "listener of ThingSpace accounts: every active ThingSpace credentials row, or those "
        "given. A listener registered to another URL is never replaced."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--credentials",
            type=int,
            action="append",
            metavar="ID",
            help="an IntegrationAuthentication id (repeatable; default: every active "
            "ThingSpace row)",
        )
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--deregister", action="store_true", help="remove the listener")
        mode.add_argument(
            "--rotate",
            action="store_true",
            help="generate a new callback user name and password before registering",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        rows = IntegrationAuthentication.objects.filter(integration=Integration.THINGSPACE)
        ids = options["credentials"]
        if ids:
            rows = rows.filter(pk__in=ids)
            missing = sorted(set(ids) - set(rows.values_list("pk", flat=True)))
            if missing:
                raise CommandError(
                    f"no ThingSpace credentials with id {', '.join(map(str, missing))}"
                )
        else:
            rows = rows.filter(is_active=True)
        failed = 0
        for credentials in rows.order_by("pk"):
            try:
                if options["deregister"]:
                    result = carrier_callback_deregister(credentials=credentials)
                else:
                    result = carrier_callback_register(
                        credentials=credentials, rotate=options["rotate"]
                    )
            except ApplicationError as error:
                if error.code == "callback_base_url_unset":
                    raise CommandError(str(error)) from None
                failed += 1
                self.stderr.write(str(error))
                continue
            self.stdout.write(result.message)
        if failed:
            raise CommandError(f"{failed} of {rows.count()} registrations failed")
