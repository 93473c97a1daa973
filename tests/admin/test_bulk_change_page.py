"""The bulk change page: the request in words, counts per device status, the link to its
devices, the audit log (newest first, paginated, errors highlighted, redacted and readable)
and the progress fragment the page polls while the bulk change runs."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from tests.admin.conftest import POND_KEY, Console, make_bulk_change

pytestmark = pytest.mark.django_db


def page(client: Client, bulk_change: BulkChange, **params: str) -> str:
    url = reverse("admin:bulkchanges_bulkchange_change", args=[bulk_change.pk])
    response = client.get(url, params)
    assert response.status_code == 200
    return response.content.decode()


def test_the_page_shows_the_request_in_words_with_its_rev_service(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 3, with_rev=True)

    html = page(admin_client, bulk_change)

    assert "SUSPENDED on POND" in html
    assert "Devices already SUSPENDED are skipped without a carrier call" in html
    assert "Suspended (SUSPENDED)" in html  # PostUpdateStatusId in words
    assert f"POND 1234 (Acme IoT) [#{console.pond.pk}]" in html
    assert "open service type 7 for customer 42 with products 55 at 4.50" in html
    assert f"Rev.io ACME (Acme IoT) [#{console.rev.pk}]" in html
    assert POND_KEY not in html


def test_the_page_counts_devices_per_status_and_links_to_its_filtered_device_list(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(
        console, 6, device_statuses=["PROCESSED", "PROCESSED", "SKIPPED", "ERROR", "PROCESSING"]
    )

    html = page(admin_client, bulk_change)

    def count(status: str) -> str:
        row = re.search(rf'data-device-status="{status}">(.*?)</tr>', html, re.DOTALL)
        assert row is not None
        cell = re.findall(r'<td class="pondops-num">(?:<a href="[^"]+">)?(\d+)', row.group(1))
        return cell[0]

    assert [count(s) for s in ("PENDING", "PROCESSING", "PROCESSED", "SKIPPED", "ERROR")] == [
        "1",
        "1",
        "2",
        "1",
        "1",
    ]
    devices_url = f"/admin/bulkchanges/devicechange/?bulk_change={bulk_change.pk}"
    assert f'href="{devices_url}" id="pondops-devices-link">Devices (6)' in html
    assert f'href="{devices_url}&amp;status__exact=ERROR" id="pondops-failed-link"' in html
    assert "inline-group" not in html  # never an inline of the devices


def test_the_device_list_filters_to_one_bulk_change_by_status_and_iccid(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 4, device_statuses=["ERROR", "PROCESSED"])
    other = make_bulk_change(console, 4, start=50, device_statuses=["ERROR"])
    url = reverse("admin:bulkchanges_devicechange_changelist")

    def iccids(**params: str) -> list[str]:
        html = admin_client.get(url, params).content.decode()
        return re.findall(r'class="pondops-iccid">(\d+)</a>', html)

    mine = list(bulk_change.device_changes.order_by("id").values_list("iccid", flat=True))
    assert sorted(iccids(bulk_change=str(bulk_change.pk))) == sorted(mine)
    assert iccids(bulk_change=str(bulk_change.pk), status__exact="ERROR") == [mine[0]]
    assert iccids(bulk_change=str(bulk_change.pk), q=mine[1]) == [mine[1]]
    assert iccids(bulk_change=str(other.pk), q=mine[1]) == []
    html = admin_client.get(url, {"bulk_change": bulk_change.pk}).content.decode()
    assert f"Bulk change {bulk_change.pk}" in html  # the active filter, in the sidebar


def test_the_log_is_newest_first_paginated_with_errors_highlighted_and_secrets_redacted(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 1)
    device = bulk_change.device_changes.get()
    start = timezone.now() - timedelta(hours=1)
    BulkChangeLog.objects.bulk_create(
        BulkChangeLog(
            bulk_change=bulk_change,
            log_entry_description=f"entry {n}",
            process_by="worker:test/1",
            processed_at=start + timedelta(seconds=n),
        )
        for n in range(60)
    )
    # Written raw, as a row from before a redaction rule would be: the page redacts again.
    BulkChangeLog.objects.create(
        bulk_change=bulk_change,
        device_change=device,
        log_entry_description="Update POND SIM status",
        request_text="PUT /sims/1\nX-Api-Key: [REDACTED]\n\n"
        '{"status": "Inactive", "api_key": "k-123"}',
        response_text='{"error": "unknown ICCID", "token": "t-456"}',
        response_status=404,
        has_errors=True,
        error_text="HTTP 404 from POND: unknown ICCID",
        process_by="worker:test/1",
        processed_at=timezone.now(),
    )

    first = page(admin_client, bulk_change)
    second = page(admin_client, bulk_change, log_page="2")
    errors_only = page(admin_client, bulk_change, log_errors="1")

    entries = re.findall(r"<td>(entry \d+|Update POND SIM status)</td>", first)
    assert entries[:3] == ["Update POND SIM status", "entry 59", "entry 58"]
    assert len(entries) == 50
    assert "page 1 of 2" in first
    assert re.findall(r"<td>(entry \d+)</td>", second)[-1] == "entry 0"
    assert re.search(r'<tr class="pondops-log--error" data-log-id="\d+">', first)
    assert "HTTP 404 from POND: unknown ICCID" in first
    assert "k-123" not in first and "t-456" not in first
    assert "&quot;api_key&quot;: &quot;[REDACTED]&quot;" in first
    assert "{\n  &quot;status&quot;: &quot;Inactive&quot;" in first  # JSON pretty-printed
    assert re.findall(r"<td>(entry \d+|Update POND SIM status)</td>", errors_only) == [
        "Update POND SIM status"
    ]


def test_the_progress_fragment_reports_live_counts_and_says_when_the_change_is_final(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 4, device_statuses=["PROCESSED", "ERROR"])
    url = reverse("admin:bulkchanges_bulkchange_progress", args=[bulk_change.pk])

    running = admin_client.get(url)
    assert running.status_code == 200 and "no-store" in running["Cache-Control"]
    assert 'data-final="false"' in running.content.decode()
    assert "2/4 (50%)" in running.content.decode()
    assert "<html" not in running.content.decode()  # a fragment, not a page

    DeviceChange.objects.filter(bulk_change=bulk_change, is_processed=False).update(
        status="PROCESSED", is_processed=True
    )
    BulkChange.objects.filter(pk=bulk_change.pk).update(
        status="PROCESSED_WITH_ERRORS", processed_at=timezone.now()
    )
    final = admin_client.get(url).content.decode()
    assert 'data-final="true"' in final and "4/4 (100%)" in final
    assert 'data-status="PROCESSED_WITH_ERRORS"' in final

    html = page(admin_client, bulk_change)
    assert f'data-url="{url}"' in html and "bulkchanges/progress.js" in html


def test_the_progress_fragment_needs_view_permission(
    staff_client: Callable[..., Client], console: Console
) -> None:
    bulk_change = make_bulk_change(console, 1)
    url = reverse("admin:bulkchanges_bulkchange_progress", args=[bulk_change.pk])

    assert staff_client(username="nobody").get(url).status_code == 403
    assert staff_client("view_bulkchange").get(url).status_code == 200
    assert (
        staff_client("view_bulkchange", username="v2")
        .get(reverse("admin:bulkchanges_bulkchange_progress", args=["nope"]))
        .status_code
        == 404
    )
