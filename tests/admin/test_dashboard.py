"""The dashboard on the admin index: bulk changes by status in the last 24 hours, devices
finished per carrier, devices in flight, the queue's approximate depth (or "unavailable",
never a crash) and the oldest unfinished bulk change."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bulkchanges import sqs
from bulkchanges.models import BulkChange, DeviceChange
from tests.admin.conftest import Console, make_bulk_change
from tests.conftest import Queue, free_port

pytestmark = pytest.mark.django_db

INDEX = reverse("admin:index")


def cell(html: str, table: str, label: str) -> list[str]:
    section = re.search(rf'<table id="{table}">(.*?)</table>', html, re.DOTALL)
    assert section, f"no {table} table"
    row = re.search(rf"{label}.*?</tr>", section.group(1), re.DOTALL)
    assert row, f"no {label} row in {table}"
    return re.findall(r'<td class="pondops-num[^"]*">(?:<a href="[^"]+">)?(\d+)', row.group(0))


@pytest.fixture
def no_queue(settings: Any) -> Iterator[None]:
    sqs.sqs_client.cache_clear()
    settings.PONDOPS_SQS_QUEUE_URL = ""
    yield
    sqs.sqs_client.cache_clear()


def test_the_index_summarises_the_last_24_hours(
    admin_client: Client, console: Console, no_queue: None
) -> None:
    running = make_bulk_change(console, 4, device_statuses=["PROCESSED", "ERROR", "PROCESSING"])
    done = make_bulk_change(console, 2, start=10, device_statuses=["PROCESSED", "SKIPPED"])
    BulkChange.objects.filter(pk=done.pk).update(status="PROCESSED")
    old = make_bulk_change(console, 1, start=20, device_statuses=["PROCESSED"])
    a_week_ago = timezone.now() - timedelta(days=7)
    BulkChange.objects.filter(pk=old.pk).update(status="PROCESSED", created_at=a_week_ago)
    DeviceChange.objects.filter(is_processed=True).update(processed_at=timezone.now())
    DeviceChange.objects.filter(bulk_change=old).update(processed_at=a_week_ago)
    BulkChange.objects.filter(pk=running.pk).update(created_at=timezone.now() - timedelta(hours=2))

    html = admin_client.get(INDEX).content.decode()

    assert cell(html, "pondops-by-status", 'data-status="QUEUED"') == ["1"]
    assert cell(html, "pondops-by-status", 'data-status="PROCESSED"') == ["1"]  # not last week's
    assert cell(html, "pondops-by-carrier", "POND") == ["2", "1", "1", "0"]
    oldest = re.search(r'<tbody id="pondops-oldest">(.*?)</tbody>', html, re.DOTALL)
    assert oldest and f">{running.pk}</a> · Acme IoT · POND" in oldest.group(1)
    assert "created 2h 00m ago" in oldest.group(1) and "pondops-stale" in oldest.group(1)
    assert re.search(
        r'>1</a>\s*<span class="pondops-stat__label">devices <span[^>]+>Processing', html
    )
    assert "Bulk changes" in html  # the app list is still there


def test_the_queue_depth_comes_from_sqs_attributes(
    admin_client: Client, console: Console, sqs_queue: Queue
) -> None:
    for n in range(3):
        sqs.send_bulk_change(1000 + n)

    html = admin_client.get(INDEX).content.decode()

    queue = re.search(r'<div class="pondops-stat" id="pondops-queue">(.*?)</div>', html, re.DOTALL)
    assert queue and '<span class="pondops-stat__value">3</span>' in queue.group(1)
    assert "≈ 3 waiting" in queue.group(1)


@pytest.mark.parametrize("reachable_config", [False, True])
def test_an_unreachable_or_unconfigured_queue_shows_unavailable_and_never_crashes(
    admin_client: Client, console: Console, settings: Any, reachable_config: bool
) -> None:
    sqs.sqs_client.cache_clear()
    if reachable_config:  # configured, but nothing listens there
        settings.AWS_ENDPOINT_URL_SQS = f"http://127.0.0.1:{free_port()}"
        settings.PONDOPS_SQS_QUEUE_URL = settings.AWS_ENDPOINT_URL_SQS + "/000000000000/gone"
    else:
        settings.PONDOPS_SQS_QUEUE_URL = ""
    try:
        response = admin_client.get(INDEX)
    finally:
        sqs.sqs_client.cache_clear()

    assert response.status_code == 200
    assert "unavailable" in response.content.decode()
    assert "SQS cannot be reached" in response.content.decode()


def test_the_dashboard_is_for_staff_who_may_view_bulk_changes(
    staff_client: Callable[..., Client], console: Console, no_queue: None
) -> None:
    assert 'id="pondops-dashboard"' not in staff_client("view_tenant").get(INDEX).content.decode()
    viewer = staff_client("view_bulkchange", username="viewer")
    assert 'id="pondops-dashboard"' in viewer.get(INDEX).content.decode()


DASHBOARD_LIVE = reverse("admin:bulkchanges_bulkchange_dashboard_live")


def test_the_dashboard_polls_its_live_endpoint_which_answers_the_same_figures(
    admin_client: Client, console: Console, no_queue: None
) -> None:
    make_bulk_change(console, 3, device_statuses=["PROCESSING"])

    index = admin_client.get(INDEX).content.decode()
    answer = admin_client.get(DASHBOARD_LIVE).json()

    assert f'data-live-url="{DASHBOARD_LIVE}"' in index and "bulkchanges/progress.js" in index
    assert answer["final"] is False and set(answer["fragments"]) == {"pondops-dashboard"}
    body = answer["fragments"]["pondops-dashboard"]
    assert 'id="pondops-oldest"' in body and "<time" in body  # the oldest one's creation
    assert cell(body, "pondops-by-status", "Queued") == cell(index, "pondops-by-status", "Queued")
    assert 'id="pondops-dashboard"' not in body  # the content, swapped into the element


def test_the_dashboard_live_endpoint_needs_view_permission(
    staff_client: Callable[..., Client], console: Console
) -> None:
    assert staff_client(username="nobody").get(DASHBOARD_LIVE).status_code == 403
    assert staff_client("view_bulkchange").get(DASHBOARD_LIVE).status_code == 200
