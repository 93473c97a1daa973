"""Scoping: every endpoint answers 404 — never 403 — for another tenant's bulk change, exactly
as for an id that does not exist, and leaves it untouched; for a partner's key and for a key
whose user is staff and superuser alike (a staff flag never widens a key's tenant)."""

from __future__ import annotations

from typing import Any

import pytest

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from tests.api.conftest import (
    API,
    Other,
    Partner,
    create_body,
    fail_devices,
    key_client,
    partner_key,
)
from tests.conftest import iccids

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["partner", "staff superuser"])
def partner(request: pytest.FixtureRequest, partner: Partner) -> Partner:
    """Every test here runs with the tenant's partner key, then with a key of the same tenant
    whose user is staff and superuser."""
    if request.param == "partner":
        return partner
    key = partner_key("ops", partner.tenant, staff=True, superuser=True)
    return Partner(partner.world, key_client(key), key)


PROBES = [
    ("get", "bulk-changes/{id}/", None),
    ("get", "bulk-changes/{id}/devices/", None),
    ("get", "bulk-changes/{id}/devices/?status=ERROR", None),
    ("get", "bulk-changes/{id}/logs/", None),
    ("get", "bulk-changes/{id}/export.csv", None),
    ("post", "bulk-changes/{id}/retry/", {}),
    ("post", "bulk-changes/{id}/retry/", {"device_change_ids": "device"}),
    ("post", "bulk-changes/{id}/cancel/", None),
]


@pytest.mark.parametrize(("method", "path", "body"), PROBES)
def test_another_tenants_bulk_change_is_404_like_a_missing_one(
    partner: Partner, other: Other, method: str, path: str, body: Any
) -> None:
    theirs = other.bulk_change
    fail_devices(theirs, 1)
    if body and body.get("device_change_ids") == "device":
        body = {"device_change_ids": [DeviceChange.objects.filter(bulk_change=theirs).first().pk]}  # type: ignore[union-attr]
    before = (
        list(BulkChange.objects.values_list("pk", "status")),
        list(DeviceChange.objects.values_list("pk", "status")),
        BulkChangeLog.objects.count(),
    )

    probe = getattr(partner.client, method)(f"{API}/{path.format(id=theirs.pk)}", body)
    missing = getattr(partner.client, method)(f"{API}/{path.format(id=theirs.pk + 1000)}", body)

    assert probe.status_code == missing.status_code == 404, probe.content
    assert probe.json()["code"] == missing.json()["code"] == "not_found"
    assert probe.json()["detail"] == f"bulk change {theirs.pk} does not exist"
    after = (
        list(BulkChange.objects.values_list("pk", "status")),
        list(DeviceChange.objects.values_list("pk", "status")),
        BulkChangeLog.objects.count(),
    )
    assert after == before
    # …while the owner can see it.
    assert getattr(other.client, method)(
        f"{API}/{path.format(id=theirs.pk)}", body
    ).status_code in (
        200,
        409,
    )


def test_another_tenants_device_ids_are_404_in_my_retry(partner: Partner, other: Other) -> None:
    from tests.conftest import create_bulk_change

    mine = create_bulk_change(partner.world, iccids(2), with_rev=False)
    fail_devices(mine, 2)
    fail_devices(other.bulk_change, 3)
    theirs = list(
        DeviceChange.objects.filter(bulk_change=other.bulk_change).values_list("pk", flat=True)
    )

    response = partner.client.post(
        f"{API}/bulk-changes/{mine.pk}/retry/", {"device_change_ids": theirs[:1]}
    )

    assert response.status_code == 404
    assert DeviceChange.objects.get(pk=theirs[0]).status == "ERROR"


def test_list_never_shows_another_tenants_bulk_changes(partner: Partner, other: Other) -> None:
    response = partner.client.get(f"{API}/bulk-changes/", {"page_size": 500})
    assert response.json()["count"] == 0
    assert other.client.get(f"{API}/bulk-changes/").json()["count"] == 1


def test_another_tenants_credentials_are_refused_on_create(partner: Partner, other: Other) -> None:
    response = partner.client.post(
        f"{API}/bulk-changes/", create_body(iccids(1), credentials=other.credentials.pk)
    )
    assert response.status_code == 400 and "credentials" in response.json()["fields"]
    assert "Globex" not in response.json()["detail"]
    rev = partner.client.post(
        f"{API}/bulk-changes/",
        create_body(
            iccids(1),
            rev_service={
                "customer_id": 1,
                "service_type_id": 1,
                "credentials": other.credentials.pk,
            },
        ),
    )
    assert rev.status_code == 400 and "rev_service" in rev.json()["fields"]


def test_the_webhook_secret_of_another_tenant_cannot_be_rotated(
    partner: Partner, other: Other
) -> None:
    secret = other.tenant.webhook_secret
    response = partner.client.post(f"{API}/webhook-secret/", {"tenant": other.tenant.pk})
    assert response.status_code == 404
    other.tenant.refresh_from_db()
    assert other.tenant.webhook_secret == secret
