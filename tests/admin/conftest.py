"""Fixtures for the operations console's test-client tests: a tenant with POND and Rev.io
credentials (no carrier is called: nothing here is processed), bulk changes in any state,
and staff users with exactly the permissions a test names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client

from bulkchanges.models import (
    BulkChange,
    DeviceChange,
    IntegrationAuthentication,
    OperatorMembership,
    Tenant,
)
from bulkchanges.services import bulk_change_create, status_update_request_validate
from bulkchanges.types import DeviceRef
from integrations.rev_request import RevProduct, RevServiceRequest
from tests.conftest import iccids

POND_KEY = "pond-secret-key-7f3a9c"
REV_PASSWORD = "rev-secret-pw-51b2e8"


@dataclass
class Console:
    tenant: Tenant
    pond: IntegrationAuthentication
    rev: IntegrationAuthentication


@pytest.fixture
def console(device_statuses: None) -> Console:
    tenant = Tenant.objects.create(name="Acme IoT")
    pond = IntegrationAuthentication.objects.create(
        tenant=tenant,
        integration="POND",
        base_url="http://127.0.0.1:9/pond",
        account="1234",
        secret=POND_KEY,
    )
    rev = IntegrationAuthentication.objects.create(
        tenant=tenant,
        integration="REV",
        base_url="http://127.0.0.1:9/rev",
        account="ACME",
        username="ops",
        secret=REV_PASSWORD,
    )
    return Console(tenant, pond, rev)


def make_bulk_change(
    console: Console,
    count: int = 5,
    *,
    start: int = 0,
    status: str = "SUSPENDED",
    with_rev: bool = False,
    created_by: str = "test",
    device_statuses: Sequence[str] = (),
) -> BulkChange:
    """A POND bulk change created through the services; ``device_statuses`` then sets its
    first devices' statuses (terminal ones marked processed), as if workers had run."""
    rev = (
        RevServiceRequest(
            customer_id=42,
            service_type_id=7,
            integration_authentication_id=console.rev.pk,
            products=(RevProduct(product_id=55, rate=Decimal("4.50")),),
        )
        if with_rev
        else None
    )
    validated = status_update_request_validate(
        tenant=console.tenant, integration="POND", update_status=status, rev_service=rev
    )
    bulk_change, _ = bulk_change_create(
        tenant=console.tenant,
        created_by=created_by,
        validated=validated,
        devices=[DeviceRef(iccid=iccid) for iccid in iccids(count, start=start)],
    )
    ids = list(bulk_change.device_changes.order_by("id").values_list("pk", flat=True))
    for pk, device_status in zip(ids, device_statuses, strict=False):
        terminal = device_status in DeviceChange.TERMINAL
        DeviceChange.objects.filter(pk=pk).update(
            status=device_status,
            is_processed=terminal,
            last_error="HTTP 400 from POND: unknown ICCID" if device_status == "ERROR" else "",
        )
    return bulk_change


def credentials_form_data(row: IntegrationAuthentication, **changes: object) -> dict[str, object]:
    """What the credentials change page posts for ``row`` as stored (secret fields blank: keep
    the stored ones), with ``changes`` applied."""
    data: dict[str, object] = {
        "tenant": row.tenant_id,
        "integration": row.integration,
        "base_url": row.base_url,
        "account": row.account,
        "username": row.username,
        "client_id": row.client_id,
        "secret": "",
        "secret_2": "",
        "rate_limit": row.rate_limit,
        "max_concurrency": row.max_concurrency,
        "daily_action_budget": row.daily_action_budget,
        "writes_enabled": "on",
        "is_active": "on",
    }
    data.update(changes)
    return data


StaffFactory = Callable[..., Client]


@pytest.fixture
def staff_client(db: None) -> StaffFactory:
    """A logged-in staff client with only the named ``bulkchanges`` permissions, an operator
    of ``tenants`` (by default every tenant the test has made so far)."""

    def make(
        *codenames: str, username: str = "operator", tenants: Sequence[Tenant] | None = None
    ) -> Client:
        user = User.objects.create_user(username=username, password="pw", is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="bulkchanges", codename__in=codenames)
        )
        for tenant in Tenant.objects.all() if tenants is None else tenants:
            OperatorMembership.objects.create(user=user, tenant=tenant)
        client = Client()
        client.force_login(user)
        return client

    return make
