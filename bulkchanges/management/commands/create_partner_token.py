"""``manage.py create_partner_token`` — an API token for a partner user bound to one tenant;
prints the token as the last token of its output."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkchanges.errors import ApplicationError
from bulkchanges.services.inventory import tenant_get
from bulkchanges.services.partners import partner_token_issue


class Command(BaseCommand):
    help = (
        "Create (or show) the partner API token of a user bound to a tenant. The user sees only "
        "that tenant's bulk changes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--tenant", required=True, help="the tenant's name")
        parser.add_argument(
            "--create-user", action="store_true", help="create the user (no password)"
        )
        parser.add_argument(
            "--rotate", action="store_true", help="replace an existing token with a new one"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = tenant_get(name=options["tenant"])
            key, created = partner_token_issue(
                username=options["username"],
                tenant=tenant,
                create_user=options["create_user"],
                rotate=options["rotate"],
            )
        except ApplicationError as error:
            raise CommandError(str(error)) from None
        user = "created user" if created else "user"
        self.stdout.write(f"{user} {options['username']} (tenant {tenant.name}): token {key}")
