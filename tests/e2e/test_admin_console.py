"""The whole life of a bulk change in the operations console, in a real browser, with the
real workers (``qcluster`` and ``poll_sqs`` subprocesses), SQS (moto) and the carrier
simulators: log in, upload a CSV, read the preview, confirm, watch it finish, open its log,
retry the device that failed, export the CSV. Screenshots land in test-artifacts/."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from playwright.sync_api import FilePayload, Page, expect

from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    DeviceChange,
    IntegrationAuthentication,
    OperatorMembership,
    Tenant,
)
from bulkchanges.services import bulk_change_cancel
from bulkchanges.services.exports import OPERATOR_EXPORT
from bulkchanges.services.logs import OPERATOR_RETRY
from tests.admin.conftest import Console, make_bulk_change
from tests.conftest import PondWorld, Processes, Queue, create_bulk_change, iccids, seed_sims

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "console-pass-93b1"
PROCESSING_TIMEOUT_MS = 240_000
THEIR_NAME = "Borealis Telematics"


def other_tenants_bulk_change() -> BulkChange:
    """Another tenant's bulk change, cancelled before the workers start."""
    tenant = Tenant.objects.create(name=THEIR_NAME)
    pond, rev = (
        IntegrationAuthentication.objects.create(
            tenant=tenant, integration=integration, base_url="http://127.0.0.1:9/", account="B"
        )
        for integration in ("POND", "REV")
    )
    bulk_change = make_bulk_change(Console(tenant, pond, rev), 2, start=800)
    bulk_change_cancel(bulk_change=bulk_change, actor="admin:someone-else")
    return bulk_change


def log_in(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#pondops-dashboard")).to_be_visible()


def screenshot(page: Page, path: Path) -> None:
    """What the operator sees first (the viewport), and the whole page beside it (where the
    admin's sticky navigation sidebar is drawn wherever the capture scrolled to)."""
    page.wait_for_load_state("load")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path))
    page.screenshot(path=str(path.with_name(path.stem + "-full.png")), full_page=True)


def wait_for_status(page: Page, status: str, processes: Processes) -> None:
    try:
        expect(page.locator("#pondops-status [data-status]")).to_have_attribute(
            "data-status", status, timeout=PROCESSING_TIMEOUT_MS
        )
    except AssertionError:
        print(processes.logs())
        raise


