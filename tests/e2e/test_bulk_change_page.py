"""The bulk change page, list and dashboard in a real browser with the real workers
(``qcluster`` and ``poll_sqs``), SQS (moto) and the POND simulator failing some devices: the
page refreshes live while the bulk change runs (counts change, no reload), its failures are
grouped by message and one group is retried from its confirmation page (which lists the
devices and why), the retry keeps the first finish and the devices show their attempts; the
list refreshes its rows in place. Screenshots of every page at 1440 and 1024 px into
test-artifacts/bulkpage/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from playwright.sync_api import Page, expect

from bulkchanges.models import BulkChange, DeviceChange, IntegrationAuthentication
from tests.conftest import PondWorld, Processes, Queue, create_bulk_change, iccids, seed_sims
from tests.e2e.test_admin_console import wait_for_status

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "console-pass-4c7e"
TIMEOUT_MS = 240_000
WIDTHS = (1440, 1024)


def shoot(page: Page, folder: Path, name: str) -> None:
    """The whole page at each width, then back to 1440."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 1000})
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 1000})


# What sticks out of the window, for the assertion's message.
WIDER = """() => {
    const w = document.documentElement.clientWidth;
    return Array.from(document.querySelectorAll("body *"))
        .filter((e) => e.getBoundingClientRect().right > w)
        .slice(0, 8)
        .map((e) => `${e.tagName}#${e.id}.${e.className}@${e.getBoundingClientRect().right}`)
        .concat([document.documentElement.scrollWidth, w]);
}"""


