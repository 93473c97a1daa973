"""The device-change list (prefix search, status / carrier / bulk change filters, columns that
fit) and a device change's own page: identifiers, outcome in words, attempts, its audit trail,
and Retry / Resubmit buttons that confirm, call the retry service for this one device, audit
the staff user and record Django's admin history."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange, Tenant
from bulkchanges.services import logs
from tests.admin.conftest import Console, StaffFactory, make_bulk_change

pytestmark = pytest.mark.django_db

DEVICES = reverse("admin:bulkchanges_devicechange_changelist")


def page_url(device_change: DeviceChange, name: str = "change") -> str:
    return reverse(f"admin:bulkchanges_devicechange_{name}", args=[device_change.pk])


def listed(client: Client, **params: str) -> list[str]:
    html = client.get(DEVICES, params).content.decode()
    return re.findall(r'class="pondops-iccid">(\d+)</a>', html)


def failed_device(console: Console) -> tuple[BulkChange, DeviceChange]:
    """A bulk change whose first device failed after a retry, with the audit rows a worker
    writes: a call, a retry scheduled, a second call and the final ERROR outcome."""
    bulk_change = make_bulk_change(console, 3, device_statuses=["ERROR", "PROCESSED"])
    device = bulk_change.device_changes.order_by("id").first()
    assert device is not None
    DeviceChange.objects.filter(pk=device.pk).update(
        attempts=1, previous_status="ACTIVE", msisdn="15551230001"
    )
    start = timezone.now() - timedelta(minutes=5)
    rows = [
        ("PUT /pond/status", 503, True, "HTTP 503 from POND: try later", ""),
        (logs.RETRY_SCHEDULED, None, True, "HTTP 503 from POND: try later", "RETRY_SCHEDULED: "),
        ("PUT /pond/status", 400, True, "HTTP 400 from POND: unknown ICCID", ""),
        (logs.DEVICE_OUTCOME, None, True, "HTTP 400 from POND: unknown ICCID", "ERROR: "),
    ]
    for offset, (description, status, has_errors, error, outcome) in enumerate(rows):
        BulkChangeLog.objects.create(
            bulk_change=bulk_change,
            device_change=device,
            log_entry_description=description,
            request_text="PUT /pond/status\n\n{}" if status else "",
            response_status=status,
            response_text=(outcome + error) if outcome else '{"error": "no"}',
            has_errors=has_errors,
            error_text=error,
            process_by="worker:host-a/4242",
            processed_at=start + timedelta(seconds=offset * 7),
        )
    device.refresh_from_db()
    return bulk_change, device


# --- The list ------------------------------------------------------------------------------


def test_the_list_finds_devices_by_the_start_of_an_iccid_or_msisdn(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 3)
    first, second, _ = bulk_change.device_changes.order_by("id")
    DeviceChange.objects.filter(pk=second.pk).update(msisdn="15559876543")

    assert listed(admin_client, q=first.iccid) == [first.iccid]  # a whole ICCID
    assert len(listed(admin_client, q=first.iccid[:8])) == 3  # every ICCID shares its start
    spaced = " ".join([first.iccid[:4], first.iccid[4:12], first.iccid[12:]])
    assert listed(admin_client, q=spaced) == [first.iccid]  # as pasted with spaces
    assert listed(admin_client, q="1555987") == [second.iccid]  # an MSISDN's start
    assert listed(admin_client, q=first.iccid[5:]) == []  # the middle of one: a prefix only
    assert listed(admin_client, q="abc") == []  # no number, no match (and no error)
    html = admin_client.get(DEVICES).content.decode()
    assert "The start of an ICCID or MSISDN" in html


def test_the_list_filters_by_status_carrier_and_bulk_change(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 3, device_statuses=["ERROR", "PROCESSED"])
    other = make_bulk_change(console, 2, start=50, device_statuses=["ERROR"])
    mine = list(bulk_change.device_changes.order_by("id").values_list("iccid", flat=True))

    assert listed(admin_client, bulk_change=str(bulk_change.pk), status__exact="ERROR") == [mine[0]]
    assert len(listed(admin_client, carrier="POND")) == 5
    assert listed(admin_client, carrier="JASPER") == []
    assert len(listed(admin_client, bulk_change=str(other.pk))) == 2
    html = admin_client.get(DEVICES).content.decode()
    assert "<h1>Device changes</h1>" in html  # a plain title, not "Select … to view"
    sidebar = html[html.index('id="changelist-filter"') :]
    assert "Rev.io" not in sidebar  # billing is no carrier


def test_the_list_shows_processed_times_with_seconds_and_utc_on_hover(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 1, device_statuses=["ERROR"])
    moment = timezone.now().replace(microsecond=0)
    bulk_change.device_changes.update(processed_at=moment)

    html = admin_client.get(DEVICES).content.decode()

    utc = f"{moment:%Y-%m-%d %H:%M:%S}"
    assert f'<time class="pondops-time" datetime="{moment:%Y-%m-%dT%H:%M:%S}Z"' in html
    assert f'title="{utc} UTC">{utc} UTC</time>' in html
    assert "p.m." not in html and "a.m." not in html


# --- The page ------------------------------------------------------------------------------


def test_the_page_shows_the_device_in_words_without_internals(
    staff_client: StaffFactory, console: Console
) -> None:
    bulk_change, device = failed_device(console)

    html = staff_client("view_devicechange").get(page_url(device)).content.decode()

    for label in ("ICCID", "MSISDN", "EID", "Carrier", "Target status", "Previous status"):
        assert f'<th scope="row">{label}</th>' in html
    assert "Iccid" not in html and "Msisdn" not in html and "Is processed" not in html
    assert device.iccid in html and "15551230001" in html
    assert 'data-status="ERROR"' in html  # the outcome's badge
    assert "HTTP 400 from POND: unknown ICCID" in html  # the last error, in words
    assert "Target status (UpdateStatus)" in html and "SUSPENDED on POND" in html
    assert "Claim token" not in html  # internals are for superusers only …
    assert '"UpdateStatus"' not in html  # … and the request is never raw JSON
    assert f'href="{reverse("admin:bulkchanges_bulkchange_change", args=[bulk_change.pk])}"' in (
        html
    )


def test_the_page_lists_each_attempt_and_the_device_trail_newest_first(
    admin_client: Client, console: Console
) -> None:
    _, device = failed_device(console)

    html = admin_client.get(page_url(device)).content.decode()

    attempts = html[html.index('id="pondops-attempts"') : html.index('id="trail"')]
    assert attempts.count("<tr class=") == 2  # the retry scheduled, then the final outcome
    assert attempts.index(logs.RETRY_SCHEDULED) < attempts.index(logs.DEVICE_OUTCOME)
    assert 'data-status="RETRY_SCHEDULED"' in attempts and 'data-status="ERROR"' in attempts
    assert "HTTP 503 from POND: try later" in attempts
    trail = html[html.index('id="pondops-trail"') :]
    ids = [int(pk) for pk in re.findall(r'data-log-id="(\d+)"', trail)]
    expected = BulkChangeLog.objects.filter(device_change=device).order_by("-processed_at", "-id")
    assert ids == list(expected.values_list("pk", flat=True))
    assert trail.count('class="pondops-time"') == 4  # every entry's time, with seconds
    assert "worker:host-a/4242" in trail


def test_superusers_see_the_lease_internals_in_a_closed_details_element(
    admin_client: Client, console: Console
) -> None:
    _, device = failed_device(console)
    html = admin_client.get(page_url(device)).content.decode()
    internals = html[html.index('id="pondops-internals"') :]
    assert internals.startswith('id="pondops-internals">')  # a <details>, closed
    assert "Claim token" in internals


def test_retry_asks_first_then_requeues_the_device_audits_and_records_history(
    admin_client: Client, console: Console
) -> None:
    bulk_change, device = failed_device(console)
    page = admin_client.get(page_url(device)).content.decode()
    assert 'id="pondops-device-retry"' in page

    confirm = admin_client.get(page_url(device, "retry"))
    assert (
        confirm.status_code == 200 and f"Retry device {device.iccid}?" in confirm.content.decode()
    )
    device.refresh_from_db()
    assert device.status == "ERROR"  # asking changes nothing

    answer = admin_client.post(page_url(device, "retry"), follow=True)

    device.refresh_from_db()
    assert device.status == "PENDING" and device.attempts == 0
    assert f"Retried device {device.iccid} (was ERROR)" in answer.content.decode()
    others = bulk_change.device_changes.exclude(pk=device.pk)
    assert list(others.values_list("status", flat=True)) == ["PROCESSED", "PENDING"]
    audit = BulkChangeLog.objects.get(
        device_change=device, log_entry_description=logs.OPERATOR_RETRY
    )
    assert audit.process_by == "admin:admin"
    history = LogEntry.objects.filter(change_message__startswith="Retried")
    assert set(history.values_list("content_type__model", "object_id")) == {
        ("devicechange", str(device.pk)),
        ("bulkchange", str(bulk_change.pk)),
    }
    assert {entry.user.get_username() for entry in history} == {"admin"}
    html = admin_client.get(page_url(device, "history")).content.decode()
    assert f"Retried device {device.iccid}" in html  # the object's HISTORY shows it
    index = admin_client.get(reverse("admin:index")).content.decode()
    recent = index[index.index('id="recent-actions-module"') :]
    assert f"Device change {device.pk}" in recent  # and so does Recent actions


def test_resubmit_is_offered_only_for_an_unconfirmed_carrier_request(
    admin_client: Client, console: Console
) -> None:
    _, device = failed_device(console)
    assert 'id="pondops-device-resubmit"' not in admin_client.get(page_url(device)).content.decode()
    DeviceChange.objects.filter(pk=device.pk).update(
        carrier_request_id="595f5c44", carrier_submitted_at=timezone.now()
    )
    page = admin_client.get(page_url(device)).content.decode()
    assert 'id="pondops-device-resubmit"' in page and "595f5c44" in page

    admin_client.post(page_url(device, "resubmit"))

    device.refresh_from_db()
    assert device.status == "PENDING" and device.carrier_request_id == ""
    audit = BulkChangeLog.objects.get(
        device_change=device, log_entry_description=logs.OPERATOR_RESUBMIT
    )
    assert "carrier request 595f5c44 forgotten" in audit.response_text
    assert LogEntry.objects.filter(change_message__startswith="Resubmitted").count() == 2


def test_retrying_a_device_that_is_not_in_error_explains_why_not(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 2, device_statuses=["ERROR", "PROCESSED"])
    processed = bulk_change.device_changes.get(status="PROCESSED")
    assert 'id="pondops-device-retry"' not in admin_client.get(page_url(processed)).content.decode()

    answer = admin_client.post(page_url(processed, "retry"), follow=True)

    assert answer.status_code == 200
    assert "was not re-queued: device changes not eligible for retry" in answer.content.decode()
    processed.refresh_from_db()
    assert processed.status == "PROCESSED"
    assert not LogEntry.objects.exists()


def test_staff_without_the_retry_permission_get_no_button_and_a_403(
    staff_client: StaffFactory, console: Console
) -> None:
    _, device = failed_device(console)
    viewer = staff_client("view_devicechange", "view_bulkchange")

    page = viewer.get(page_url(device))
    assert page.status_code == 200 and 'id="pondops-device-retry"' not in page.content.decode()
    assert viewer.get(page_url(device, "retry")).status_code == 403
    assert viewer.post(page_url(device, "retry")).status_code == 403
    device.refresh_from_db()
    assert device.status == "ERROR"
    assert not BulkChangeLog.objects.filter(log_entry_description=logs.OPERATOR_RETRY).exists()


def test_another_tenants_device_is_a_404_page_and_a_404_retry(
    staff_client: StaffFactory, console: Console
) -> None:
    _, device = failed_device(console)
    outsider = staff_client(
        "view_devicechange", "retry_bulkchange", tenants=[Tenant.objects.create(name="Other")]
    )
    assert outsider.get(page_url(device)).status_code == 404
    assert outsider.post(page_url(device, "retry")).status_code == 404
    device.refresh_from_db()
    assert device.status == "ERROR"


def test_the_list_action_records_history_for_each_retried_device(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 3, device_statuses=["ERROR", "ERROR", "PROCESSED"])
    ids = list(bulk_change.device_changes.order_by("id").values_list("pk", flat=True))
    admin_client.post(
        DEVICES, {"action": "retry_failed_action", "post": "yes", "_selected_action": ids}
    )
    recorded = set(LogEntry.objects.values_list("content_type__model", "object_id"))
    assert recorded == {
        ("devicechange", str(ids[0])),
        ("devicechange", str(ids[1])),
        ("bulkchange", str(bulk_change.pk)),
    }
