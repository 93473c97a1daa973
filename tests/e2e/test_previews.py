"""Previews and reverts in a real browser with the real workers (``qcluster`` reading the
preview in leased chunks, ``poll_sqs`` running what is created), SQS (moto) and the POND
simulator: preview a device list against the carrier from the new-bulk-change page, watch it
read, create the bulk change from it; revert a finished bulk change from its page. Every page
is captured at 1440 and 1024 px into test-artifacts/preview/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from playwright.sync_api import Page, expect

from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    DeviceChange,
    IntegrationAuthentication,
    OperatorMembership,
    Preview,
)
from tests.conftest import PondWorld, Processes, Queue, create_bulk_change, iccids, seed_sims

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "preview-pass-51c2"
TIMEOUT_MS = 120_000
WIDTHS = (1440, 1024)


@pytest.fixture
def shots(artifacts: Path) -> Path:
    folder = artifacts / "preview"
    folder.mkdir(exist_ok=True)
    return folder


def shoot(page: Page, folder: Path, name: str) -> None:
    """The whole page at each width; no page of the flow scrolls sideways."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        assert page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        ), f"{name} scrolls sideways at {width} px"
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def log_in(page: Page, base_url: str, world: PondWorld) -> None:
    ops = User.objects.create_user("ops", "ops@example.com", PASSWORD, is_staff=True)
    ops.user_permissions.set(Permission.objects.filter(content_type__app_label="bulkchanges"))
    OperatorMembership.objects.create(user=ops, tenant=world.tenant)
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#pondops-dashboard")).to_be_visible()


def wait_status(page: Page, processes: Processes, status: str, *, of: str = "preview") -> None:
    """Until the page's live status (a preview's, or a bulk change's) shows ``status``."""
    where = "#pondops-preview-status" if of == "preview" else "#pondops-status"
    try:
        expect(page.locator(f"{where} [data-status]")).to_have_attribute(
            "data-status", status, timeout=TIMEOUT_MS
        )
    except AssertionError:
        print(processes.logs())
        raise


@pytest.mark.timeout(600)
def test_preview_a_list_against_the_carrier_then_create_the_bulk_change(
    page: Page,
    live_server: object,
    pond_world: PondWorld,
    sqs_queue: Queue,
    processes: Processes,
    shots: Path,
) -> None:
    base_url = str(live_server.url)  # type: ignore[attr-defined]
    numbers = iccids(24)
    already = numbers[:6]
    seed_sims(pond_world, numbers[6:20])
    seed_sims(pond_world, already, services="DISABLED")  # unknown: the last four
    # Slow enough to watch: 3 requests/s, two reads a device.
    IntegrationAuthentication.objects.filter(pk=pond_world.pond.pk).update(rate_limit=3)
    processes.start("qcluster")
    processes.start("poll_sqs")
    log_in(page, base_url, pond_world)

    page.goto(
        f"{base_url}/admin/bulkchanges/bulkchange/new/?tenant={pond_world.tenant.pk}"
        "&integration=POND"
    )
    page.select_option("#id_update_status", "SUSPENDED")
    page.fill("#id_devices_text", "\n".join(numbers))
    page.click("#pondops-preview")
    expect(page.locator("#pondops-preview-carrier")).to_be_visible()
    shoot(page, shots, "01-new-bulk-change-checked")

    page.click("#pondops-preview-carrier")
    expect(page.locator("#pondops-preview-progress")).to_be_visible()
    preview = Preview.objects.get()
    assert Preview.objects.get(pk=preview.pk).status in (
        Preview.Status.QUEUED,
        Preview.Status.RUNNING,
    ), "the preview finished before it could be watched"
    # Caught mid-read: running, some devices read, the page updating itself.
    wait_status(page, processes, "RUNNING")
    expect(page.locator("#pondops-preview-progress .pondops-progress__label")).not_to_have_text(
        re.compile(r"^0/"), timeout=TIMEOUT_MS
    )
    shoot(page, shots, "02-preview-running")
    wait_status(page, processes, "DONE")
    expect(page.locator("#pondops-create-bulk-change")).to_be_visible()
    counts = page.locator("#pondops-verdicts")
    expect(counts.locator('tr[data-verdict="WOULD_CHANGE"]')).to_contain_text("14")
    expect(counts.locator('tr[data-verdict="ALREADY_IN_TARGET"]')).to_contain_text("6")
    expect(counts.locator('tr[data-verdict="UNKNOWN_TO_CARRIER"]')).to_contain_text("4")
    shoot(page, shots, "03-preview-done")
    # The chunked background run read each device once, and wrote nothing.
    assert set(pond_world.simulator.calls()["pond"]) == {"read_sim_status", "list_packages"}
    assert pond_world.simulator.call_count("pond", "read_sim_status") == 24
    assert BulkChangeLog.objects.filter(preview=preview, in_flight=True).count() == 0

    page.click('#pondops-verdicts tr[data-verdict="UNKNOWN_TO_CARRIER"] a')
    expect(page.locator(".pondops-preview-devices tbody tr")).to_have_count(4)
    shoot(page, shots, "04-preview-unknown-devices")

    page.goto(f"{base_url}/admin/bulkchanges/preview/")
    expect(page.locator("#result_list")).to_contain_text(f"Preview {preview.pk}")
    shoot(page, shots, "05-previews-list")

    page.goto(f"{base_url}/admin/bulkchanges/preview/{preview.pk}/change/")
    page.click("#pondops-create-bulk-change")
    expect(page.locator(".messagelist")).to_contain_text(f"created from preview {preview.pk}")
    bulk_change = BulkChange.objects.get(preview=preview)
    assert sorted(bulk_change.device_changes.values_list("iccid", flat=True)) == numbers[6:20]
    wait_status(page, processes, "PROCESSED", of="bulk change")
    shoot(page, shots, "06-created-bulk-change")


