"""The bulk change list: badges (the new statuses' too), progress from one aggregate query per
page, error links, filters, search by id / ICCID / MSISDN, newest first, pagination, and the
live endpoint that rewrites its rows in place."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from bulkchanges.models import BulkChange, DeviceChange, IntegrationAuthentication, Tenant
from tests.admin.conftest import Console, make_bulk_change

pytestmark = pytest.mark.django_db

URL = reverse("admin:bulkchanges_bulkchange_changelist")


def listed_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<th class="field-id"><a href="[^"]+">(\d+)</a>', html)]


def test_the_list_shows_status_badge_progress_error_link_creator_and_age(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(
        console, 4, created_by="api:partner", device_statuses=["PROCESSED", "SKIPPED", "ERROR"]
    )

    html = admin_client.get(URL).content.decode()

    assert 'class="pondops-badge pondops-badge--queued" data-status="QUEUED"' in html
    assert 'data-done="3" data-total="4"' in html and ">3/4</span>" in html
    assert 'title="75% done: 1 pending, 1 processed, 1 skipped, 1 error"' in html
    errors_url = (
        f"/admin/bulkchanges/devicechange/?bulk_change={bulk_change.pk}&amp;status__exact=ERROR"
    )
    assert f'<a class="pondops-errors" href="{errors_url}">1</a>' in html
    assert "api:partner" in html
    assert "POND → SUSPENDED" in html and "Status update" in html
    assert "running " in html  # time to complete of an open bulk change


def test_progress_costs_one_aggregate_query_per_page_whatever_the_number_of_rows(
    admin_client: Client, console: Console
) -> None:
    def list_queries() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(URL).status_code == 200
        return [query["sql"] for query in queries.captured_queries]

    for n in range(3):
        make_bulk_change(console, 3, start=n * 10, device_statuses=["PROCESSED", "ERROR"])
    few = list_queries()
    for n in range(3, 30):
        make_bulk_change(console, 3, start=n * 10, device_statuses=["PROCESSED"])
    many = list_queries()

    assert len(many) == len(few)
    device_queries = [sql for sql in many if "bulkchanges_devicechange" in sql]
    assert len(device_queries) == 1, device_queries
    assert "GROUP BY" in device_queries[0].upper()


def test_the_list_is_newest_first_and_paginated(admin_client: Client, console: Console) -> None:
    created = [make_bulk_change(console, 1, start=n).pk for n in range(55)]

    first = listed_ids(admin_client.get(URL).content.decode())
    second = listed_ids(admin_client.get(URL, {"p": 2}).content.decode())

    assert first == sorted(created, reverse=True)[:50]
    assert second == sorted(created, reverse=True)[50:]


def test_filters_by_status_integration_tenant_and_created_date(
    admin_client: Client, console: Console
) -> None:
    queued = make_bulk_change(console, 1)
    done = make_bulk_change(console, 1, start=5)
    BulkChange.objects.filter(pk=done.pk).update(status="PROCESSED")
    other_tenant = Tenant.objects.create(name="Other")
    IntegrationAuthentication.objects.create(
        tenant=other_tenant, integration="POND", base_url="http://127.0.0.1:9", secret="k"
    )
    old = make_bulk_change(Console(other_tenant, console.pond, console.rev), 1, start=9)
    BulkChange.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    def ids(**params: str) -> list[int]:
        return listed_ids(admin_client.get(URL, params).content.decode())

    assert ids(status__exact="PROCESSED") == [done.pk]
    assert ids(carrier="POND") == [old.pk, done.pk, queued.pk]
    assert ids(carrier="JASPER") == []
    assert ids(tenant__id__exact=str(other_tenant.pk)) == [old.pk]
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    past_7_days = {  # what the sidebar's "Past 7 days" link sends
        "created_at__gte": str(today - timedelta(days=7)),
        "created_at__lt": str(today + timedelta(days=1)),
    }
    assert ids(**past_7_days) == [done.pk, queued.pk]


def test_search_finds_a_bulk_change_by_id_iccid_or_msisdn(
    admin_client: Client, console: Console
) -> None:
    first = make_bulk_change(console, 3)
    second = make_bulk_change(console, 3, start=100)
    device = second.device_changes.order_by("id").first()
    assert device is not None
    DeviceChange.objects.filter(pk=device.pk).update(msisdn="15551234567")

    def search(term: str) -> list[int]:
        return listed_ids(admin_client.get(URL, {"q": term}).content.decode())

    assert search(str(first.pk)) == [first.pk]
    assert search(device.iccid) == [second.pk]
    assert search(f" {device.iccid[:10]} {device.iccid[10:]} ") == [second.pk]
    assert search("15551234567") == [second.pk]
    # The start of an ICCID or MSISDN finds it too (six digits or more: a short number is an id).
    assert search(device.iccid[:-3]) == sorted([first.pk, second.pk], reverse=True)
    assert search(device.iccid[:-1]) == [second.pk]
    assert search("155512") == [second.pk]
    assert search("15551") == []
    assert search("not-a-number") == []
    assert search("99999999999999999999") == []


LIVE = reverse("admin:bulkchanges_bulkchange_live")


def test_the_list_is_titled_bulk_changes_and_polls_its_live_endpoint(
    admin_client: Client, console: Console
) -> None:
    make_bulk_change(console, 1)

    html = admin_client.get(URL).content.decode()

    assert "<h1>Bulk changes</h1>" in html
    assert "Select bulk change to view" not in html
    assert f'data-live-url="{LIVE}"' in html and "bulkchanges/progress.js" in html


def test_the_live_endpoint_rewrites_the_listed_rows_cells_and_counts_newer_ones(
    admin_client: Client, console: Console
) -> None:
    older = make_bulk_change(console, 4, device_statuses=["PROCESSED"])
    newer = make_bulk_change(console, 2, start=20)
    DeviceChange.objects.filter(bulk_change=older, status="PENDING").update(
        status="ERROR", is_processed=True
    )
    BulkChange.objects.filter(pk=older.pk).update(status="PROCESSING")

    answer = admin_client.get(LIVE, {"ids": f"{older.pk},junk,-3", "newest": str(older.pk)}).json()

    assert set(answer["rows"]) == {str(older.pk)}
    cells = answer["rows"][str(older.pk)]
    assert set(cells) == {"status_badge", "progress", "errors", "timing"}
    assert 'data-status="PROCESSING"' in cells["status_badge"]
    assert ">4/4</span>" in cells["progress"]
    assert ">3</a>" in cells["errors"]
    assert answer["newer"] == 1 and newer.pk > older.pk
    assert answer["final"] is False and answer["all_final"] is False


def test_the_live_endpoint_answers_only_for_the_staff_members_tenants(
    staff_client: Callable[..., Client], console: Console
) -> None:
    mine = make_bulk_change(console, 1)
    other_tenant = Tenant.objects.create(name="Other")
    pond = IntegrationAuthentication.objects.create(
        tenant=other_tenant, integration="POND", base_url="http://127.0.0.1:9/", account="O"
    )
    rev = IntegrationAuthentication.objects.create(
        tenant=other_tenant, integration="REV", base_url="http://127.0.0.1:9/", account="R"
    )
    theirs = make_bulk_change(Console(other_tenant, pond, rev), 1, start=40)
    client = staff_client("view_bulkchange", tenants=[console.tenant])

    answer = client.get(LIVE, {"ids": f"{mine.pk},{theirs.pk}", "newest": str(mine.pk)}).json()

    # Another tenant's bulk change is neither answered for nor counted as newer.
    assert set(answer["rows"]) == {str(mine.pk)} and answer["newer"] == 0
    assert staff_client(username="nobody").get(LIVE).status_code == 403


@pytest.mark.parametrize("status", ["SCHEDULED", "AWAITING_APPROVAL", "CANCELLING"])
def test_the_new_statuses_have_their_own_badges(
    admin_client: Client, console: Console, status: str
) -> None:
    bulk_change = make_bulk_change(console, 1)
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=status)
    css = (Path(__file__).parents[2] / "bulkchanges/static/bulkchanges/pondops.css").read_text()

    html = admin_client.get(URL).content.decode()

    modifier = status.lower().replace("_", "-")
    assert f'class="pondops-badge pondops-badge--{modifier}" data-status="{status}"' in html
    assert f".pondops-badge--{modifier} {{ background:" in css
