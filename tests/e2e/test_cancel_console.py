"""Cancelling a running bulk change from the console, in a real browser, with the real workers
(``qcluster`` and ``poll_sqs`` subprocesses), SQS (moto) and the Teal simulator answering
slowly: the confirm page says how many devices stop now and how many finish, the bulk change
is CANCELLING while those run and CANCELLED after, every device that sent its change to Teal
ends with its real outcome, the others CANCELLED — and the counts the pages show are the rows'.
Screenshots at 1440 and 1024 px land in test-artifacts/cancel/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db.models import Max
from playwright.sync_api import Page, expect

from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange
from bulkchanges.selectors import bulk_change_progress
from integrations.simulators.control import SimulatorControl
from tests.conftest import Processes, Queue, wait_for
from tests.fixtures.pipeline import TealWorld

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "cancel-pass-5c21"
DEVICES = 30
WIDTHS = (1440, 1024)
Status = DeviceChange.Status


def shoot(page: Page, folder: Path, name: str, *, list_page: bool = False) -> None:
    """The page at each width, full page; a list must not scroll sideways at either."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_load_state("load")
        if list_page:
            assert page.evaluate(
                "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
            ), f"{name} scrolls sideways at {width} px"
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def statuses_of(bulk_change: BulkChange) -> dict[str, int]:
    counts = bulk_change_progress(bulk_change_id=bulk_change.pk).counts
    return {status: n for status, n in counts.items() if n}


@pytest.mark.timeout(600)
def test_cancel_mid_run_from_the_page_tells_the_truth_and_lets_sent_changes_finish(
    page: Page,
    live_server: object,
    simulator: SimulatorControl,
    device_statuses: None,
    sqs_queue: Queue,
    processes: Processes,
    artifacts: Path,
) -> None:
    folder = artifacts / "cancel"
    folder.mkdir(exist_ok=True)
    base_url = str(live_server.url)  # type: ignore[attr-defined]
    User.objects.create_superuser("ops", "ops@example.com", PASSWORD)
    world = TealWorld.arrange(simulator)
    devices = world.devices(DEVICES)
    world.seed(devices)
    simulator.config(latency_ms=400)  # every Teal call takes 0.4 s
    simulator.configure_teal(completion_seconds=1.0)  # and each change a second more
    bulk_change = world.create(devices)
    processes.start("qcluster")
    processes.start("poll_sqs")

    page.goto(f"{base_url}/admin/login/?next=/admin/bulkchanges/bulkchange/{bulk_change.pk}/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#pondops-cancel")).to_be_visible()

    # Mid-run: some devices done, some at the carrier, most not started.
    wait_for(
        lambda: statuses_of(bulk_change).get(Status.PROCESSED, 0) >= 4,
        timeout=120,
        message="four devices processed",
    )
    page.reload()
    shoot(page, folder, "01-running")

    page.click("#pondops-cancel")
    explanation = page.locator("#content-main > p").first.inner_text()
    assert re.search(
        r"Right now \d+ devices? (has|have) not sent the change to the carrier yet", explanation
    )
    assert "they become CANCELLED now" in explanation
    assert "finish with their real outcome, PROCESSED or ERROR" in explanation or (
        "No device is in flight" in explanation
    )
    assert "ends CANCELLED" not in explanation and "end CANCELLED" not in explanation
    shoot(page, folder, "02-confirm")

    page.click("#pondops-confirm")
    message = page.locator(".messagelist .success").inner_text()
    cancel_row = BulkChangeLog.objects.get(
        bulk_change=bulk_change, log_entry_description="Bulk change cancelled"
    )
    assert cancel_row.process_by == "admin:ops"
    assert cancel_row.response_text in message
    told = re.match(r"(\d+) devices? cancelled now", cancel_row.response_text)
    assert told is not None
    cancelled_now = int(told.group(1))
    finishing = re.search(r"; (\d+) devices? (has|have) already sent", cancel_row.response_text)
    shoot(page, folder, "03-cancelling")

    # CANCELLING until the devices that sent their change have finished, then CANCELLED.
    expect(page.locator("#pondops-status [data-status]")).to_have_attribute(
        "data-status", "CANCELLED", timeout=120_000
    )
    expect(page.locator(".pondops-live-note")).to_have_text("This page no longer updates.")
    shoot(page, folder, "04-cancelled")

    rows = list(DeviceChange.objects.filter(bulk_change=bulk_change))
    sent = [row for row in rows if row.write_started_at is not None]
    unsent = [row for row in rows if row.write_started_at is None]
    assert {row.status for row in sent} <= {Status.PROCESSED, Status.ERROR}
    assert {row.status for row in unsent} == {Status.CANCELLED}
    assert len(unsent) == cancelled_now
    if finishing is not None:
        assert int(finishing.group(1)) <= len(sent)
    # Teal saw a change for exactly the devices that sent one, and none for the cancelled.
    changed_eids = {
        eid
        for operation in simulator.teal_operations()
        if operation["action"] == "enable"
        for eid in operation["eids"]
    }
    eid_of = {device.iccid: device.eid for device in devices}
    assert changed_eids == {eid_of[row.iccid] for row in sent}
    bulk_change.refresh_from_db()
    assert bulk_change.status == BulkChange.Status.CANCELLED
    last = DeviceChange.objects.filter(bulk_change=bulk_change).aggregate(last=Max("processed_at"))
    assert bulk_change.processed_at is not None and bulk_change.processed_at >= last["last"]

    # What the page says is what the rows say.
    changed = sum(row.status == Status.PROCESSED for row in rows)
    failed = sum(row.status == Status.ERROR for row in rows)
    summary = f"{changed} changed before the cancel took effect, {len(unsent)} cancelled"
    if failed:
        summary += f", {failed} failed"
    # The bar's label: a line each.
    lines = [f"{changed} changed", f"{len(unsent)} cancelled"] + (
        [f"{failed} failed"] * bool(failed)
    )
    assert page.locator(".pondops-progress__label").inner_text().splitlines() == lines
    expect(page.locator(".pondops-progress--large .pondops-progress")).to_have_attribute(
        "title", summary
    )
    expect(page.locator("tr[data-device-status=PROCESSED] td.pondops-num")).to_have_text(
        str(changed)
    )
    expect(page.locator("tr[data-device-status=CANCELLED] td.pondops-num")).to_have_text(
        str(len(unsent))
    )
    [completion] = BulkChangeLog.objects.filter(
        bulk_change=bulk_change, log_entry_description="Bulk change completed"
    )
    assert completion.response_text == f"CANCELLED: {summary}"

    page.goto(f"{base_url}/admin/bulkchanges/bulkchange/")
    assert page.locator("#result_list .pondops-progress__label").inner_text().splitlines() == lines
    shoot(page, folder, "05-list", list_page=True)
