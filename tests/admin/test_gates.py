"""The gates in the console: ``scheduled_for`` on the new-bulk-change form and the gates on
its preview; Approve / Reject / Reschedule on the bulk change page (the creator sees no
Approve and is refused if they post anyway); the "Awaiting my approval" filter; each action
an audit row and an admin history entry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bulkchanges.models import BulkChange, BulkChangeLog
from tests.admin.conftest import Console, StaffFactory, make_bulk_change
from tests.admin.test_new_bulk_change import CONFIRM, draft_token, form_data, new_url
from tests.conftest import iccids

pytestmark = pytest.mark.django_db
Status = BulkChange.Status
DECIDER = ("view_bulkchange", "approve_bulkchange", "reschedule_bulkchange", "cancel_bulkchange")


def page(client: Client, bulk_change: BulkChange) -> str:
    response = client.get(reverse("admin:bulkchanges_bulkchange_change", args=[bulk_change.pk]))
    assert response.status_code == 200
    return response.content.decode()


def url(name: str, bulk_change: BulkChange) -> str:
    return reverse(f"admin:bulkchanges_bulkchange_{name}", args=[bulk_change.pk])


def test_the_preview_says_it_will_wait_for_approval_and_why(
    admin_client: Client, console: Console
) -> None:
    html = admin_client.post(
        new_url(console),
        form_data(console, update_status="TERMINATED", devices_text="\n".join(iccids(2))),
    ).content.decode()
    assert (
        "This will wait for approval because target TERMINATED is destructive: a different "
        "person with the approve permission must approve it before it starts." in html
    )
    assert 'value="Create 2 devices for approval"' in html
    response = admin_client.post(CONFIRM, {"draft": draft_token(html)})
    bulk_change = BulkChange.objects.get()
    assert bulk_change.status == Status.AWAITING_APPROVAL
    followed = admin_client.get(response["Location"]).content.decode()
    assert (
        f"Bulk change {bulk_change.pk} awaits approval (because target TERMINATED is "
        "destructive): 2 devices to TERMINATED on POND." in followed
    )


def test_scheduled_for_on_the_form_schedules_it(admin_client: Client, console: Console) -> None:
    when = (timezone.now() + timedelta(hours=1)).replace(second=0, microsecond=0)
    html = admin_client.post(
        new_url(console),
        form_data(
            console,
            scheduled_for=when.strftime("%Y-%m-%d %H:%M"),
            devices_text="\n".join(iccids(2)),
        ),
    ).content.decode()
    assert "This will wait until" in html and when.strftime("%Y-%m-%d %H:%M:%S") in html
    assert 'value="Create and schedule 2 devices"' in html
    admin_client.post(CONFIRM, {"draft": draft_token(html)})
    bulk_change = BulkChange.objects.get()
    assert bulk_change.status == Status.SCHEDULED and bulk_change.scheduled_for == when
    assert bulk_change.queued_at is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2000-01-01 10:00", "is in the past"),
        ("2999-01-01 10:00", "more than 180 days ahead"),
        ("tomorrow", "Enter a valid date/time."),
    ],
)
def test_a_bad_scheduled_for_is_explained_on_the_form(
    admin_client: Client, console: Console, value: str, message: str
) -> None:
    html = admin_client.post(
        new_url(console),
        form_data(console, scheduled_for=value, devices_text="\n".join(iccids(2))),
    ).content.decode()
    assert message in html
    assert "Nothing has been created" in html and not BulkChange.objects.exists()


def test_the_creator_sees_no_approve_button_and_is_refused_if_they_post(
    console: Console, staff_client: StaffFactory
) -> None:
    alice = staff_client(*DECIDER, username="alice")
    bulk_change = make_bulk_change(console, status="TERMINATED", created_by="admin:alice")
    html = page(alice, bulk_change)
    assert 'id="pondops-approve"' not in html and 'id="pondops-reject"' not in html
    assert "You created it, so another person must approve or reject it." in html
    assert 'id="pondops-reschedule"' in html  # the creator may still move or cancel it

    # Neither the confirmation page nor a hand-made POST: both say why and change nothing.
    refusal = f"You created bulk change {bulk_change.pk}, so another person must approve"
    for response in (
        alice.get(url("approve", bulk_change), follow=True),
        alice.post(url("approve", bulk_change), {"note": ""}, follow=True),
        alice.post(url("reject", bulk_change), {"note": ""}, follow=True),
    ):
        assert refusal in response.content.decode()
    assert BulkChange.objects.get(pk=bulk_change.pk).status == Status.AWAITING_APPROVAL


def test_another_person_approves_with_a_note_an_audit_row_and_history(
    console: Console, staff_client: StaffFactory, django_capture_on_commit_callbacks: Any
) -> None:
    bob = staff_client(*DECIDER, username="bob")
    bulk_change = make_bulk_change(console, status="TERMINATED", created_by="admin:alice")
    html = page(bob, bulk_change)
    assert 'id="pondops-approve"' in html and 'id="pondops-reject"' in html
    assert "Waiting for approval because target TERMINATED is destructive." in html

    confirm = bob.get(url("approve", bulk_change)).content.decode()
    assert "It waits because target TERMINATED is destructive." in confirm
    assert "it is queued and starts at once" in confirm
    with django_capture_on_commit_callbacks(execute=False):
        response = bob.post(url("approve", bulk_change), {"note": "checked with the customer"})
    assert response.status_code == 302
    approved = BulkChange.objects.get(pk=bulk_change.pk)
    assert approved.status == Status.QUEUED and approved.decided_by == "admin:bob"
    assert approved.decision_note == "checked with the customer"
    row = BulkChangeLog.objects.get(
        bulk_change=bulk_change, log_entry_description__contains="approved"
    )
    assert row.process_by == "admin:bob"
    entry = LogEntry.objects.get(object_id=str(bulk_change.pk))
    assert entry.user.username == "bob"
    assert entry.change_message == "Approved: now QUEUED; note: checked with the customer"
    after = page(bob, approved)
    assert "Approved by admin:bob at" in after


def test_reject_cancels_it(console: Console, staff_client: StaffFactory) -> None:
    bob = staff_client(*DECIDER, username="bob")
    bulk_change = make_bulk_change(console, status="TERMINATED", created_by="api:alice")
    response = bob.post(url("reject", bulk_change), {"note": "wrong list"}, follow=True)
    assert f"Bulk change {bulk_change.pk} rejected" in response.content.decode()
    rejected = BulkChange.objects.get(pk=bulk_change.pk)
    assert rejected.status == Status.CANCELLED and rejected.decision == "REJECTED"
    assert LogEntry.objects.get(object_id=str(bulk_change.pk)).change_message.startswith(
        "Rejected: now CANCELLED"
    )


def test_a_decision_needs_the_approve_permission(
    console: Console, staff_client: StaffFactory
) -> None:
    carol = staff_client("view_bulkchange", username="carol")
    bulk_change = make_bulk_change(console, status="TERMINATED", created_by="admin:alice")
    assert 'id="pondops-approve"' not in page(carol, bulk_change)
    assert carol.get(url("approve", bulk_change)).status_code == 403
    assert carol.post(url("reject", bulk_change)).status_code == 403
    assert carol.post(url("reschedule", bulk_change)).status_code == 403


def test_another_tenants_bulk_change_is_a_404(console: Console, staff_client: StaffFactory) -> None:
    from bulkchanges.models import Tenant

    elsewhere = Tenant.objects.create(name="Globex")
    dave = staff_client(*DECIDER, username="dave", tenants=[elsewhere])
    bulk_change = make_bulk_change(console, status="TERMINATED", created_by="admin:alice")
    assert dave.get(url("approve", bulk_change)).status_code == 404
    assert dave.post(url("approve", bulk_change)).status_code == 404


def test_reschedule_from_the_page(console: Console, staff_client: StaffFactory) -> None:
    bob = staff_client(*DECIDER, username="bob")
    bulk_change = make_bulk_change(console)
    BulkChange.objects.filter(pk=bulk_change.pk).update(
        status=Status.SCHEDULED, queued_at=None, scheduled_for=timezone.now() + timedelta(hours=1)
    )
    assert 'id="pondops-reschedule"' in page(bob, bulk_change)
    new = (timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)

    refused = bob.post(url("reschedule", bulk_change), {"scheduled_for": "2000-01-01 00:00"})
    assert refused.status_code == 200 and "is in the past" in refused.content.decode()

    response = bob.post(
        url("reschedule", bulk_change), {"scheduled_for": new.strftime("%Y-%m-%d %H:%M")}
    )
    assert response.status_code == 302
    assert BulkChange.objects.get(pk=bulk_change.pk).scheduled_for == new
    assert BulkChangeLog.objects.filter(
        bulk_change=bulk_change, log_entry_description="Bulk change rescheduled"
    ).exists()
    assert LogEntry.objects.get(object_id=str(bulk_change.pk)).change_message.startswith(
        "Rescheduled: "
    )


def test_a_queued_bulk_change_offers_no_reschedule_and_a_post_is_refused(
    console: Console, staff_client: StaffFactory
) -> None:
    bob = staff_client(*DECIDER, username="bob")
    bulk_change = make_bulk_change(console)
    assert 'id="pondops-reschedule"' not in page(bob, bulk_change)
    response = bob.post(
        url("reschedule", bulk_change),
        {"scheduled_for": (timezone.now() + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")},
        follow=True,
    )
    assert "Nothing was changed: bulk change" in response.content.decode()
    assert "is QUEUED" in response.content.decode()


def test_the_awaiting_my_approval_filter_leaves_out_my_own(
    console: Console, staff_client: StaffFactory
) -> None:
    bob = staff_client(*DECIDER, username="bob")
    mine = make_bulk_change(console, status="TERMINATED", created_by="admin:bob")
    theirs = make_bulk_change(console, status="TERMINATED", created_by="api:alice", start=10)
    queued = make_bulk_change(console, created_by="admin:alice", start=20)
    listing = bob.get(reverse("admin:bulkchanges_bulkchange_changelist") + "?approval=mine")
    html = listing.content.decode()
    assert "Awaiting my approval" in html
    shown = {
        pk
        for pk in (mine.pk, theirs.pk, queued.pk)
        if f'href="{reverse("admin:bulkchanges_bulkchange_change", args=[pk])}' in html
    }
    assert shown == {theirs.pk}
    by_status = bob.get(
        reverse("admin:bulkchanges_bulkchange_changelist") + "?status__exact=AWAITING_APPROVAL"
    )
    assert by_status.status_code == 200


def test_the_dashboard_counts_what_awaits_my_approval(
    console: Console, staff_client: StaffFactory
) -> None:
    bob = staff_client(*DECIDER, username="bob")
    make_bulk_change(console, status="TERMINATED", created_by="admin:bob")
    make_bulk_change(console, status="TERMINATED", created_by="api:alice", start=10)
    make_bulk_change(console, status="TERMINATED", created_by="cli:carol", start=20)
    html = bob.get(reverse("admin:index")).content.decode()
    tile = html[html.index('id="pondops-awaiting-my-approval"') :][:400]
    assert '">2</a>' in tile and "?approval=mine" in tile
    viewer = staff_client("view_bulkchange", username="viewer")
    assert (
        'id="pondops-awaiting-my-approval"'
        not in viewer.get(reverse("admin:index")).content.decode()
    )
