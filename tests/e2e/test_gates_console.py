"""Scheduled bulk changes and four-eyes approval in a real browser (docs/operator-features.md).

Four eyes: staff member A creates a destructive bulk change (POND TERMINATED) from the form —
the preview says it will wait for approval and why — and it waits in AWAITING_APPROVAL; A is
offered no Approve button; staff member B sees it on the dashboard and in "Awaiting my
approval", approves it with a note, and the real workers (qcluster, poll_sqs, the POND
simulator) run it to PROCESSED. Schedule then cancel: a bulk change scheduled an hour ahead is
SCHEDULED, is rescheduled, then cancelled before it ever starts.

Every page is captured at 1440 and 1024 px wide (full page) into test-artifacts/gates/."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from bulkchanges.models import BulkChange, BulkChangeLog, OperatorMembership
from tests.conftest import PondWorld, Processes, Queue, iccids, seed_sims

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "gates-pass-5d21"
PROCESSING_TIMEOUT_MS = 240_000
WIDTHS = (1440, 1024)


def operator(username: str, world: PondWorld) -> User:
    """A tenant's operator with every console permission (not a superuser)."""
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="bulkchanges"))
    OperatorMembership.objects.create(user=user, tenant=world.tenant)
    return user


def log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#pondops-dashboard")).to_be_visible()