def no_horizontal_scroll(page: Page) -> None:
    """Neither the page nor, on a list, the results table (the admin scrolls it inside its
    own box, hiding columns) is wider than the window."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 1000})
        wider = page.evaluate(WIDER)
        assert page.evaluate(
            "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        ), f"horizontal scroll at {width} px: {wider}"
        assert page.evaluate(
            "(() => { const t = document.getElementById('result_list');"
            " return !t || t.scrollWidth <= t.parentElement.clientWidth; })()"
        ), f"the list scrolls sideways at {width} px: " + str(
            page.evaluate(
                "(() => { const t = document.getElementById('result_list');"
                " return [t.scrollWidth, t.parentElement.clientWidth].concat("
                "Array.from(t.querySelectorAll('thead th'),"
                " (h) => h.className + ':' + Math.round(h.getBoundingClientRect().width))); })()"
            )
        )
    page.set_viewport_size({"width": 1440, "height": 1000})


DONE = "Number(document.querySelector('#pondops-summary .pondops-progress').dataset.done)"


def done_count(page: Page) -> int:
    return int(page.locator("#pondops-summary .pondops-progress").get_attribute("data-done") or 0)


@pytest.mark.timeout(900)
def test_the_page_follows_the_run_live_and_one_failure_group_is_retried(
    page: Page,
    live_server: object,
    pond_world: PondWorld,
    sqs_queue: Queue,
    processes: Processes,
    artifacts: Path,
) -> None:
    base_url = str(live_server.url)  # type: ignore[attr-defined]
    folder = artifacts / "bulkpage"
    folder.mkdir(exist_ok=True)
    ops = User.objects.create_superuser("ops", "ops@example.com", PASSWORD)
    assert ops.pk and Permission.objects.exists()
    # Slow enough to watch: 3 requests a second against POND.
    IntegrationAuthentication.objects.filter(pk=pond_world.pond.pk).update(rate_limit=3)
    numbers = iccids(20)
    seed_sims(pond_world, numbers)
    refused, unknown = numbers[4:6], numbers[11]
    for iccid in refused:
        pond_world.simulator.add_fault("pond", "set_sim_status", key=iccid, status=400)
    pond_world.simulator.add_fault("pond", "set_sim_status", key=unknown, status=404)
    bulk_change = create_bulk_change(pond_world, numbers, with_rev=False)
    page_url = f"{base_url}/admin/bulkchanges/bulkchange/{bulk_change.pk}/change/"

    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#pondops-dashboard")).to_be_visible()

    # The page, open before any worker runs: it follows the run without reloading.
    page.goto(page_url)
    expect(page.locator("#pondops-status [data-status]")).to_have_attribute("data-status", "QUEUED")
    page.evaluate("window.pondopsSamePage = true")
    processes.start("qcluster")
    processes.start("poll_sqs")
    try:
        expect(page.locator("#pondops-status [data-status]")).to_have_attribute(
            "data-status", "PROCESSING", timeout=TIMEOUT_MS
        )
        page.wait_for_function(f"{DONE} > 2", timeout=TIMEOUT_MS)
    except AssertionError:
        print(processes.logs())
        raise
    seen = done_count(page)
    assert 0 < seen < 20, seen
    expect(page.locator("#pondops-throughput")).to_contain_text("devices/min")
    shoot(page, folder, "01-detail-running")
    page.wait_for_function(f"{DONE} > {seen}", timeout=TIMEOUT_MS)
    # The log panel and the devices panel move with the counts.
    expect(page.locator("#pondops-log tbody tr").first).not_to_contain_text("No log entries")
    wait_for_status(page, "PROCESSED_WITH_ERRORS", processes)
    assert page.evaluate("window.pondopsSamePage") is True, "the page reloaded"
    expect(page.locator("#pondops-summary .pondops-progress__label")).to_have_text("20/20 (100%)")
    expect(page.locator("#pondops-status-words")).to_contain_text("Finished with failures")
    expect(page.locator("#pondops-failures h2")).to_have_text("Failures (3)")
    expect(page.locator("#pondops-cancel")).to_be_hidden()  # a final bulk change has none
    no_horizontal_scroll(page)
    shoot(page, folder, "02-detail-final")

    bulk_change.refresh_from_db()
    first_finish = bulk_change.first_processed_at
    assert first_finish is not None
    time_to_complete = page.locator("#pondops-time-to-complete").inner_text()

    # The largest failure group (the two refused devices) retried on its own.
    groups = page.locator("#pondops-failures tr[data-failure-key]")
    expect(groups).to_have_count(2)
    expect(groups.first.locator("td.pondops-num")).to_have_text("2")
    groups.first.locator("a.pondops-retry-group").click()
    expect(page.locator("h1")).to_contain_text("Retry 2 failed devices of bulk change")
    listed = page.locator("#pondops-confirm-devices tbody")
    for iccid in refused:
        expect(listed).to_contain_text(iccid)
    expect(listed).not_to_contain_text(unknown)
    expect(listed).to_contain_text("400")
    no_horizontal_scroll(page)
    shoot(page, folder, "03-retry-confirm")
    page.click("#pondops-confirm")
    expect(page.locator(".messagelist")).to_contain_text("2 failed devices re-queued")

    # The list follows the retry in place.
    page.goto(f"{base_url}/admin/bulkchanges/bulkchange/")
    expect(page.locator("h1")).to_have_text("Bulk changes")
    page.evaluate("window.pondopsSamePage = true")
    row = page.locator("#result_list tbody tr").filter(
        has=page.locator(f"input.action-select[value='{bulk_change.pk}']")
    )
    try:
        expect(row.locator(".field-status_badge [data-status]")).to_have_attribute(
            "data-status", "PROCESSED_WITH_ERRORS", timeout=TIMEOUT_MS
        )
        expect(row.locator(".field-errors")).to_have_text("1", timeout=TIMEOUT_MS)
    except AssertionError:
        print(processes.logs())
        raise
    assert page.evaluate("window.pondopsSamePage") is True, "the list reloaded"
    no_horizontal_scroll(page)
    shoot(page, folder, "04-list")

    # Back on the page: the first finish stands, the retry is listed apart, attempts add up.
    page.goto(page_url)
    expect(page.locator("#pondops-retries")).to_contain_text("Manual retries (1)")
    expect(page.locator("#pondops-retries")).to_contain_text("retry by admin:ops")
    expect(page.locator("#pondops-time-to-complete")).to_contain_text(
        f"{time_to_complete} to the first finish"
    )
    bulk_change.refresh_from_db()
    assert bulk_change.first_processed_at == first_finish
    assert bulk_change.processed_at is not None and bulk_change.processed_at > first_finish
    for iccid in refused:
        device = DeviceChange.objects.get(bulk_change=bulk_change, iccid=iccid)
        assert device.status == "PROCESSED"
        cell = page.locator(f"tr[data-device-change='{device.pk}'] [data-attempts]")
        expect(cell).to_have_text("2")  # one before the retry, one after
    other = DeviceChange.objects.get(bulk_change=bulk_change, iccid=numbers[0])
    expect(page.locator(f"tr[data-device-change='{other.pk}'] [data-attempts]")).to_have_text("1")
    page.click("#pondops-device-filters a[data-filter='ERROR']")
    expect(page.locator("#pondops-device-table tbody tr")).to_have_count(1)
    expect(page.locator("#pondops-device-table")).to_contain_text(unknown)
    page.goto(page_url)
    no_horizontal_scroll(page)
    shoot(page, folder, "05-detail-after-retry")

    # Export: one click downloads.
    with page.expect_download() as download_info:
        page.click("#pondops-export")
    assert download_info.value.suggested_filename == f"bulk-change-{bulk_change.pk}-devices.csv"

    page.goto(f"{base_url}/admin/")
    expect(page.locator("#pondops-dashboard")).to_be_visible()
    no_horizontal_scroll(page)
    shoot(page, folder, "06-dashboard")
    assert re.search(r"\d", page.locator("#pondops-by-status").inner_text())
    assert BulkChange.objects.get(pk=bulk_change.pk).status == "PROCESSED_WITH_ERRORS"
