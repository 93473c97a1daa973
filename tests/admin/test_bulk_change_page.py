"""The bulk change page: its summary first (status in words, timings a retry never rewrites,
counts with waiting-on-carrier apart, throughput and ETA), then failures grouped by message,
the devices panel (25 a page, by status, attempts across manual retries) and the latest log
rows, every panel served again as JSON by the live endpoint the page polls."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bulkchanges.console_selectors import (
    bulk_change_run_figures,
    device_changes_attempts,
    failure_key,
)
from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from bulkchanges.selectors import bulk_change_progress
from bulkchanges.services import bulk_change_retry
from bulkchanges.services.logs import COMPLETION
from tests.admin.conftest import POND_KEY, Console, make_bulk_change

pytestmark = pytest.mark.django_db


def page(client: Client, bulk_change: BulkChange, **params: str) -> str:
    url = reverse("admin:bulkchanges_bulkchange_change", args=[bulk_change.pk])
    response = client.get(url, params)
    assert response.status_code == 200
    return response.content.decode()


def live(client: Client, bulk_change: BulkChange, **params: str) -> dict[str, Any]:
    url = reverse("admin:bulkchanges_bulkchange_progress", args=[bulk_change.pk])
    response = client.get(url, params)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    return response.json()


def finish(bulk_change: BulkChange, status: str, at: datetime) -> None:
    """As completion writes it: processed_at, first_processed_at once, a completion row."""
    BulkChange.objects.filter(pk=bulk_change.pk).update(
        status=status, processed_at=at, first_processed_at=at
    )
    BulkChangeLog.objects.create(
        bulk_change=bulk_change,
        log_entry_description=COMPLETION,
        process_by="worker:test/1",
        processed_at=at,
    )


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


def test_the_summary_comes_first_in_plain_words_before_failures_devices_log_and_request(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 6, device_statuses=["PROCESSED", "ERROR"])
    DeviceChange.objects.filter(pk=bulk_change.device_changes.order_by("id")[2].pk).update(
        status="AWAITING_CARRIER"
    )
    BulkChange.objects.filter(pk=bulk_change.pk).update(status="PROCESSING")

    html = page(admin_client, bulk_change)

    order = [
        html.index(marker)
        for marker in (
            'id="pondops-summary"',
            'id="pondops-failures"',
            'id="pondops-devices"',
            'id="pondops-log"',
            'id="request"',
        )
    ]
    assert order == sorted(order)
    summary = html[order[0] : order[1]]
    assert "Running: workers are changing its devices now." in summary
    assert "Final." not in html
    for label in ("Target", "Carrier", "Tenant", "Created by", "Created", "Queued", "Started"):
        assert f'<th scope="row">{label}</th>' in summary
    assert "First finished" in summary and "Last finished" in summary
    assert "Throughput" in summary and "Estimated finish" in summary
    assert "<time" in summary  # every moment through display.timestamp
    waiting = re.search(r'id="pondops-awaiting-carrier">(.*?)</tr>', summary, re.DOTALL)
    assert waiting and "Waiting on carrier" in waiting.group(1) and ">1</td>" in waiting.group(1)
    assert 'id="pondops-actions"' in html and 'id="pondops-export"' in html


def test_a_final_bulk_change_says_what_it_means_and_shows_no_eta(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 2, device_statuses=["PROCESSED", "ERROR"])
    finish(bulk_change, "PROCESSED_WITH_ERRORS", timezone.now())

    html = page(admin_client, bulk_change)

    assert "Finished with failures: some devices were changed, some failed" in html
    assert "Nothing more happens unless someone retries it." in html
    assert "This page no longer updates." in html
    assert "Estimated finish" not in html and "Throughput" not in html


def test_throughput_and_eta_count_the_devices_finished_in_this_run_over_its_time(
    console: Console,
) -> None:
    bulk_change = make_bulk_change(console, 10)
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    BulkChange.objects.filter(pk=bulk_change.pk).update(status="PROCESSING")
    BulkChangeLog.objects.create(
        bulk_change=bulk_change,
        log_entry_description="Update POND SIM status",
        process_by="worker:host/1",
        processed_at=start,
    )
    ids = list(bulk_change.device_changes.order_by("id").values_list("pk", flat=True))
    DeviceChange.objects.filter(pk__in=ids[:4]).update(
        status="PROCESSED", is_processed=True, processed_at=start + timedelta(seconds=30)
    )
    bulk_change.refresh_from_db()

    figures = bulk_change_run_figures(
        bulk_change=bulk_change,
        progress=bulk_change_progress(bulk_change_id=bulk_change.pk),
        now=start + timedelta(minutes=2),
    )

    assert figures.started_at == start
    assert figures.devices_per_minute == pytest.approx(2.0)  # 4 devices in 2 minutes
    assert figures.eta_seconds == pytest.approx(180.0)  # 6 left at 2 a minute


def test_a_retry_keeps_the_first_finish_and_is_listed_apart_with_attempts_counted(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 3, device_statuses=["PROCESSED", "ERROR", "PROCESSED"])
    created = bulk_change.created_at
    BulkChange.objects.filter(pk=bulk_change.pk).update(queued_at=created)
    first_finish = created + timedelta(seconds=4)
    finish(bulk_change, "PROCESSED_WITH_ERRORS", first_finish)
    failed = bulk_change.device_changes.get(status="ERROR")
    DeviceChange.objects.filter(pk=failed.pk).update(attempts=2)  # 3 attempts in the first run
    bulk_change.refresh_from_db()

    bulk_change_retry(bulk_change=bulk_change, actor="admin:admin")
    DeviceChange.objects.filter(pk=failed.pk).update(
        status="PROCESSED",
        is_processed=True,
        attempts=1,  # 2 attempts in the retry
    )
    BulkChange.objects.filter(pk=bulk_change.pk).update(
        status="PROCESSED", processed_at=created + timedelta(seconds=39)
    )
    BulkChangeLog.objects.create(
        bulk_change=bulk_change,
        log_entry_description=COMPLETION,
        process_by="worker:test/1",
        processed_at=created + timedelta(seconds=39),
    )
    bulk_change.refresh_from_db()

    assert bulk_change.first_processed_at == first_finish
    html = page(admin_client, bulk_change)
    ttc = re.search(r'id="pondops-time-to-complete">(.*?)</td>', html, re.DOTALL)
    assert ttc and ttc.group(1).startswith("4s")  # not 39 s: retries do not rewrite it
    assert "Manual retries (1)" in html and "retry by admin:admin: 1 devices re-queued" in html
    assert "Last finished" in html
    row = re.search(rf'data-device-change="{failed.pk}">(.*?)</tr>', html, re.DOTALL)
    assert row and re.search(r"data-attempts>5<", row.group(1))  # 3 + 2
    untouched = bulk_change.device_changes.exclude(pk=failed.pk).first()
    assert untouched is not None
    assert device_changes_attempts(device_changes=[untouched]) == {untouched.pk: 1}


def test_attempts_count_nothing_for_a_device_never_tried(console: Console) -> None:
    bulk_change = make_bulk_change(console, 1)
    device_change = bulk_change.device_changes.get()

    assert device_changes_attempts(device_changes=[device_change]) == {device_change.pk: 0}


def test_failures_are_grouped_by_message_largest_first_each_with_its_retry(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 5, device_statuses=["ERROR", "ERROR", "ERROR"])
    third = bulk_change.device_changes.order_by("id")[2]
    DeviceChange.objects.filter(pk=third.pk).update(last_error="HTTP 503 from POND: busy")

    html = page(admin_client, bulk_change)

    failures = html[html.index('id="pondops-failures"') : html.index('id="pondops-devices"')]
    groups = re.findall(
        r'data-failure-key="(\w+)">\s*<td class="pondops-log-error">(.*?)</td>\s*'
        r'<td class="pondops-num"><a [^>]+>(\d+)</a>',
        failures,
    )
    assert groups == [
        (
            failure_key("HTTP 400 from POND: unknown ICCID"),
            "HTTP 400 from POND: unknown ICCID",
            "2",
        ),
        (failure_key("HTTP 503 from POND: busy"), "HTTP 503 from POND: busy", "1"),
    ]
    retry = reverse("admin:bulkchanges_bulkchange_retry", args=[bulk_change.pk])
    assert f'href="{retry}?group={groups[0][0]}">Retry these' in failures
    assert "Failures (3)" in failures


def test_failures_that_differ_only_in_per_device_ids_are_one_group_retried_together(
    admin_client: Client, console: Console
) -> None:
    """A carrier puts a request reference (or the ICCID) into each error: grouping by the exact
    text made one group per device."""
    bulk_change = make_bulk_change(console, 3, device_statuses=["ERROR", "ERROR", "ERROR"])
    rows = list(bulk_change.device_changes.order_by("id"))
    for row, reference in zip(
        rows, ("3f2a9c1e-0b7d-4e8a-9f00-1c2d3e4f5a6b", "deadbeef1234", "7"), strict=True
    ):
        DeviceChange.objects.filter(pk=row.pk).update(
            last_error=f"HTTP 404 from POND: SIM {row.iccid} not found (reference {reference})"
        )

    html = page(admin_client, bulk_change)
    failures = html[html.index('id="pondops-failures"') : html.index('id="pondops-devices"')]
    shown = re.findall(r'<td class="pondops-log-error">(.*?)</td>', failures)
    assert shown == [
        "HTTP 404 from POND: SIM … not found (reference …)",
        "HTTP 404 from POND: SIM … not found (reference 7)",
    ]
    key = failure_key("HTTP 404 from POND: SIM … not found (reference …)")
    retry = reverse("admin:bulkchanges_bulkchange_retry", args=[bulk_change.pk])
    confirm = admin_client.get(f"{retry}?group={key}").content.decode()
    assert all(row.iccid in confirm for row in rows[:2]) and rows[2].iccid not in confirm
    admin_client.post(f"{retry}?group={key}", {"post": "yes"})
    assert list(bulk_change.device_changes.order_by("id").values_list("status", flat=True)) == [
        "PENDING",
        "PENDING",
        "ERROR",
    ]


def test_the_devices_panel_pages_25_at_a_time_and_filters_by_status(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 30, device_statuses=["ERROR", "PROCESSED"])

    def listed(html: str) -> list[str]:
        return re.findall(r'data-device-change="(\d+)"', html)

    first = page(admin_client, bulk_change)
    second = page(admin_client, bulk_change, devices_page="2")
    errors = page(admin_client, bulk_change, devices_status="ERROR")
    bogus = page(admin_client, bulk_change, devices_status="NOPE")

    assert len(listed(first)) == 25 and len(listed(second)) == 5
    assert "page 1 of 2" in first
    assert listed(errors) == [str(bulk_change.device_changes.get(status="ERROR").pk)]
    assert len(listed(bogus)) == 25  # an unknown status is no filter, not an error
    assert 'data-filter="ERROR" class="pondops-current">error (1)' in errors
    failed = bulk_change.device_changes.get(status="ERROR")
    page_url = reverse("admin:bulkchanges_devicechange_change", args=[failed.pk])
    assert f'href="{page_url}">{failed.iccid}</a>' in errors  # each device opens its own page


def test_the_log_panel_shows_the_newest_50_and_links_to_the_full_log(
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

    html = page(admin_client, bulk_change)

    entries = re.findall(r"<td>(entry \d+|Update POND SIM status)</td>", html)
    assert entries[:3] == ["Update POND SIM status", "entry 59", "entry 58"]
    assert len(entries) == 50
    assert "The newest 50 entries; the full audit log has every one." in html
    logs = reverse("admin:bulkchanges_bulkchangelog_changelist")
    assert f'href="{logs}?bulk_change={bulk_change.pk}" id="pondops-log-all"' in html
    assert re.search(r'<tr class="pondops-log--error" data-log-id="\d+">', html)
    assert "HTTP 404 from POND: unknown ICCID" in html
    assert "k-123" not in html and "t-456" not in html
    assert "&quot;api_key&quot;: &quot;[REDACTED]&quot;" in html
    assert "{\n  &quot;status&quot;: &quot;Inactive&quot;" in html  # JSON pretty-printed


def test_the_live_endpoint_answers_json_with_every_panel_and_says_when_final(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 30, device_statuses=["PROCESSED", "ERROR"])
    BulkChange.objects.filter(pk=bulk_change.pk).update(status="PROCESSING")

    running = live(admin_client, bulk_change, devices_status="ERROR")

    assert running["status"] == "PROCESSING" and running["final"] is False
    assert running["progress"]["total"] == 30 and running["progress"]["failed"] == 1
    assert set(running["fragments"]) == {
        "pondops-summary",
        "pondops-failures",
        "pondops-devices",
        "pondops-log",
    }
    assert "2/30 (6.6%)" in running["fragments"]["pondops-summary"]
    assert running["fragments"]["pondops-devices"].count("data-device-change=") == 1  # filtered
    assert "<html" not in running["fragments"]["pondops-summary"]

    DeviceChange.objects.filter(bulk_change=bulk_change, is_processed=False).update(
        status="PROCESSED", is_processed=True
    )
    finish(bulk_change, "PROCESSED_WITH_ERRORS", timezone.now())
    final = live(admin_client, bulk_change)
    assert final["final"] is True and final["status"] == "PROCESSED_WITH_ERRORS"
    assert "30/30 (100%)" in final["fragments"]["pondops-summary"]

    html = page(admin_client, bulk_change)
    url = reverse("admin:bulkchanges_bulkchange_progress", args=[bulk_change.pk])
    assert f'data-live-url="{url}"' in html and "bulkchanges/progress.js" in html
    assert 'data-final="true"' in html


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


def test_time_to_complete_says_not_started_while_gated_and_never_started_if_cancelled_so(
    console: Console,
) -> None:
    from bulkchanges.admin import display

    bulk_change = make_bulk_change(console, 1)
    for status, queued, words in (
        (BulkChange.Status.SCHEDULED, None, "not started"),
        (BulkChange.Status.AWAITING_APPROVAL, None, "not started"),
        (BulkChange.Status.CANCELLED, None, "never started"),
    ):
        BulkChange.objects.filter(pk=bulk_change.pk).update(status=status, queued_at=queued)
        bulk_change.refresh_from_db()
        assert display.time_to_complete(bulk_change) == words
