"""``manage.py create_partner_token`` — issue, list and revoke partner API keys.

Issuing prints the key once, as the last token of its output: only its hash is stored, so it
cannot be shown again. ``--list`` shows prefixes, never keys; ``--revoke PREFIX`` revokes one
for good."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bulkchanges.errors import ApplicationError
from bulkchanges.models import PartnerApiKey
from bulkchanges.selectors import partner_api_keys_list
from bulkchanges.services.inventory import tenant_get
from bulkchanges.services.partners import partner_token_issue, partner_token_revoke

ACTOR = "command:create_partner_token"


class Command(BaseCommand):
    help = (
        "Issue a partner API key (Authorization: Api-Key <key>) for a user bound to a tenant, "
        "printed once; or --list the keys (prefixes only), or --revoke PREFIX."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", help="the partner user the key acts for")
        parser.add_argument("--tenant", help="the tenant's name")
        parser.add_argument(
            "--role",
            choices=PartnerApiKey.Role.values,
            default=PartnerApiKey.Role.SUBMIT,
            help="read: read only; submit (default): read, create and act; approve: also "
            "approve others' bulk changes",
        )
        parser.add_argument("--name", default="", help="what the key is for (shown in lists)")
        parser.add_argument(
            "--expires-in-days", type=int, help="the key stops working after this many days"
        )
        parser.add_argument(
            "--create-user", action="store_true", help="create the user (no password)"
        )
        parser.add_argument(
            "--rotate", action="store_true", help="revoke the user's other keys once issued"
        )
        parser.add_argument("--revoke", metavar="PREFIX", help="revoke the key with this prefix")
        parser.add_argument(
            "--list", action="store_true", help="list keys (of --tenant, if given); no secrets"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["revoke"]:
                self._revoke(options["revoke"])
            elif options["list"]:
                self._list(options["tenant"])
            else:
                self._issue(options)
        except ApplicationError as error:
            raise CommandError(str(error)) from None

    def _issue(self, options: dict[str, Any]) -> None:
        if not options["username"] or not options["tenant"]:
            raise CommandError("--username and --tenant are required to issue a key")
        tenant = tenant_get(name=options["tenant"])
        issued = partner_token_issue(
            username=options["username"],
            tenant=tenant,
            created_by=ACTOR,
            role=options["role"],
            name=options["name"],
            expires_in_days=options["expires_in_days"],
            create_user=options["create_user"],
            rotate=options["rotate"],
        )
        api_key = issued.api_key
        user = "created user" if issued.user_created else "user"
        expires = api_key.expiry_date.isoformat() if api_key.expiry_date else "never"
        self.stdout.write(
            f"{user} {options['username']} (tenant {tenant.name}), role {api_key.role}, "
            f"prefix {api_key.prefix}, expires {expires}"
        )
        self.stdout.write("Store the key now: it is shown only once (only its hash is kept).")
        self.stdout.write(f"key {issued.key}")

    def _revoke(self, prefix: str) -> None:
        api_key = partner_token_revoke(prefix=prefix, actor=ACTOR)
        self.stdout.write(f"revoked {api_key.prefix} ({api_key.name}, tenant {api_key.tenant})")

    def _list(self, tenant_name: str | None) -> None:
        tenant = tenant_get(name=tenant_name) if tenant_name else None
        for api_key in partner_api_keys_list(tenant=tenant):
            state = "revoked" if api_key.revoked else "expired" if api_key.has_expired else "active"
            last_used = api_key.last_used_at.isoformat() if api_key.last_used_at else "never"
            expires = api_key.expiry_date.isoformat() if api_key.expiry_date else "never"
            self.stdout.write(
                f"{api_key.prefix}  {state:7}  {api_key.role:7}  tenant={api_key.tenant.name}  "
                f"user={api_key.user.get_username()}  expires={expires}  "
                f"last_used={last_used}  name={api_key.name}"
            )