def shots(page: Page, folder: Path, name: str, *, is_list: bool = False) -> None:
    """The page at each width, full page; a list must not scroll sideways at either."""
    page.wait_for_load_state("load")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        if is_list:
            assert page.evaluate(
                "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
            ), f"{name} scrolls sideways at {width} px"
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def open_new_form(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/admin/bulkchanges/bulkchange/new/")
    page.select_option("#id_tenant", label="Acme IoT")
    page.select_option("#id_integration", "POND")
    page.click("#pondops-continue")
    expect(page.locator("#pondops-integration")).to_have_text("POND")


@pytest.fixture
def folder(artifacts: Path) -> Path:
    path = artifacts / "gates"
    path.mkdir(exist_ok=True)
    return path


@pytest.mark.timeout(900)
def test_a_destructive_bulk_change_waits_for_a_second_person_then_runs(
    page: Page,
    browser: Browser,
    live_server: object,
    pond_world: PondWorld,
    sqs_queue: Queue,
    processes: Processes,
    folder: Path,
) -> None:
    base_url = str(live_server.url)  # type: ignore[attr-defined]
    operator("alice", pond_world)
    operator("bob", pond_world)
    numbers = iccids(6, start=300)
    seed_sims(pond_world, numbers)
    processes.start("qcluster")
    processes.start("poll_sqs")

    # Alice creates it: the preview names the gate before anything exists.
    log_in(page, base_url, "alice")
    open_new_form(page, base_url)
    page.select_option("#id_update_status", "TERMINATED")
    page.fill("#id_devices_text", "\n".join(numbers))
    shots(page, folder, "01-new-form-terminate")
    page.click("#pondops-preview")
    expect(page.locator("#pondops-gates")).to_contain_text(
        "This will wait for approval because target TERMINATED is destructive"
    )
    expect(page.locator("#pondops-confirm")).to_have_value("Create 6 devices for approval")
    shots(page, folder, "02-preview-waits-for-approval")
    page.click("#pondops-confirm")
    expect(page.locator(".messagelist")).to_contain_text("awaits approval")
    bulk_change = BulkChange.objects.get(created_by="admin:alice")
    assert bulk_change.status == BulkChange.Status.AWAITING_APPROVAL
    assert sqs_queue.messages() == 0

    # Alice's own page: waiting, and no Approve or Reject for her.
    expect(page.locator("#pondops-awaiting")).to_contain_text("You created it")
    expect(page.locator("#pondops-approve")).to_have_count(0)
    expect(page.locator("#pondops-reject")).to_have_count(0)
    shots(page, folder, "03-awaiting-approval-creator")
    # ... and opening the approval anyway is refused before any confirmation page.
    page.goto(f"{base_url}/admin/bulkchanges/bulkchange/{bulk_change.pk}/approve/")
    expect(page.locator(".messagelist")).to_contain_text(
        f"You created bulk change {bulk_change.pk}, so another person must approve or reject it"
    )
    expect(page.locator("#pondops-confirm")).to_have_count(0)
    assert BulkChange.objects.get(pk=bulk_change.pk).status == BulkChange.Status.AWAITING_APPROVAL

    # Bob: the dashboard counts it, the filter lists it, he approves with a note.
    bob_context = browser.new_context(viewport={"width": 1440, "height": 900})
    bob_context.set_default_timeout(20_000)
    try:
        bob = bob_context.new_page()
        log_in(bob, base_url, "bob")
        expect(bob.locator("#pondops-awaiting-my-approval .pondops-stat__value")).to_have_text("1")
        shots(bob, folder, "04-dashboard-awaiting-my-approval")
        bob.click("#pondops-awaiting-my-approval a.pondops-stat__value")
        expect(bob.locator("#result_list tbody tr")).to_have_count(1)
        shots(bob, folder, "05-list-awaiting-my-approval", is_list=True)
        bob.click(f"#result_list a[href*='/{bulk_change.pk}/change/']")
        expect(bob.locator("#pondops-awaiting")).to_contain_text(
            "Waiting for approval because target TERMINATED is destructive."
        )
        shots(bob, folder, "06-awaiting-approval-approver")
        bob.click("#pondops-approve")
        expect(bob.locator("#content")).to_contain_text("it is queued and starts at once")
        bob.fill("#id_note", "Checked with the customer: these six lines are closed.")
        shots(bob, folder, "07-approve-confirm")
        bob.click("#pondops-confirm")
        expect(bob.locator(".messagelist")).to_contain_text("approved and queued")
        try:
            expect(bob.locator("#pondops-status [data-status]")).to_have_attribute(
                "data-status", "PROCESSED", timeout=PROCESSING_TIMEOUT_MS
            )
        except AssertionError:
            print(processes.logs())
            raise
        bob.reload()
        expect(bob.locator("#pondops-decision")).to_contain_text("Approved by admin:bob")
        shots(bob, folder, "08-approved-and-processed")
    finally:
        bob_context.close()

    done = BulkChange.objects.get(pk=bulk_change.pk)
    assert (done.status, done.decided_by) == (BulkChange.Status.PROCESSED, "admin:bob")
    assert BulkChangeLog.objects.filter(
        bulk_change=done, log_entry_description="Bulk change approved", process_by="admin:bob"
    ).exists()
    assert {pond_world.simulator.pond_sim(iccid)["status_of_sim"] for iccid in numbers} == {
        "In-Service"
    }  # TERMINATED on POND disables services and terminates packages (pond.md)


@pytest.mark.timeout(300)
def test_a_scheduled_bulk_change_is_rescheduled_then_cancelled_before_it_starts(
    page: Page, live_server: object, pond_world: PondWorld, sqs_queue: Queue, folder: Path
) -> None:
    base_url = str(live_server.url)  # type: ignore[attr-defined]
    operator("alice", pond_world)
    in_an_hour = (timezone.now() + timedelta(hours=1)).replace(second=0, microsecond=0)

    log_in(page, base_url, "alice")
    open_new_form(page, base_url)
    page.select_option("#id_update_status", "SUSPENDED")
    page.fill("#id_scheduled_for", in_an_hour.strftime("%Y-%m-%d %H:%M"))
    page.fill("#id_devices_text", "\n".join(iccids(4, start=400)))
    shots(page, folder, "09-new-form-scheduled")
    page.click("#pondops-preview")
    expect(page.locator("#pondops-gates")).to_contain_text("This will wait until")
    shots(page, folder, "10-preview-scheduled")
    page.click("#pondops-confirm")
    expect(page.locator(".messagelist")).to_contain_text("scheduled for")
    bulk_change = BulkChange.objects.get(created_by="admin:alice")
    assert bulk_change.status == BulkChange.Status.SCHEDULED
    assert bulk_change.scheduled_for == in_an_hour
    assert sqs_queue.messages() == 0
    expect(page.locator("#pondops-scheduled-for")).to_be_visible()
    shots(page, folder, "11-scheduled")

    # Reschedule: a day later.
    page.click("#pondops-reschedule")
    tomorrow = in_an_hour + timedelta(days=1)
    page.fill("#id_scheduled_for", tomorrow.strftime("%Y-%m-%d %H:%M"))
    shots(page, folder, "12-reschedule-confirm")
    page.click("#pondops-confirm")
    expect(page.locator(".messagelist")).to_contain_text("rescheduled to")
    assert BulkChange.objects.get(pk=bulk_change.pk).scheduled_for == tomorrow
    shots(page, folder, "13-rescheduled")

    # Cancel before it starts.
    page.click("#pondops-cancel")
    shots(page, folder, "14-cancel-confirm")
    page.click("#pondops-confirm")
    expect(page.locator("#pondops-status [data-status]")).to_have_attribute(
        "data-status", "CANCELLED"
    )
    expect(page.locator("#pondops-reschedule")).to_have_count(0)
    shots(page, folder, "15-cancelled")
    cancelled = BulkChange.objects.get(pk=bulk_change.pk)
    assert cancelled.status == BulkChange.Status.CANCELLED
    assert set(cancelled.device_changes.values_list("status", flat=True)) == {"CANCELLED"}
    assert sqs_queue.messages() == 0

    page.goto(f"{base_url}/admin/bulkchanges/bulkchange/?status__exact=CANCELLED")
    shots(page, folder, "16-list", is_list=True)
