"""Acting on a bulk change: retry failed devices, cancel, export CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.http import StreamingHttpResponse
from django.utils import timezone

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from tests.api.conftest import API, Partner, fail_devices
from tests.conftest import create_bulk_change, iccids

pytestmark = pytest.mark.django_db


def test_retry_requeues_every_failed_device(
    partner: Partner, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    bulk_change = create_bulk_change(partner.world, iccids(4), with_rev=False)
    failed = fail_devices(bulk_change, 2)

    with django_capture_on_commit_callbacks(execute=True):
        response = partner.client.post(f"{API}/bulk-changes/{bulk_change.pk}/retry/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["retried"] == 2 and body["device_change_ids"] == failed
    assert body["bulk_change"]["status"] == "PROCESSING"
    assert body["bulk_change"]["progress"]["counts"]["PENDING"] == 2
    assert set(DeviceChange.objects.filter(pk__in=failed).values_list("status", "attempts")) == {
        ("PENDING", 0)
    }
    assert [m.bulk_change_id for m in sent] == [bulk_change.pk]
    actors = BulkChangeLog.objects.filter(log_entry_description="Retry requested")
    assert set(actors.values_list("process_by", flat=True)) == {"api:acme-api"}


def test_retry_of_listed_devices(partner: Partner) -> None:
    bulk_change = create_bulk_change(partner.world, iccids(4), with_rev=False)
    failed = fail_devices(bulk_change, 3)

    response = partner.client.post(
        f"{API}/bulk-changes/{bulk_change.pk}/retry/", {"device_change_ids": [failed[1]]}
    )

    assert response.status_code == 200 and response.json()["device_change_ids"] == [failed[1]]
    assert DeviceChange.objects.get(pk=failed[0]).status == "ERROR"
    assert DeviceChange.objects.get(pk=failed[1]).status == "PENDING"


def test_retry_errors(partner: Partner) -> None:
    bulk_change = create_bulk_change(partner.world, iccids(3), with_rev=False)
    failed = fail_devices(bulk_change, 1)
    processed = DeviceChange.objects.exclude(pk__in=failed).filter(bulk_change=bulk_change).first()
    url = f"{API}/bulk-changes/{bulk_change.pk}/retry/"
    assert processed is not None

    not_failed = partner.client.post(url, {"device_change_ids": [processed.pk]})
    assert not_failed.status_code == 409 and not_failed.json()["code"] == "conflict"
    unknown = partner.client.post(url, {"device_change_ids": [99999999]})
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    bad = partner.client.post(url, {"device_change_ids": ["x"]})
    assert bad.status_code == 400 and "device_change_ids.0" in bad.json()["fields"]
    empty = partner.client.post(url, {"device_change_ids": []})
    assert empty.status_code == 400


def test_retry_with_nothing_failed_requeues_nothing(partner: Partner) -> None:
    bulk_change = create_bulk_change(partner.world, iccids(2), with_rev=False)
    fail_devices(bulk_change, 0)
    response = partner.client.post(f"{API}/bulk-changes/{bulk_change.pk}/retry/")
    assert response.status_code == 200 and response.json()["retried"] == 0


def test_cancel_then_cancel_again_is_409_and_retry_after_cancel_is_409(partner: Partner) -> None:
    bulk_change = create_bulk_change(partner.world, iccids(3), with_rev=False)
    url = f"{API}/bulk-changes/{bulk_change.pk}/cancel/"

    response = partner.client.post(url)
    assert response.status_code == 200, response.content
    assert response.json()["cancelled"] == 3
    assert response.json()["finishing"] == 0 and response.json()["status"] == "CANCELLED"
    assert response.json()["detail"] == (
        "3 devices cancelled now (no change sent to the carrier); no device was in flight, "
        "so the bulk change is CANCELLED."
    )
    assert response.json()["bulk_change"]["status"] == "CANCELLED"
    assert response.json()["bulk_change"]["progress"]["cancelled"] == 3
    assert response.json()["bulk_change"]["progress"]["counts"]["CANCELLED"] == 3
    log = BulkChangeLog.objects.get(log_entry_description="Bulk change cancelled")
    assert log.process_by == "api:acme-api"

    again = partner.client.post(url)
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    retry = partner.client.post(f"{API}/bulk-changes/{bulk_change.pk}/retry/")
    assert retry.status_code == 409


def test_cancel_with_devices_in_flight_answers_cancelling_and_what_finishes(
    partner: Partner,
) -> None:
    bulk_change = create_bulk_change(partner.world, iccids(3), with_rev=False)
    sent_write = DeviceChange.objects.filter(bulk_change=bulk_change).order_by("pk").first()
    assert sent_write is not None
    DeviceChange.objects.filter(pk=sent_write.pk).update(
        status="AWAITING_CARRIER", write_started_at=timezone.now(), next_attempt_at=timezone.now()
    )

    response = partner.client.post(f"{API}/bulk-changes/{bulk_change.pk}/cancel/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["cancelled"], body["finishing"], body["status"]) == (2, 1, "CANCELLING")
    assert "1 device has already sent the change to the carrier" in body["detail"]
    assert "stays CANCELLING" in body["detail"]
    assert body["bulk_change"]["status"] == "CANCELLING"
    assert body["bulk_change"]["progress"]["in_flight"] == 1
    retry = partner.client.post(f"{API}/bulk-changes/{bulk_change.pk}/retry/")
    assert retry.status_code == 409 and "is cancelling" in retry.json()["detail"]


def read_csv(response: Any) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    return list(csv.reader(io.StringIO(text)))


def test_export_streams_every_device_as_csv(partner: Partner) -> None:
    numbers = iccids(5)
    bulk_change = create_bulk_change(partner.world, numbers, with_rev=False)
    failed = fail_devices(bulk_change, 1, error='=HYPERLINK("http://evil")')

    response = partner.client.get(f"{API}/bulk-changes/{bulk_change.pk}/export.csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="bulk-change-{bulk_change.pk}.csv"'
    )
    rows = read_csv(response)
    assert rows[0] == [
        "device_change_id",
        "iccid",
        "msisdn",
        "eid",
        "status",
        "attempts",
        "last_error",
        "processed_at",
        "rev_service_id",
    ]
    assert [row[1] for row in rows[1:]] == numbers
    assert rows[1][0] == str(failed[0]) and rows[1][4] == "ERROR"
    assert rows[1][6] == '\'=HYPERLINK("http://evil")'  # no formula for spreadsheets
    assert {row[4] for row in rows[2:]} == {"PROCESSED"}


def test_export_filters_by_status_and_accepts_text_csv(partner: Partner) -> None:
    bulk_change = create_bulk_change(partner.world, iccids(4), with_rev=False)
    failed = fail_devices(bulk_change, 2)
    url = f"{API}/bulk-changes/{bulk_change.pk}/export.csv"

    rows = read_csv(partner.client.get(url, {"status": "ERROR"}, HTTP_ACCEPT="text/csv"))
    assert [int(row[0]) for row in rows[1:]] == failed
    bad = partner.client.get(url, {"status": "NOPE"}, HTTP_ACCEPT="text/csv")
    assert bad.status_code == 400 and bad["Content-Type"] == "application/json"
    missing = partner.client.get(f"{API}/bulk-changes/999999/export.csv", HTTP_ACCEPT="text/csv")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_export_reads_rows_through_an_iterator(
    partner: Partner, django_assert_max_num_queries: Any
) -> None:
    """Constant memory: one query (a server-side cursor on PostgreSQL), rows streamed."""
    partner.tenant.approval_threshold = 2500  # queued, not held for four-eyes approval
    partner.tenant.save(update_fields=["approval_threshold"])
    bulk_change = create_bulk_change(partner.world, iccids(2500), with_rev=False)
    response = partner.client.get(f"{API}/bulk-changes/{bulk_change.pk}/export.csv")
    assert isinstance(response, StreamingHttpResponse)
    with django_assert_max_num_queries(3):
        lines = sum(1 for _ in response.streaming_content)
    assert lines == 2501
    assert BulkChange.objects.get(pk=bulk_change.pk).status == "QUEUED"


def test_resubmit_forgets_the_unconfirmed_request_and_only_takes_such_devices(
    partner: Partner, django_capture_on_commit_callbacks: Any
) -> None:
    from django.utils import timezone

    bulk_change = create_bulk_change(partner.world, iccids(3), with_rev=False)
    unconfirmed, failed_before_submit = fail_devices(bulk_change, 2)
    DeviceChange.objects.filter(pk=unconfirmed).update(
        carrier_request_id="req-1", carrier_submitted_at=timezone.now(), carrier_waits=4
    )
    url = f"{API}/bulk-changes/{bulk_change.pk}/retry/"

    with django_capture_on_commit_callbacks(execute=True):
        response = partner.client.post(url, {"resubmit": True}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["device_change_ids"] == [unconfirmed]
    device = DeviceChange.objects.get(pk=unconfirmed)
    assert (device.status, device.carrier_request_id, device.carrier_submitted_at) == (
        "PENDING",
        "",
        None,
    )
    assert device.carrier_waits == 0
    assert DeviceChange.objects.get(pk=failed_before_submit).status == "ERROR"
    row = BulkChangeLog.objects.get(
        device_change_id=unconfirmed, log_entry_description="Resubmit requested"
    )
    assert "req-1" in row.response_text and row.process_by == "api:acme-api"

    refused = partner.client.post(
        url, {"resubmit": True, "device_change_ids": [failed_before_submit]}, format="json"
    )
    assert refused.status_code == 409
    assert "not eligible for resubmit" in refused.json()["detail"]
