"""The audit log list: each row's device by ICCID, its bulk change (or preview), outcome,
answer, who and when (seconds); filters by bulk change, carrier, outcome and entry; ICCID
prefix search; 50 rows a page; a preview's rows shown within the operator's tenants."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    IntegrationAuthentication,
    Preview,
    Tenant,
)
from tests.admin.conftest import Console, StaffFactory, make_bulk_change

pytestmark = pytest.mark.django_db

LOG = reverse("admin:bulkchanges_bulkchangelog_changelist")


def write(bulk_change: BulkChange | None, **fields: object) -> BulkChangeLog:
    values: dict[str, object] = {
        "log_entry_description": "PUT /pond/status",
        "process_by": "worker:host-a/1",
        "processed_at": timezone.now(),
        **fields,
    }
    return BulkChangeLog.objects.create(bulk_change=bulk_change, **values)


def row_ids(client: Client, **params: str) -> list[int]:
    html = client.get(LOG, params).content.decode()
    return [int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', html)] or [
        int(pk) for pk in re.findall(r'href="/admin/bulkchanges/bulkchangelog/(\d+)/change/', html)
    ]


def test_a_row_names_its_device_by_iccid_and_shows_seconds(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 1)
    device = bulk_change.device_changes.get()
    moment = timezone.now().replace(microsecond=0) - timedelta(minutes=3)
    write(
        bulk_change,
        device_change=device,
        processed_at=moment,
        response_status=400,
        has_errors=True,
        error_text="HTTP 400 from POND: unknown ICCID",
        process_by="admin:alice",
    )

    html = admin_client.get(LOG).content.decode()

    page = reverse("admin:bulkchanges_devicechange_change", args=[device.pk])
    assert f'<a href="{page}" class="pondops-iccid">{device.iccid}</a>' in html  # not an id
    assert f'title="{moment:%Y-%m-%d %H:%M:%S} UTC">{moment:%Y-%m-%d %H:%M:%S} UTC</time>' in html
    assert "HTTP 400 from POND: unknown ICCID" in html and ">400<" in html
    assert "admin:alice" in html and "<h1>Audit log</h1>" in html


def test_filters_by_bulk_change_carrier_outcome_and_entry(
    admin_client: Client, console: Console
) -> None:
    pond = make_bulk_change(console, 1)
    other = make_bulk_change(console, 1, start=10)
    ok = write(pond, response_status=200)
    failed = write(
        pond, has_errors=True, error_text="boom", log_entry_description="Retry scheduled"
    )
    elsewhere = write(other, response_status=200)

    assert set(row_ids(admin_client, bulk_change=str(pond.pk))) == {ok.pk, failed.pk}
    assert set(row_ids(admin_client, has_errors="1")) == {failed.pk}
    assert set(row_ids(admin_client, has_errors="0")) == {ok.pk, elsewhere.pk}
    assert set(row_ids(admin_client, carrier="POND")) == {ok.pk, failed.pk, elsewhere.pk}
    assert row_ids(admin_client, carrier="JASPER") == []
    assert row_ids(admin_client, log_entry_description="Retry scheduled") == [failed.pk]
    sidebar = admin_client.get(LOG).content.decode().split('id="changelist-filter"')[1]
    for heading in ("By bulk change", "By carrier", "By outcome"):
        assert heading in sidebar or heading.lower() in sidebar.lower(), heading
    assert "Rev.io" not in sidebar


def test_search_finds_rows_by_the_start_of_an_iccid(admin_client: Client, console: Console) -> None:
    bulk_change = make_bulk_change(console, 2)
    first, second = bulk_change.device_changes.order_by("id")
    mine = write(bulk_change, device_change=first)
    write(bulk_change, device_change=second)

    assert row_ids(admin_client, q=first.iccid) == [mine.pk]
    assert len(row_ids(admin_client, q=first.iccid[:6])) == 2
    assert row_ids(admin_client, q="not-a-number") == []


def test_fifty_rows_a_page_newest_first(admin_client: Client, console: Console) -> None:
    bulk_change = make_bulk_change(console, 1)
    start = timezone.now() - timedelta(hours=1)
    rows = BulkChangeLog.objects.bulk_create(
        BulkChangeLog(
            bulk_change=bulk_change,
            log_entry_description=f"call {n}",
            process_by="worker:host-a/1",
            processed_at=start + timedelta(seconds=n),
        )
        for n in range(120)
    )
    newest = sorted(rows, key=lambda row: row.processed_at, reverse=True)

    first = row_ids(admin_client)
    third = row_ids(admin_client, p="3")

    assert first == [row.pk for row in newest[:50]]
    assert third == [row.pk for row in newest[100:]]


def test_a_previews_rows_show_the_preview_within_the_operators_tenants(
    staff_client: StaffFactory, console: Console
) -> None:
    preview = Preview.objects.create(
        tenant=console.tenant,
        integration="POND",
        integration_authentication=console.pond,
        created_by="admin:alice",
    )
    row = write(None, preview=preview, log_entry_description="GET /pond/status")
    outsider_tenant = Tenant.objects.create(name="Other")
    other_preview = Preview.objects.create(
        tenant=outsider_tenant,
        integration="POND",
        integration_authentication=IntegrationAuthentication.objects.create(
            tenant=outsider_tenant, integration="POND", base_url="http://127.0.0.1:9", account="9"
        ),
        created_by="admin:bob",
    )
    hidden = write(None, preview=other_preview)
    operator = staff_client("view_bulkchangelog", tenants=[console.tenant])

    html = operator.get(LOG).content.decode()

    assert f"preview {preview.pk}" in html
    assert row_ids(operator) == [row.pk]
    assert (
        operator.get(
            reverse("admin:bulkchanges_bulkchangelog_change", args=[hidden.pk])
        ).status_code
        == 404
    )
    assert (
        operator.get(reverse("admin:bulkchanges_bulkchangelog_change", args=[row.pk])).status_code
        == 200
    )