@pytest.mark.timeout(900)
def test_a_staff_member_runs_a_bulk_change_from_upload_to_export(
    page: Page,
    live_server: object,
    pond_world: PondWorld,
    sqs_queue: Queue,
    processes: Processes,
    artifacts: Path,
) -> None:
    base_url = str(live_server.url)  # type: ignore[attr-defined]
    # A tenant's operator (every console permission, not a superuser): another tenant's bulk
    # change is neither listed nor offered.
    ops = User.objects.create_user("ops", "ops@example.com", PASSWORD, is_staff=True)
    ops.user_permissions.set(Permission.objects.filter(content_type__app_label="bulkchanges"))
    OperatorMembership.objects.create(user=ops, tenant=pond_world.tenant)
    theirs = other_tenants_bulk_change()
    numbers = iccids(47)
    seed_sims(pond_world, numbers)
    failing = numbers[5]
    pond_world.simulator.add_fault("pond", "set_sim_status", key=failing, status=400)
    lines = ["iccid", *numbers[:25], numbers[3], "8914-not-an-iccid", *numbers[25:], numbers[40]]
    assert len(lines) == 51  # a header and 50 lines: 47 valid, 2 duplicates, 1 malformed
    # Two more bulk changes in the list: one cancelled before the workers start, one of
    # SIMs the carrier does not know, so it ends ERROR.
    cancelled = create_bulk_change(pond_world, iccids(4, start=600), with_rev=False)
    bulk_change_cancel(bulk_change=cancelled, actor="admin:ops")
    create_bulk_change(pond_world, iccids(3, start=500), with_rev=False)
    processes.start("qcluster")
    processes.start("poll_sqs")

    # Log in and open the new-bulk-change form from the list.
    log_in(page, base_url)
    page.click("#content-main a[href='/admin/bulkchanges/bulkchange/'] >> nth=0")
    page.click("#pondops-new-bulk-change")
    expect(page.locator("#id_tenant")).not_to_contain_text(THEIR_NAME)
    page.select_option("#id_tenant", label="Acme IoT")
    page.select_option("#id_integration", "POND")
    page.click("#pondops-continue")
    expect(page.locator("#pondops-integration")).to_have_text("POND")

    # The change, a Rev.io service, and the CSV.
    page.select_option("#id_update_status", "SUSPENDED")
    page.click("summary:has-text('Rev.io service')")
    page.fill("#id_rev_customer_id", "42")
    page.fill("#id_rev_service_type_id", "7")
    page.fill("#id_rev_products", "55 4.50")
    upload: FilePayload = {
        "name": "devices.csv",
        "mimeType": "text/csv",
        "buffer": "\n".join(lines).encode(),
    }
    page.set_input_files("#id_devices_file", files=[upload])
    screenshot(page, artifacts / "admin-new-bulk-change-form.png")
    page.click("#pondops-preview")

    # The preview: 47 valid, 2 duplicates, 1 malformed — and nothing created yet.
    def count(name: str) -> str:
        return page.locator(f'[data-count="{name}"] .pondops-stat__value').inner_text()

    assert (count("valid"), count("duplicates"), count("malformed")) == ("47", "2", "1")
    expect(page.locator("#pondops-malformed")).to_contain_text("8914-not-an-iccid")
    expect(page.locator("#pondops-duplicates")).to_contain_text(numbers[40])
    assert BulkChange.objects.filter(created_by="admin:ops").count() == 0
    screenshot(page, artifacts / "admin-new-bulk-change-preview.png")

    # Confirm: the bulk change page, which follows the workers without reloading.
    started = time.monotonic()
    page.click("#pondops-confirm")
    expect(page.locator(".messagelist")).to_contain_text("queued: 47 devices to SUSPENDED")
    bulk_change = BulkChange.objects.get(created_by="admin:ops")
    page.evaluate("window.pondopsSamePage = true")
    wait_for_status(page, "PROCESSED_WITH_ERRORS", processes)
    assert page.evaluate("window.pondopsSamePage") is True, "the page reloaded"
    expect(page.locator(".pondops-progress__label").first).to_have_text("47/47 (100%)")
    print(f"\n47 devices processed in {time.monotonic() - started:.1f} s")
    expect(page.locator("#pondops-status-words")).to_contain_text("Finished with failures")

    # Its failure, grouped by the carrier's message, and the failed device in its devices.
    screenshot(page, artifacts / "admin-bulk-change-page.png")
    expect(page.locator("#pondops-failures")).to_contain_text("HTTP 400 from POND")
    page.click("#pondops-device-filters a[data-filter='ERROR']")
    expect(page.locator("#pondops-device-table tbody tr")).to_have_count(1)
    expect(page.locator("#pondops-device-table")).to_contain_text(failing)
    # The audit log's errors, in the log list.
    page.click("#pondops-log-errors-only")
    expect(page.locator("#result_list")).to_contain_text("HTTP 400 from POND")

    # Retry the failed device from the bulk change's failed devices.
    page.goto(
        f"{base_url}/admin/bulkchanges/devicechange/?bulk_change={bulk_change.pk}&status__exact=ERROR"
    )
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list")).to_contain_text(failing)
    page.check("#result_list tbody input.action-select")
    page.select_option("select[name=action]", "retry_failed_action")
    page.click("button[name=index]")
    expect(page.locator("#content")).to_contain_text("Retry these failed devices?")
    page.click("#pondops-confirm")
    expect(page.locator(".messagelist")).to_contain_text("1 failed devices re-queued")

    # Back on its page: it finishes again, this time PROCESSED.
    page.goto(f"{base_url}/admin/bulkchanges/bulkchange/{bulk_change.pk}/change/")
    wait_for_status(page, "PROCESSED", processes)
    assert DeviceChange.objects.get(bulk_change=bulk_change, iccid=failing).status == "PROCESSED"

    # The list, with both bulk changes and their progress.
    page.goto(f"{base_url}/admin/bulkchanges/bulkchange/")
    expect(page.locator("#result_list")).to_contain_text("admin:ops")
    expect(page.locator("#result_list")).not_to_contain_text(THEIR_NAME)
    assert page.locator(f"#result_list a[href$='/{theirs.pk}/change/']").count() == 0
    screenshot(page, artifacts / "admin-bulk-change-list.png")

    # Export the devices with their outcomes.
    page.goto(f"{base_url}/admin/bulkchanges/bulkchange/{bulk_change.pk}/change/")
    screenshot(page, artifacts / "admin-bulk-change-page-final.png")
    with page.expect_download() as download_info:
        page.click("#pondops-export")  # no confirmation: an export changes nothing
    download = download_info.value
    assert download.suggested_filename == f"bulk-change-{bulk_change.pk}-devices.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert sorted(row["iccid"] for row in rows) == sorted(numbers)
    assert {row["status"] for row in rows} == {"PROCESSED"}

    page.goto(f"{base_url}/admin/")
    screenshot(page, artifacts / "admin-dashboard.png")

    actors = set(
        BulkChangeLog.objects.filter(
            bulk_change=bulk_change, log_entry_description__in=[OPERATOR_RETRY, OPERATOR_EXPORT]
        ).values_list("process_by", flat=True)
    )
    assert actors == {"admin:ops"}
