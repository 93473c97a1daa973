"""The console's own pages in a real browser whose clock is in New York: a bulk change the real
workers (``qcluster``, ``poll_sqs``, SQS on moto, the POND simulator) processed with one
failure; its device list, the failed device's page (attempts, trail), retrying that one device,
the audit log with its filters, and the dashboard's recent actions. Every time reads as local
time with seconds and its zone, UTC on hover; no list scrolls sideways at 1440 or 1024 px.
Screenshots of every page at both widths land in test-artifacts/console/."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from playwright.sync_api import Browser, Page, expect

from bulkchanges.models import BulkChange, DeviceChange, OperatorMembership
from tests.conftest import PondWorld, Processes, Queue, create_bulk_change, iccids, seed_sims

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "console-pass-4f2c"
WIDTHS = (1440, 1024)
LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} E[SD]T$")
UTC_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC$")


class Shots:
    """Full-page screenshots of each page at every width, numbered in the flow's order."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.number = 0
        folder.mkdir(parents=True, exist_ok=True)

    def take(self, what: str, *, is_list: bool = False) -> None:
        self.number += 1
        for width in WIDTHS:
            self.page.set_viewport_size({"width": width, "height": 900})
            self.page.wait_for_load_state("load")
            self.page.evaluate("window.scrollTo(0, 0)")
            path = self.folder / f"{self.number:02d}-{what}-{width}.png"
            self.page.screenshot(path=str(path), full_page=True)
            self.page.screenshot(path=str(path.with_name(f"{path.stem}-top.png")))
            if is_list:
                fits = self.page.evaluate(
                    "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
                )
                assert fits, f"{what} scrolls sideways at {width} px"
                # Nor does the table inside its own box (the admin lets .results scroll).
                table_fits = self.page.evaluate(
                    "(() => { const box = document.querySelector('#changelist-form .results');"
                    " return box === null || box.scrollWidth <= box.clientWidth; })()"
                )
                assert table_fits, f"{what}'s table is wider than its box at {width} px"
        self.page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def assert_local_times(page: Page) -> None:
    """Every console time on the page was rewritten to New York time, UTC kept on hover."""
    times = page.locator("time.pondops-time")
    assert times.count() > 0
    for index in range(times.count()):
        moment = times.nth(index)
        assert LOCAL_TIME.match(moment.inner_text()), moment.inner_text()
        assert UTC_TIME.match(moment.get_attribute("title") or ""), moment.get_attribute("title")


