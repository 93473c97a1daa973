"""Retry, cancel and export — from the bulk change page and as list actions. Retry and cancel
show a confirmation page first (a retry's lists the devices and why they failed); export
downloads at once. Each leaves a log row naming the staff user and an admin history entry;
export streams."""

from __future__ import annotations

import csv
import io
import re
import time
import tracemalloc
from collections.abc import Callable

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from bulkchanges.services.exports import OPERATOR_EXPORT
from bulkchanges.services.logs import OPERATOR_CANCEL, OPERATOR_RETRY
from tests.admin.conftest import Console, make_bulk_change

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:bulkchanges_bulkchange_changelist")
DEVICES = reverse("admin:bulkchanges_devicechange_changelist")


def url(name: str, bulk_change: BulkChange) -> str:
    return reverse(f"admin:bulkchanges_bulkchange_{name}", args=[bulk_change.pk])


def logged_by(bulk_change: BulkChange, description: str) -> list[str]:
    return list(
        BulkChangeLog.objects.filter(
            bulk_change=bulk_change, log_entry_description=description, device_change=None
        ).values_list("process_by", flat=True)
    )


def statuses(bulk_change: BulkChange) -> list[str]:
    return list(bulk_change.device_changes.order_by("id").values_list("status", flat=True))


def test_retry_from_the_page_asks_first_then_requeues_failed_devices_and_logs_the_user(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 3, device_statuses=["ERROR", "PROCESSED", "ERROR"])
    DeviceChange.objects.filter(bulk_change=bulk_change, status="ERROR").update(attempts=5)

    confirmation = admin_client.get(url("retry", bulk_change))
    assert confirmation.status_code == 200
    assert "Retry the failed devices of bulk change" in confirmation.content.decode()
    assert statuses(bulk_change) == ["ERROR", "PROCESSED", "ERROR"]  # asking changes nothing

    response = admin_client.post(url("retry", bulk_change), follow=True)

    assert statuses(bulk_change) == ["PENDING", "PROCESSED", "PENDING"]
    assert set(bulk_change.device_changes.values_list("attempts", flat=True)) == {0}
    assert logged_by(bulk_change, OPERATOR_RETRY) == ["admin:admin"]
    assert "2 failed devices re-queued" in response.content.decode()


def test_cancel_from_the_page_asks_first_then_cancels_and_logs_the_user(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 3, device_statuses=["PROCESSED"])

    assert "Cancel bulk change" in admin_client.get(url("cancel", bulk_change)).content.decode()
    admin_client.post(url("cancel", bulk_change))

    bulk_change.refresh_from_db()
    assert bulk_change.status == BulkChange.Status.CANCELLED
    assert statuses(bulk_change) == ["PROCESSED", "CANCELLED", "CANCELLED"]
    assert logged_by(bulk_change, OPERATOR_CANCEL) == ["admin:admin"]
    page = admin_client.get(url("change", bulk_change)).content.decode()
    assert 'id="pondops-cancel"' not in page  # a final bulk change offers no cancel


def test_cancel_with_a_device_in_flight_says_what_happens_and_records_the_admin_history(
    admin_client: Client, console: Console
) -> None:
    from django.contrib.admin.models import LogEntry
    from django.utils import timezone

    bulk_change = make_bulk_change(console, 4, device_statuses=["PROCESSED", "PROCESSING"])
    DeviceChange.objects.filter(bulk_change=bulk_change, status="PROCESSING").update(
        write_started_at=timezone.now()  # its change is at the carrier
    )

    confirm = admin_client.get(url("cancel", bulk_change)).content.decode()
    assert (
        "Right now 2 devices have not sent the change to the carrier yet: they become "
        "CANCELLED now." in confirm
    )
    assert "1 device has already sent the change to the carrier" in confirm
    assert "finish with their real outcome, PROCESSED or ERROR" in confirm
    assert "stays CANCELLING until they have" in confirm
    assert "Rev.io" not in confirm  # this change creates no Rev.io service

    page = admin_client.post(url("cancel", bulk_change), follow=True).content.decode()

    bulk_change.refresh_from_db()
    assert bulk_change.status == BulkChange.Status.CANCELLING
    assert statuses(bulk_change) == ["PROCESSED", "PROCESSING", "CANCELLED", "CANCELLED"]
    assert "2 devices cancelled now (no change sent to the carrier); 1 device has already" in page
    [entry] = LogEntry.objects.filter(object_id=str(bulk_change.pk))
    assert entry.user.get_username() == "admin"
    assert entry.change_message.startswith("Cancelled: 2 devices cancelled now")


