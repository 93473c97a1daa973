"""Reading: list (filters, pagination, ordering), detail with progress and timing, devices and
logs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from bulkchanges.services.logs import log_write
from tests.api.conftest import API, Other, Partner, fail_devices, key_client, partner_key
from tests.conftest import create_bulk_change, iccids

pytestmark = pytest.mark.django_db


def make(partner: Partner, count: int = 2, *, start: int = 0, **kwargs: Any) -> BulkChange:
    return create_bulk_change(partner.world, iccids(count, start=start), with_rev=False, **kwargs)


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_list_shows_only_my_tenants_bulk_changes_newest_first_with_progress(
    partner: Partner, other: Other
) -> None:
    first, second = make(partner, 2), make(partner, 3, start=10)
    fail_devices(second, 1)

    response = partner.client.get(f"{API}/bulk-changes/")

    assert ids(response) == [second.pk, first.pk]
    body = response.json()
    assert body["count"] == 2 and body["next"] is None
    row = body["results"][0]
    assert row["status"] == "PROCESSED_WITH_ERRORS"
    assert row["progress"] == {
        "total": 3,
        "done": 3,
        "succeeded": 2,
        "failed": 1,
        "awaiting_carrier": 0,
        "changed": 2,
        "skipped": 0,
        "cancelled": 0,
        "in_flight": 0,
        "percent": 100.0,
        "counts": {
            "PENDING": 0,
            "PROCESSING": 0,
            "RETRY_SCHEDULED": 0,
            "AWAITING_CARRIER": 0,
            "PROCESSED": 2,
            "SKIPPED": 0,
            "ERROR": 1,
            "CANCELLED": 0,
        },
    }


def test_list_filters_by_status_integration_and_creation_time(partner: Partner) -> None:
    old, failed, fresh = make(partner, 1), make(partner, 1, start=5), make(partner, 1, start=9)
    fail_devices(failed, 1)
    BulkChange.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    url = f"{API}/bulk-changes/"
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()

    assert ids(partner.client.get(url, {"status": "QUEUED"})) == [fresh.pk, old.pk]
    assert ids(partner.client.get(f"{url}?status=QUEUED&status=PROCESSED_WITH_ERRORS")) == [
        fresh.pk,
        failed.pk,
        old.pk,
    ]
    assert ids(partner.client.get(url, {"integration": "POND"})) == [fresh.pk, failed.pk, old.pk]
    assert ids(partner.client.get(url, {"integration": "JASPER"})) == []
    assert ids(partner.client.get(url, {"created_after": yesterday})) == [fresh.pk, failed.pk]
    assert ids(partner.client.get(url, {"created_before": yesterday})) == [old.pk]


def test_list_paginates_and_orders(partner: Partner) -> None:
    made = [make(partner, 1, start=n * 10).pk for n in range(5)]
    url = f"{API}/bulk-changes/"

    page = partner.client.get(url, {"page_size": "2", "page": "2", "ordering": "id"})
    assert ids(page) == made[2:4]
    assert page.json()["count"] == 5
    assert "page=3" in page.json()["next"]
    assert page.json()["previous"].endswith(f"{url}?ordering=id&page_size=2")  # page 1
    assert ids(partner.client.get(url, {"ordering": "-id", "page_size": "1"})) == [made[-1]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "EXPLODED"}, "status"),
        ({"integration": "NOKIA"}, "integration"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"ordering": "secret"}, "ordering"),
    ],
)
def test_bad_filters_are_400(partner: Partner, query: dict[str, str], field: str) -> None:
    response = partner.client.get(f"{API}/bulk-changes/", query)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and field in response.json()["fields"]


def test_a_page_past_the_end_is_404(partner: Partner) -> None:
    make(partner, 1)
    response = partner.client.get(f"{API}/bulk-changes/", {"page": 9})
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_detail_has_progress_timing_and_the_request(partner: Partner) -> None:
    bulk_change = make(partner, 4)
    devices = list(DeviceChange.objects.filter(bulk_change=bulk_change).order_by("id"))
    DeviceChange.objects.filter(pk=devices[0].pk).update(
        status=DeviceChange.Status.PROCESSED, is_processed=True
    )
    DeviceChange.objects.filter(pk=devices[1].pk).update(status=DeviceChange.Status.PROCESSING)

    body = partner.client.get(f"{API}/bulk-changes/{bulk_change.pk}/").json()

    assert body["id"] == bulk_change.pk and body["status"] == "QUEUED"
    assert body["progress"]["total"] == 4 and body["progress"]["done"] == 1
    assert body["progress"]["percent"] == 25.0
    assert body["progress"]["counts"]["PROCESSING"] == 1
    assert body["queued_at"] and body["processed_at"] is None and body["elapsed_seconds"] >= 0
    assert body["request"]["UpdateStatus"] == "SUSPENDED"
    assert body["request"]["IntegrationAuthenticationId"] == partner.world.pond.pk


def test_devices_filter_by_status_and_search_iccid_paginated(partner: Partner) -> None:
    numbers = iccids(6)
    bulk_change = create_bulk_change(partner.world, numbers, with_rev=False)
    failed = fail_devices(bulk_change, 2)
    url = f"{API}/bulk-changes/{bulk_change.pk}/devices/"

    everything = partner.client.get(url, {"page_size": 4})
    assert everything.json()["count"] == 6 and len(everything.json()["results"]) == 4
    errors = partner.client.get(url, {"status": "ERROR"}).json()["results"]
    assert [row["id"] for row in errors] == failed
    assert errors[0]["last_error"] == "carrier said no" and errors[0]["attempts"] == 2
    found = partner.client.get(url, {"iccid": numbers[4][-6:]}).json()["results"]
    assert [row["iccid"] for row in found] == [numbers[4]]
    spaced = " ".join([numbers[5][:10], numbers[5][10:]])
    assert [r["iccid"] for r in partner.client.get(url, {"iccid": spaced}).json()["results"]] == [
        numbers[5]
    ]
    assert partner.client.get(url, {"status": "LOST"}).status_code == 400


def test_logs_are_paginated_newest_first_and_redacted(partner: Partner) -> None:
    bulk_change = make(partner, 1)
    device = DeviceChange.objects.get(bulk_change=bulk_change)
    for n in range(3):
        log_write(
            bulk_change_id=bulk_change.pk,
            device_change_id=device.pk,
            description=f"Step {n}",
            process_by="worker:test/1",
            request_text='{"iccid": "x", "password": "hunter2", "api_key": "k-123"}',
            response_text="ok",
            response_status=200,
        )
    # A row written before redaction existed (or by another system): redacted when shown too.
    BulkChangeLog.objects.bulk_create(
        [
            BulkChangeLog(
                bulk_change=bulk_change,
                log_entry_description="Legacy row",
                request_text='{"secret": "raw-secret-value"}',
                process_by="legacy",
                processed_at=timezone.now() + timedelta(seconds=5),
                has_errors=True,
                error_text="boom",
            )
        ]
    )
    url = f"{API}/bulk-changes/{bulk_change.pk}/logs/"

    body = partner.client.get(url, {"page_size": 2}).json()
    assert body["count"] == 4
    assert [row["description"] for row in body["results"]] == ["Legacy row", "Step 2"]
    text = str(partner.client.get(url).json())
    assert "hunter2" not in text and "k-123" not in text and "raw-secret-value" not in text
    assert "[REDACTED]" in text
    errors = partner.client.get(url, {"has_errors": "true"}).json()["results"]
    assert [row["description"] for row in errors] == ["Legacy row"]
    by_device = partner.client.get(url, {"device_change": device.pk}).json()
    assert by_device["count"] == 3


def test_a_staff_users_key_sees_only_its_own_tenant(partner: Partner, other: Other) -> None:
    mine = make(partner, 1)
    staff = key_client(partner_key("ops", partner.tenant, staff=True, superuser=True))

    assert ids(staff.get(f"{API}/bulk-changes/")) == [mine.pk]
    assert staff.get(f"{API}/bulk-changes/{other.bulk_change.pk}/").status_code == 404


@pytest.mark.parametrize(
    "value",
    ["0592-06-15T11:16:43+22:10", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"],
)
def test_date_filters_at_the_edges_are_answered_not_crashed(partner: Partner, value: str) -> None:
    response = partner.client.get(f"{API}/bulk-changes/", {"created_before": value})
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert response.json()["fields"] == {"created_before": ["date-time out of range"]}


def test_unknown_query_parameters_are_400(partner: Partner) -> None:
    bulk_change = make(partner, 1)
    for path in (
        "bulk-changes/",
        f"bulk-changes/{bulk_change.pk}/",
        f"bulk-changes/{bulk_change.pk}/devices/",
    ):
        response = partner.client.get(f"{API}/{path}", {"stauts": "ERROR"})
        assert response.status_code == 400, path
        assert response.json()["fields"] == {"stauts": ["unknown query parameter"]}


@pytest.mark.parametrize(
    "query",
    [
        {"page": "x"},
        {"page": ""},
        {"page_size": "0"},
        {"page_size": "501"},
        {"status": ""},
        {"iccid": ""},
    ],
)
def test_pagination_and_filters_are_strict(partner: Partner, query: dict[str, str]) -> None:
    bulk_change = make(partner, 1)
    response = partner.client.get(f"{API}/bulk-changes/{bulk_change.pk}/devices/", query)
    assert response.status_code == 400 and list(response.json()["fields"]) == list(query)


@pytest.mark.parametrize("ordering", [",", "id,", ""])
def test_an_empty_ordering_item_is_400(partner: Partner, ordering: str) -> None:
    response = partner.client.get(f"{API}/bulk-changes/", {"ordering": ordering})
    assert response.status_code == 400 and "ordering" in response.json()["fields"]