def wait_until_final(bulk_change: BulkChange, processes: Processes, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        bulk_change.refresh_from_db()
        if bulk_change.status in BulkChange.TERMINAL:
            return
        time.sleep(0.5)
    print(processes.logs())
    raise AssertionError(f"bulk change {bulk_change.pk} still {bulk_change.status}")


@pytest.mark.timeout(600)
def test_an_operator_reads_a_failed_device_retries_it_and_audits_it_in_local_time(
    browser: Browser,
    live_server: object,
    pond_world: PondWorld,
    sqs_queue: Queue,
    processes: Processes,
    artifacts: Path,
) -> None:
    base_url = str(live_server.url)  # type: ignore[attr-defined]
    ops = User.objects.create_user("ops", "ops@example.com", PASSWORD, is_staff=True)
    ops.user_permissions.set(Permission.objects.filter(content_type__app_label="bulkchanges"))
    OperatorMembership.objects.create(user=ops, tenant=pond_world.tenant)
    numbers = iccids(12)
    seed_sims(pond_world, numbers)
    failing = numbers[4]
    pond_world.simulator.add_fault("pond", "set_sim_status", key=failing, status=400)
    bulk_change = create_bulk_change(pond_world, numbers, with_rev=False)
    processes.start("qcluster")
    processes.start("poll_sqs")
    wait_until_final(bulk_change, processes)
    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS

    context = browser.new_context(
        viewport={"width": WIDTHS[0], "height": 900}, timezone_id="America/New_York"
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    shots = Shots(page, artifacts / "console")
    try:
        # The login page carries the product's name.
        page.goto(f"{base_url}/admin/login/?next=/admin/")
        expect(page).to_have_title(re.compile("PondOps"))
        expect(page.locator("#site-name")).to_have_text("PondOps operations console")
        shots.take("login")
        page.fill("#id_username", "ops")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("#pondops-dashboard")).to_be_visible()
        assert page.locator("text=View site").count() == 0

        # The bulk change's devices: ICCIDs, statuses, times in New York with seconds.
        page.goto(f"{base_url}/admin/bulkchanges/devicechange/?bulk_change={bulk_change.pk}")
        expect(page.locator("h1")).to_have_text("Device changes")
        expect(page.locator("#result_list tbody tr")).to_have_count(12)
        assert_local_times(page)
        shots.take("device-list", is_list=True)

        # A time added later (a live refresh's fragment) is rewritten too, in summer as EDT.
        page.evaluate(
            """document.querySelector("#content-main").insertAdjacentHTML("beforeend",
            '<p id="late"><time class="pondops-time" datetime="2026-07-01T12:00:05Z"'
            + ' title="2026-07-01 12:00:05 UTC">2026-07-01 12:00:05 UTC</time></p>')"""
        )
        expect(page.locator("#late time")).to_have_text("2026-07-01 08:00:05 EDT")
        expect(page.locator("#late time")).to_have_attribute("title", "2026-07-01 12:00:05 UTC")
        page.reload()

        # Search by the start of the failing ICCID, then open its page.
        page.fill("#searchbar", failing[:-2])
        page.press("#searchbar", "Enter")
        expect(page.locator("#result_list")).to_contain_text(failing)
        page.goto(
            f"{base_url}/admin/bulkchanges/devicechange/?bulk_change={bulk_change.pk}"
            "&status__exact=ERROR"
        )
        expect(page.locator("#result_list tbody tr")).to_have_count(1)
        shots.take("device-list-failed", is_list=True)
        page.click(f"#result_list a:has-text('{failing}')")

        # The device's page: identifiers, outcome in words, attempts and its own trail.
        expect(page.locator("#pondops-device")).to_contain_text(failing)
        expect(page.locator("#pondops-outcome [data-status]")).to_have_attribute(
            "data-status", "ERROR"
        )
        expect(page.locator("#pondops-last-error")).to_contain_text("HTTP 400")
        expect(page.locator("#pondops-attempts")).to_contain_text("Device status change result")
        assert page.locator("#pondops-trail tbody tr").count() >= 2
        assert page.locator("text=Claim token").count() == 0
        assert_local_times(page)
        shots.take("device-page")

        # Retry this one device (the carrier no longer refuses it): confirm, then it succeeds.
        pond_world.simulator.clear_faults()
        page.click("#pondops-device-retry")
        expect(page.locator("#content")).to_contain_text(f"Retry device {failing}?")
        shots.take("device-retry-confirm")
        page.click("#pondops-confirm")
        expect(page.locator(".messagelist")).to_contain_text(f"Retried device {failing}")
        device = DeviceChange.objects.get(bulk_change=bulk_change, iccid=failing)
        deadline = time.monotonic() + 120
        while device.status != DeviceChange.Status.PROCESSED and time.monotonic() < deadline:
            time.sleep(0.5)
            device.refresh_from_db()
        assert device.status == DeviceChange.Status.PROCESSED, processes.logs()
        page.reload()
        expect(page.locator("#pondops-outcome [data-status]")).to_have_attribute(
            "data-status", "PROCESSED"
        )
        expect(page.locator("#pondops-attempts")).to_contain_text("Retry requested")
        expect(page.locator("#pondops-attempts")).to_contain_text("admin:ops")
        assert_local_times(page)
        shots.take("device-page-after-retry")

        # The audit log: by ICCID, with the bulk change, outcome and carrier filters.
        page.goto(f"{base_url}/admin/bulkchanges/bulkchangelog/")
        expect(page.locator("h1")).to_have_text("Audit log")
        assert_local_times(page)
        shots.take("audit-log", is_list=True)
        page.fill("#pondops-filter-bulk_change-value", str(bulk_change.pk))
        page.press("#pondops-filter-bulk_change-value", "Enter")
        expect(page.locator("#changelist-filter")).to_contain_text(f"Bulk change {bulk_change.pk}")
        page.click("#changelist-filter a:has-text('with errors')")
        expect(page.locator("#result_list")).to_contain_text(failing)
        expect(page.locator("#result_list")).to_contain_text("HTTP 400")
        assert "bulk_change=" in page.url and "has_errors=1" in page.url
        shots.take("audit-log-errors", is_list=True)
        page.click("#changelist-filter a:has-text('POND')")
        assert "carrier=POND" in page.url and f"bulk_change={bulk_change.pk}" in page.url
        expect(page.locator("#result_list")).to_contain_text(failing)
        page.click(f"#result_list a:has-text('{failing}') >> nth=0")
        expect(page.locator("#pondops-device")).to_contain_text(failing)

        # The dashboard's recent actions show the retry.
        page.goto(f"{base_url}/admin/")
        expect(page.locator("#recent-actions-module")).to_contain_text(f"Device change {device.pk}")
        shots.take("dashboard")
    finally:
        context.close()