def test_cancelling_a_finished_bulk_change_explains_why_not(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 1, device_statuses=["PROCESSED"])
    BulkChange.objects.filter(pk=bulk_change.pk).update(status="PROCESSED")

    response = admin_client.post(url("cancel", bulk_change), follow=True)

    assert (
        "is PROCESSED; only NEW, SCHEDULED, AWAITING_APPROVAL, QUEUED, PROCESSING bulk "
        "changes can be cancelled" in response.content.decode()
    )
    assert logged_by(bulk_change, OPERATOR_CANCEL) == []


def test_list_actions_show_a_confirmation_page_before_acting(
    admin_client: Client, console: Console
) -> None:
    first = make_bulk_change(console, 2, device_statuses=["ERROR"])
    second = make_bulk_change(console, 2, start=10, device_statuses=["ERROR", "ERROR"])
    selected = {"_selected_action": [first.pk, second.pk]}

    confirmation = admin_client.post(
        CHANGELIST, {"action": "retry_failed_action", "index": 0, **selected}
    )
    html = confirmation.content.decode()
    assert "Retry the failed devices of these bulk changes?" in html
    assert 'name="post" value="yes"' in html
    assert statuses(first) == ["ERROR", "PENDING"]

    admin_client.post(CHANGELIST, {"action": "retry_failed_action", "post": "yes", **selected})
    assert statuses(first) == ["PENDING", "PENDING"] and statuses(second) == ["PENDING"] * 2
    assert logged_by(first, OPERATOR_RETRY) == logged_by(second, OPERATOR_RETRY) == ["admin:admin"]

    admin_client.post(CHANGELIST, {"action": "cancel_action", "index": 0, **selected})
    assert BulkChange.objects.filter(status="CANCELLED").count() == 0
    admin_client.post(CHANGELIST, {"action": "cancel_action", "post": "yes", **selected})
    assert BulkChange.objects.filter(status="CANCELLED").count() == 2
    assert logged_by(first, OPERATOR_CANCEL) == ["admin:admin"]


def test_retry_selected_failed_devices_from_the_device_list(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 3, device_statuses=["ERROR", "ERROR", "PROCESSED"])
    ids = list(bulk_change.device_changes.order_by("id").values_list("pk", flat=True))
    chosen = {"_selected_action": [ids[0], ids[2]]}

    confirmation = admin_client.post(
        DEVICES, {"action": "retry_failed_action", "index": 0, **chosen}
    ).content.decode()
    assert "Retry these failed devices?" in confirmation
    assert "1 selected devices are not in ERROR and are left alone" in confirmation
    response = admin_client.post(
        DEVICES, {"action": "retry_failed_action", "post": "yes", **chosen}, follow=True
    )

    assert statuses(bulk_change) == ["PENDING", "ERROR", "PROCESSED"]
    rows = BulkChangeLog.objects.filter(
        bulk_change=bulk_change, log_entry_description=OPERATOR_RETRY
    )
    assert set(rows.values_list("process_by", flat=True)) == {"admin:admin"}
    assert rows.filter(device_change_id=ids[0]).exists()
    assert "1 failed devices re-queued" in response.content.decode()
    assert history(bulk_change) == ["Retried: 1 failed devices re-queued"]


def read_csv(response: StreamingHttpResponse) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()  # type: ignore[arg-type]
    return list(csv.reader(io.StringIO(body)))


def history(bulk_change: BulkChange) -> list[str]:
    return list(
        LogEntry.objects.filter(
            object_id=str(bulk_change.pk),
            content_type=ContentType.objects.get_for_model(BulkChange),
        )
        .order_by("id")
        .values_list("change_message", flat=True)
    )


def test_export_downloads_at_once_streams_devices_with_outcomes_and_logs_the_user(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 3, device_statuses=["PROCESSED", "ERROR"])
    DeviceChange.objects.filter(bulk_change=bulk_change, status="ERROR").update(
        last_error="=HYPERLINK(evil)"
    )

    response = admin_client.get(url("export", bulk_change))  # a plain link: no confirmation

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert f'filename="bulk-change-{bulk_change.pk}-devices.csv"' in response["Content-Disposition"]
    rows = read_csv(response)
    assert rows[0][:6] == ["bulk_change_id", "device_change_id", "iccid", "msisdn", "eid", "status"]
    assert [row[5] for row in rows[1:]] == ["PROCESSED", "ERROR", "PENDING"]
    assert rows[2][7] == "'=HYPERLINK(evil)"  # no formula reaches a spreadsheet
    assert logged_by(bulk_change, OPERATOR_EXPORT) == ["admin:admin"]
    assert history(bulk_change) == ["Exported the devices as CSV"]


