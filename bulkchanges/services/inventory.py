"""Tenants, credentials and the device inventory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction

from bulkchanges.errors import ApplicationError, NotFound
from bulkchanges.models import Device, DeviceStatus, IntegrationAuthentication, Tenant
from bulkchanges.tokens import token_store
from bulkchanges.types import DeviceRef
from integrations.base import Integration, carrier_integrations, default_limits, processor_class

BATCH = 1000


def tenant_get(*, name: str, create: bool = False) -> Tenant:
    if create:
        tenant, _ = Tenant.objects.get_or_create(name=name)
        return tenant
    found = Tenant.objects.filter(name=name).first()
    if found is None:
        raise NotFound(f"tenant {name!r} does not exist (use --create-tenant to create it)")
    return found


def integration_authentication_set(
    *,
    tenant: Tenant,
    integration: str,
    account: str = "",
    secrets: Sequence[str] = (),
    **fields: Any,
) -> tuple[IntegrationAuthentication, bool]:
    """Create or update the credentials for (tenant, integration, account). Only the fields
    given change; secrets given replace the stored ones (an empty list keeps them). A new row
    needs a base URL and its secret, and starts at its carrier's documented limits unless they
    are given. When what identifies the login changed, the carrier
    forgets state kept for the old credentials (ThingSpace's tokens and login lockout)."""
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
        changed = (
            created
            or bool(secrets)
            or any(
                getattr(row, name) != value
                for name, value in fields.items()
                if name in ("base_url", "username", "client_id")
            )
        )
        for name, value in fields.items():
            setattr(row, name, value)
        if secrets:
            row.secret = secrets[0]
            row.secret_2 = secrets[1] if len(secrets) > 1 else ""
        row.full_clean()
        row.save()
    if changed and not created and integration in carrier_integrations():
        processor_class(integration).credentials_changed(
            credentials=row.as_credentials(), token_store=token_store
        )
    return row, created


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
