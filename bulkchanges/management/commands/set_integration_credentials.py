"""``manage.py set_integration_credentials`` — create or update carrier/Rev.io credentials.
Secrets are read from standard input, one a line, never from argv."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkchanges.errors import ApplicationError
from bulkchanges.services.inventory import integration_authentication_set, tenant_get
from integrations.base import Integration


class Command(BaseCommand):
    help = (
        "Create or update an IntegrationAuthentication. Secrets on stdin, one a line: the API "
        "key or password; for ThingSpace the OAuth client secret, then the UWS password. "
        "--base-url must be https and one of the integration's known origins (or of "
        "PONDOPS_CARRIER_EXTRA_ORIGINS); changing it needs the secrets on stdin again. Every "
        "change is audited."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True)
        parser.add_argument(
            "--integration", required=True, choices=Integration.values, type=str.upper
        )
        parser.add_argument("--base-url")
        parser.add_argument("--username")
        parser.add_argument("--account", default="")
        parser.add_argument("--client-id")
        parser.add_argument("--rate-limit", type=float)
        parser.add_argument("--concurrency", type=int)
        parser.add_argument("--daily-budget", type=int)
        writes = parser.add_mutually_exclusive_group()
        writes.add_argument(
            "--writes-enabled", action="store_true", default=None, dest="writes_enabled"
        )
        writes.add_argument("--writes-disabled", action="store_false", dest="writes_enabled")
        parser.add_argument("--create-tenant", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        secrets = (
            []
            if sys.stdin is None or sys.stdin.isatty()
            else [line.rstrip("\r\n") for line in sys.stdin.read().splitlines() if line.strip()]
        )
        try:
            tenant = tenant_get(name=options["tenant"], create=options["create_tenant"])
            row, created = integration_authentication_set(
                tenant=tenant,
                integration=options["integration"],
                actor=_operating_system_user(),
                account=options["account"],
                secrets=secrets,
                base_url=options["base_url"],
                username=options["username"],
                client_id=options["client_id"],
                rate_limit=options["rate_limit"],
                max_concurrency=options["concurrency"],
                daily_action_budget=options["daily_budget"],
                writes_enabled=options["writes_enabled"],
            )
        except ApplicationError as error:
            raise CommandError(str(error)) from None
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        verb = "created" if created else "updated"
        self.stdout.write(f"{verb} {row.integration} credentials for {tenant.name}: {row.pk}")


def _operating_system_user() -> str:
    """Who ran the command, as the audit row names them."""
    try:
        return f"{getpass.getuser()} (shell)"
    except (KeyError, OSError):  # no user name for this uid (some containers)
        return "unknown (shell)"