def test_export_list_action_downloads_the_selected_bulk_changes_in_one_file_at_once(
    admin_client: Client, console: Console
) -> None:
    first = make_bulk_change(console, 2)
    second = make_bulk_change(console, 1, start=10)
    selected = {"_selected_action": [first.pk, second.pk]}

    response = admin_client.post(CHANGELIST, {"action": "export_action", "index": 0, **selected})

    assert isinstance(response, StreamingHttpResponse)
    assert [int(row[0]) for row in read_csv(response)[1:]] == [first.pk, first.pk, second.pk]
    assert logged_by(first, OPERATOR_EXPORT) == logged_by(second, OPERATOR_EXPORT)
    assert logged_by(first, OPERATOR_EXPORT) == ["admin:admin"]
    assert history(first) == history(second) == ["Exported the devices as CSV"]


def test_the_retry_confirmation_lists_which_devices_and_why_and_the_retry_is_in_the_history(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 4, device_statuses=["ERROR", "PROCESSED", "ERROR"])
    failed = list(
        bulk_change.device_changes.filter(status="ERROR")
        .order_by("id")
        .values_list("iccid", flat=True)
    )

    html = admin_client.get(url("retry", bulk_change)).content.decode()

    table = html[html.index('id="pondops-confirm-devices"') :]
    assert [iccid in table for iccid in failed] == [True, True]
    assert "HTTP 400 from POND: unknown ICCID" in table
    assert "2 devices." in html
    admin_client.post(url("retry", bulk_change))
    assert history(bulk_change) == ["Retried: 2 failed devices re-queued"]


def test_the_retry_confirmation_lists_at_most_100_devices_and_says_how_many_more(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 103, device_statuses=["ERROR"] * 103)

    html = admin_client.get(url("retry", bulk_change)).content.decode()

    assert "103 devices; the first 100 are listed, 3 more are not." in html
    assert html.count("<tr><td>", html.index('id="pondops-confirm-devices"')) == 100


def test_retry_one_failure_group_requeues_only_the_devices_with_that_error(
    admin_client: Client, console: Console
) -> None:
    from bulkchanges.console_selectors import failure_key

    bulk_change = make_bulk_change(console, 4, device_statuses=["ERROR", "ERROR", "ERROR"])
    ids = list(bulk_change.device_changes.order_by("id").values_list("pk", flat=True))
    DeviceChange.objects.filter(pk=ids[2]).update(last_error="HTTP 503 from POND: busy")
    key = failure_key("HTTP 400 from POND: unknown ICCID")

    confirm = admin_client.get(url("retry", bulk_change), {"group": key}).content.decode()
    assert "Retry 2 failed devices of bulk change" in confirm
    assert f'name="group" value="{key}"' in confirm
    assert "HTTP 503" not in confirm
    assert statuses(bulk_change) == ["ERROR", "ERROR", "ERROR", "PENDING"]  # asking changes nothing

    answer = admin_client.post(f"{url('retry', bulk_change)}?group={key}", follow=True)

    assert "2 failed devices re-queued" in answer.content.decode()
    assert statuses(bulk_change) == ["PENDING", "PENDING", "ERROR", "PENDING"]
    assert history(bulk_change) == ["Retried: 2 failed devices re-queued"]
    gone = admin_client.get(url("retry", bulk_change), {"group": key}, follow=True)
    assert "no failed device has that error any more" in gone.content.decode()


def copy_devices(bulk_change: BulkChange, *, total: int) -> None:
    """Grow a bulk change to ``total`` devices by copying its rows in SQL (seconds, where
    100,000 ORM inserts take a minute); the export does not care that ICCIDs repeat."""
    columns = ", ".join(
        connection.ops.quote_name(field.column)
        for field in DeviceChange._meta.concrete_fields
        if not field.primary_key and field.column
    )
    table = DeviceChange._meta.db_table
    with connection.cursor() as cursor:
        while (count := bulk_change.device_changes.count()) < total:
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {table} "  # noqa: S608
                "WHERE bulk_change_id = %s LIMIT %s",
                [bulk_change.pk, min(count, total - count)],
            )