@pytest.mark.timeout(600)
def test_revert_a_finished_bulk_change_from_its_page(
    page: Page,
    live_server: object,
    pond_world: PondWorld,
    sqs_queue: Queue,
    processes: Processes,
    shots: Path,
) -> None:
    base_url = str(live_server.url)  # type: ignore[attr-defined]
    numbers = iccids(6, start=300)
    seed_sims(pond_world, numbers, services="DISABLED")
    bulk_change = create_bulk_change(pond_world, numbers, status="SUSPENDED", with_rev=False)
    # Finished before the workers start: four were ACTIVE before, one TERMINATED, one unknown.
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.PROCESSED)
    for iccid, previous, service in zip(
        numbers,
        ["ACTIVE", "ACTIVE", "ACTIVE", "ACTIVE", "TERMINATED", ""],
        [7001, 7002, 7003, 7004, None, None],
        strict=True,
    ):
        DeviceChange.objects.filter(bulk_change=bulk_change, iccid=iccid).update(
            status=DeviceChange.Status.PROCESSED,
            is_processed=True,
            previous_status=previous,
            rev_service_id=service,
        )
    processes.start("qcluster")
    processes.start("poll_sqs")
    log_in(page, base_url, pond_world)

    page.goto(f"{base_url}/admin/bulkchanges/bulkchange/{bulk_change.pk}/change/")
    expect(page.locator("#pondops-revert")).to_be_visible()
    shoot(page, shots, "07-finished-bulk-change")

    page.click("#pondops-revert")
    wait_status(page, processes, "DONE")
    expect(page.locator("#pondops-confirm-revert")).to_contain_text("4 devices back to ACTIVE")
    expect(page.locator("#pondops-confirm-revert")).to_contain_text("1 device back to TERMINATED")
    expect(page.locator("#rev-services")).to_contain_text("7004")
    expect(page.locator(".pondops-preview-devices")).to_contain_text(
        "no previous status was recorded"
    )
    shoot(page, shots, "08-revert-preview")

    page.click("#pondops-create-revert")
    expect(page.locator(".messagelist")).to_contain_text(
        f"Revert of bulk change {bulk_change.pk} created"
    )
    reverts = list(BulkChange.objects.filter(reverts=bulk_change).order_by("pk"))
    assert [r.request["UpdateStatus"] for r in reverts] == ["ACTIVE", "TERMINATED"]
    wait_status(page, processes, "PROCESSED", of="bulk change")
    shoot(page, shots, "09-revert-bulk-change")
    assert pond_world.simulator.pond_sim(numbers[0])["sim_data_service_status"] == "ENABLED"
