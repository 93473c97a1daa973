"""Issue 13, replayed against the partner API: finding 2 (API half: a staff flag widened a
token to every tenant), finding 3 (tokens half: partner tokens were plaintext and listed in
full in the admin) and finding 5 (API half: invalid tokens were never throttled). Each is
refused now, with a clear message."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client

from bulkchanges.models import PartnerApiKey
from tests.api.conftest import (
    API,
    Partner,
    create_body,
    key_client,
    other_tenant,
    partner_key,
    partner_of,
)
from tests.conftest import PondWorld, iccids

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(pond_world: PondWorld) -> Partner:
    """Tenant A's partner, with a submit key."""
    return partner_of(pond_world)


def test_finding_2_a_staff_superuser_key_of_tenant_a_never_reaches_tenant_b(
    pond_world: PondWorld,
) -> None:
    other = other_tenant(pond_world)  # tenant B, with a bulk change
    staff = key_client(partner_key("ops", pond_world.tenant, staff=True, superuser=True))
    theirs = other.bulk_change.pk

    listed = staff.get(f"{API}/bulk-changes/").json()
    detail = staff.get(f"{API}/bulk-changes/{theirs}/")
    cancel = staff.post(f"{API}/bulk-changes/{theirs}/cancel/")
    create = staff.post(f"{API}/bulk-changes/", create_body(iccids(1), tenant=other.tenant.pk))
    rotate = staff.post(f"{API}/webhook-secret/", {"tenant": other.tenant.pk})

    assert listed["count"] == 0
    assert detail.status_code == cancel.status_code == 404
    assert (
        detail.json()["detail"] == cancel.json()["detail"] == f"bulk change {theirs} does not exist"
    )
    assert create.status_code == rotate.status_code == 404
    assert create.json()["detail"] == f"tenant {other.tenant.pk} does not exist"
    assert rotate.json()["detail"] == f"tenant {other.tenant.pk} does not exist"
    other.bulk_change.refresh_from_db()
    assert other.bulk_change.status != "CANCELLED"


def test_finding_3_partner_keys_are_stored_hashed_and_listed_nowhere(
    acme: Partner, admin_client: Client
) -> None:
    secret = acme.key.split(".", 1)[1]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {PartnerApiKey._meta.db_table}")  # noqa: S608
        stored = repr(cursor.fetchall())
    api_key = PartnerApiKey.objects.get()

    assert acme.key not in stored and secret not in stored
    assert api_key.hashed_key.startswith("sha512$$")
    assert admin_client.get("/admin/authtoken/tokenproxy/").status_code == 404
    for page in (
        "/admin/bulkchanges/partnerapikey/",
        f"/admin/bulkchanges/partnerapikey/{api_key.pk}/change/",
    ):
        response = admin_client.get(page)
        assert response.status_code == 200, page
        assert api_key.prefix in response.content.decode()
        assert secret not in response.content.decode(), page


def test_finding_5_bad_keys_from_one_address_are_throttled(acme: Partner, settings: Any) -> None:
    settings.PONDOPS_API_AUTH_FAILURE_RATE = "5/min"
    guesser = key_client(f"{acme.key[:9]}guess", REMOTE_ADDR="127.0.0.2")

    refusals = [guesser.get(f"{API}/bulk-changes/") for _ in range(6)]

    assert [response.status_code for response in refusals] == [401] * 5 + [429]
    assert refusals[0].json()["detail"] == "invalid API key"
    assert (
        refusals[-1]
        .json()["detail"]
        .startswith("too many failed API key authentications from your address.")
    )
    assert int(refusals[-1]["Retry-After"]) >= 1
    partner_elsewhere = key_client(acme.key, REMOTE_ADDR="127.0.0.3")
    assert partner_elsewhere.get(f"{API}/bulk-changes/").status_code == 200