def test_exporting_100000_devices_streams_in_constant_memory(
    admin_client: Client, console: Console, capsys: pytest.CaptureFixture[str]
) -> None:
    bulk_change = make_bulk_change(console, 1000)
    copy_devices(bulk_change, total=100_000)

    response = admin_client.get(url("export", bulk_change))
    assert isinstance(response, StreamingHttpResponse)
    started = time.monotonic()
    tracemalloc.start()
    lines = 0
    for chunk in response.streaming_content:
        lines += bytes(chunk).count(b"\n")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert lines == 100_001
    # The CSV is ~7 MB and 100,000 rows as tuples far more; streaming holds one chunk.
    assert peak < 8 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    with capsys.disabled():
        print(
            f"\nexport of 100,000 devices: {time.monotonic() - started:.1f} s, "
            f"peak traced memory {peak / 1e6:.1f} MB"
        )


def test_staff_without_retry_or_cancel_permission_see_neither_action(
    staff_client: Callable[..., Client], console: Console
) -> None:
    bulk_change = make_bulk_change(console, 2, device_statuses=["ERROR"])
    viewer = staff_client("view_bulkchange", "view_devicechange")
    operator = staff_client(
        "view_bulkchange",
        "view_devicechange",
        "retry_bulkchange",
        "cancel_bulkchange",
        username="operator2",
    )

    def actions(client: Client, list_url: str) -> set[str]:
        html = client.get(list_url).content.decode()
        return set(re.findall(r'<option value="(\w+_action)"', html))

    assert actions(viewer, CHANGELIST) == {"export_action"}
    assert actions(viewer, DEVICES) == set()
    page = viewer.get(url("change", bulk_change)).content.decode()
    assert 'id="pondops-retry"' not in page and 'id="pondops-cancel"' not in page
    assert 'id="pondops-export"' in page
    assert viewer.get(url("retry", bulk_change)).status_code == 403
    assert viewer.post(url("retry", bulk_change)).status_code == 403
    assert viewer.post(url("cancel", bulk_change)).status_code == 403
    viewer.post(
        CHANGELIST, {"action": "cancel_action", "post": "yes", "_selected_action": [bulk_change.pk]}
    )
    bulk_change.refresh_from_db()
    assert bulk_change.status == BulkChange.Status.QUEUED and statuses(bulk_change)[0] == "ERROR"

    assert actions(operator, CHANGELIST) == {
        "retry_failed_action",
        "cancel_action",
        "export_action",
    }
    assert actions(operator, DEVICES) == {"retry_failed_action"}
    page = operator.get(url("change", bulk_change)).content.decode()
    assert 'id="pondops-retry"' in page and 'id="pondops-cancel"' in page
    operator.post(url("retry", bulk_change))
    assert logged_by(bulk_change, OPERATOR_RETRY) == ["admin:operator2"]


def test_resubmit_is_offered_only_for_unconfirmed_errors_and_asks_first(
    admin_client: Client, console: Console
) -> None:
    from django.utils import timezone

    from bulkchanges.services.logs import OPERATOR_RESUBMIT

    bulk_change = make_bulk_change(console, 3, device_statuses=["ERROR", "ERROR", "PROCESSED"])
    page = admin_client.get(url("change", bulk_change)).content.decode()
    assert 'id="pondops-resubmit"' not in page  # no submitted request among the errors

    unconfirmed = bulk_change.device_changes.order_by("id").first()
    assert unconfirmed is not None
    DeviceChange.objects.filter(pk=unconfirmed.pk).update(
        carrier_request_id="595f5c44", carrier_submitted_at=timezone.now()
    )
    page = admin_client.get(url("change", bulk_change)).content.decode()
    assert "Resubmit unconfirmed devices (1)" in page

    confirm = admin_client.get(url("resubmit", bulk_change)).content.decode()
    assert "submitted to the carrier again, as a new request" in confirm
    assert unconfirmed.iccid in confirm and "1 device." in confirm
    assert statuses(bulk_change) == ["ERROR", "ERROR", "PROCESSED"]  # nothing yet

    answer = admin_client.post(url("resubmit", bulk_change), follow=True)
    assert "1 unconfirmed devices re-queued to submit again" in answer.content.decode()
    assert statuses(bulk_change) == ["PENDING", "ERROR", "PROCESSED"]
    unconfirmed.refresh_from_db()
    assert unconfirmed.carrier_request_id == "" and unconfirmed.carrier_submitted_at is None
    assert logged_by(bulk_change, OPERATOR_RESUBMIT) == ["admin:admin"]
    assert history(bulk_change) == ["Resubmitted: 1 unconfirmed devices re-queued to submit again"]
