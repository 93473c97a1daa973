"""Tenants, credentials and the device inventory."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from django.db import transaction

from bulkchanges.errors import ApplicationError, NotFound
from bulkchanges.models import (
    CredentialsChange,
    Device,
    DeviceStatus,
    IntegrationAuthentication,
    Tenant,
)
from bulkchanges.tokens import token_store
from bulkchanges.types import DeviceRef
from integrations.base import (
    Integration,
    carrier_integrations,
    default_limits,
    integration_class,
    processor_class,
    secrets_to_reenter,
)

BATCH = 1000


def tenant_get(*, name: str, create: bool = False) -> Tenant:
    if create:
        tenant, _ = Tenant.objects.get_or_create(name=name)
        return tenant
    found = Tenant.objects.filter(name=name).first()
    if found is None:
        raise NotFound(f"tenant {name!r} does not exist (use --create-tenant to create it)")
    return found


SECRET_FIELDS = ("secret", "secret_2")
# What a credentials change records, old → new: every field an operator edits but the secrets
# (only whether they were typed); the callback registration's state is the service's own.
AUDITED_FIELDS = tuple(
    field.name
    for field in IntegrationAuthentication._meta.concrete_fields
    if field.editable
    and not field.primary_key
    and field.name not in (*SECRET_FIELDS, "callback_registration", "callback_registered_at")
)
# A change of these (or of a secret) is a new login: the carrier forgets the old one's state.
LOGIN_FIELDS = ("base_url", "username", "client_id")


def integration_authentication_set(
    *,
    tenant: Tenant,
    integration: str,
    actor: str,
    via: str = CredentialsChange.Via.COMMAND,
    account: str = "",
    secrets: Sequence[str] = (),
    **fields: Any,
) -> tuple[IntegrationAuthentication, bool]:
    """Create or update the credentials for (tenant, integration, account). Only the fields
    given change; secrets given replace the stored ones (an empty list keeps them). A new row
    needs a base URL and its secret, and starts at its carrier's documented limits unless they
    are given. Saved and audited by :func:`integration_authentication_save` (so a new base URL
    needs the secrets again)."""
    if integration not in Integration.values:
        raise ApplicationError(
            f"unknown integration {integration!r}; choose one of {', '.join(Integration.values)}"
        )
    fields = {name: value for name, value in fields.items() if value is not None}
    with transaction.atomic():
        row = (
            IntegrationAuthentication.objects.select_for_update()
            .filter(tenant=tenant, integration=integration, account=account)
            .first()
        )
        created = row is None
        if row is None:
            if not fields.get("base_url") or not secrets:
                raise ApplicationError("new credentials need --base-url and a secret on stdin")
            rate_limit, max_concurrency = default_limits(integration)
            row = IntegrationAuthentication(
                tenant=tenant,
                integration=integration,
                account=account,
                rate_limit=rate_limit,
                max_concurrency=max_concurrency,
            )
        for name, value in fields.items():
            setattr(row, name, value)
        reentered: list[str] = []
        if secrets:
            row.secret = secrets[0]
            row.secret_2 = secrets[1] if len(secrets) > 1 else ""
            reentered = list(SECRET_FIELDS[: len(secrets)])
        integration_authentication_save(row=row, actor=actor, via=via, reentered=reentered)
    return row, created


def base_url_change_problems(
    *, pk: int | None, integration: str, base_url: str, reentered: Collection[str]
) -> dict[str, list[str]]:
    """Field → message for each secret that must be typed again because row ``pk``'s base_url
    is changing to ``base_url`` (an operator who may edit the row but cannot read its secret
    must not send it elsewhere); empty when base_url is unchanged or the row is new."""
    stored = (
        IntegrationAuthentication.objects.filter(pk=pk).values(*SECRET_FIELDS, "base_url").first()
        if pk
        else None
    )
    if stored is None or stored["base_url"] == base_url:
        return {}
    missing = [
        name for name in secrets_to_reenter(integration, stored=stored) if name not in reentered
    ]
    return {
        name: [f"Changing base_url requires re-entering {name}: it is sent to the new host."]
        for name in missing
    }


def integration_authentication_save(
    *,
    row: IntegrationAuthentication,
    actor: str,
    via: str,
    reentered: Collection[str] = (),
) -> CredentialsChange | None:
    """Validate and save a credentials row as an operator changed it (admin, command, demo) and
    record the change: a :class:`CredentialsChange` with each non-secret field's old and new
    value and which secrets were re-entered (``reentered``: the secret fields typed in this
    change). A changed ``base_url`` needs every secret the integration sends typed again,
    else ApplicationError naming the fields. None when nothing changed."""
    with transaction.atomic():
        stored = (
            IntegrationAuthentication.objects.select_for_update().filter(pk=row.pk).first()
            if row.pk
            else None
        )
        row.full_clean()
        missing = base_url_change_problems(
            pk=row.pk, integration=row.integration, base_url=row.base_url, reentered=reentered
        )
        if missing:
            display = integration_class(row.integration).display_name
            raise ApplicationError(
                f"changing the {display} base_url requires re-entering "
                f"{' and '.join(missing)} (on stdin, one a line)",
                code="secret_required",
                fields=missing,
            )
        row.save()
        changes = {
            name: {"old": _audited(stored, name), "new": _audited(row, name)}
            for name in AUDITED_FIELDS
            if stored is None or _audited(stored, name) != _audited(row, name)
        }
        typed = [name for name in SECRET_FIELDS if name in reentered]
        if stored is not None and not changes and not typed:
            return None
        audit = CredentialsChange(
            credentials=row,
            actor=actor[:200],
            via=via,
            created=stored is None,
            changes=changes,
            secret_reentered="secret" in typed,
            secret_2_reentered="secret_2" in typed,
        )
        audit.save(force_insert=True)
    new_login = typed or any(name in changes for name in LOGIN_FIELDS)
    if stored is not None and new_login and row.integration in carrier_integrations():
        processor_class(row.integration).credentials_changed(
            credentials=row.as_credentials(), token_store=token_store
        )
    return audit


def credentials_change_summary(change: CredentialsChange) -> str:
    """ "base_url: https://a → https://b; secret re-entered": how the console shows a change."""
    if change.created:  # the values set (the empty ones are the defaults)
        parts = [
            f"{name}: {values['new']}"
            for name, values in change.changes.items()
            if values["new"] not in ("", None)
        ]
    else:
        parts = [
            f"{name}: {values['old']} → {values['new']}" for name, values in change.changes.items()
        ]
    parts += [
        f"{name} re-entered"
        for name, typed in (
            ("secret", change.secret_reentered),
            ("secret_2", change.secret_2_reentered),
        )
        if typed
    ]
    return "; ".join(parts) or "-"


def _audited(row: IntegrationAuthentication | None, name: str) -> Any:
    """A field's value as the audit records it (a URL's query values are not kept: they may
    carry a token)."""
    if row is None:
        return None
    if name == "tenant":
        return row.tenant_id
    value = getattr(row, name)
    if name.endswith("_url") and "?" in value:
        return value.split("?", 1)[0] + "?…"
    return value


def devices_import(
    *, tenant: Tenant, integration: str, devices: Sequence[DeviceRef], status_code: str = ""
) -> tuple[int, int]:
    """Upsert inventory rows; returns (created, updated)."""
    status = None
    if status_code:
        status = DeviceStatus.objects.filter(
            integration=integration, code__iexact=status_code
        ).first()
        if status is None:
            codes = ", ".join(
                DeviceStatus.objects.filter(integration=integration).values_list("code", flat=True)
            )
            raise ApplicationError(
                f"no {integration} status {status_code!r}; choose one of {codes}"
            )
    created = updated = 0
    for start in range(0, len(devices), BATCH):
        batch = devices[start : start + BATCH]
        with transaction.atomic():
            existing = {
                device.iccid: device
                for device in Device.objects.filter(
                    integration=integration, iccid__in=[ref.iccid for ref in batch]
                )
            }
            new_rows = []
            for ref in batch:
                row = existing.get(ref.iccid)
                if row is None:
                    new_rows.append(
                        Device(
                            tenant=tenant,
                            integration=integration,
                            iccid=ref.iccid,
                            msisdn=ref.msisdn,
                            eid=ref.eid,
                            status=status,
                        )
                    )
                    continue
                if row.tenant_id != tenant.pk:
                    raise ApplicationError(f"ICCID {ref.iccid} belongs to another tenant")
                row.msisdn = ref.msisdn or row.msisdn
                row.eid = ref.eid or row.eid
                row.status = status or row.status
            Device.objects.bulk_create(new_rows)
            Device.objects.bulk_update(list(existing.values()), ["msisdn", "eid", "status"])
            created += len(new_rows)
            updated += len(existing)
    return created, updated
