"""Scheduled bulk changes and four-eyes approval (docs/operator-features.md), through the
services every entry point uses: the creation gates, the reaper's release, reschedule, cancel
before start, approve and reject (the creator refused, the first decision wins), and the order
per device (a bulk change held at a gate blocks no one)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from bulkchanges import sqs
from bulkchanges.errors import ApplicationError, Conflict
from bulkchanges.models import BulkChange, BulkChangeLog, IntegrationAuthentication
from bulkchanges.models import Tenant as TenantModel
from bulkchanges.services import bulk_change_cancel, bulk_change_create
from bulkchanges.services import status_update_request_validate as validate
from bulkchanges.services.approvals import actor_username, bulk_change_approve, bulk_change_reject
from bulkchanges.services.bulk_changes import approval_reason_for, bulk_change_gates
from bulkchanges.services.processing import device_change_claim
from bulkchanges.services.reaper import reap
from bulkchanges.services.scheduling import bulk_change_reschedule, bulk_changes_release_due
from bulkchanges.types import DeviceRef
from integrations.base import Integration, processor_class
from tests.conftest import iccids

Status = BulkChange.Status
CaptureCallbacks = Callable[..., Any]


@pytest.fixture
def tenant(device_statuses: None) -> TenantModel:
    tenant = TenantModel.objects.create(name="Acme IoT")
    IntegrationAuthentication.objects.create(
        tenant=tenant,
        integration="POND",
        base_url="http://127.0.0.1:9/pond",
        account="1234",
        secret="pond-secret-key-7f3a9c",
    )
    return tenant


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """SQS sends recorded as (bulk change id, its status at the moment of sending)."""
    messages: list[tuple[int, str]] = []

    def record(message: sqs.QueueMessage, *, delay_seconds: int = 0) -> str:
        status = BulkChange.objects.values_list("status", flat=True).get(pk=message.bulk_change_id)
        messages.append((message.bulk_change_id, status))
        return "recorded"

    monkeypatch.setattr(sqs, "send", record)
    return messages


def create(
    tenant: TenantModel,
    count: int = 3,
    *,
    status: str = "SUSPENDED",
    created_by: str = "admin:alice",
    scheduled_for: datetime | None = None,
    start: int = 0,
) -> BulkChange:
    bulk_change, _ = bulk_change_create(
        tenant=tenant,
        created_by=created_by,
        validated=validate(tenant=tenant, integration="POND", update_status=status),
        devices=[DeviceRef(iccid=iccid) for iccid in iccids(count, start=start)],
        scheduled_for=scheduled_for,
    )
    return bulk_change


def rows(bulk_change: BulkChange, description: str) -> list[BulkChangeLog]:
    return list(
        BulkChangeLog.objects.filter(bulk_change=bulk_change, log_entry_description=description)
    )


# --- Creation gates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("integration", "destructive", "harmless"),
    [
        (Integration.POND, "TERMINATED", ("ACTIVE", "SUSPENDED")),
        (Integration.THINGSPACE, "deactivated", ("active", "suspended")),
        (Integration.JASPER, "RETIRED", ("ACTIVATED", "DEACTIVATED", "TEST_READY")),
        (Integration.TELEGENCE, "Cancelled", ("Active", "Suspended")),
        (Integration.TEAL, None, ("enabled", "disabled")),
    ],
)
def test_destructive_targets_are_data_in_each_carriers_status_table(
    integration: str, destructive: str | None, harmless: tuple[str, ...]
) -> None:
    statuses = processor_class(integration).statuses
    assert [name for name, row in statuses.items() if row.destructive] == (
        [destructive] if destructive else []
    )
    tenant = TenantModel(name="t", approval_threshold=1000)
    for target in harmless:
        assert (
            approval_reason_for(
                tenant=tenant, integration=integration, target=target, device_count=1
            )
            == ""
        )
    if destructive:
        assert (
            approval_reason_for(
                tenant=tenant, integration=integration, target=destructive, device_count=1
            )
            == f"target {destructive} is destructive"
        )


@pytest.mark.parametrize(
    ("count", "reason"),
    [
        (1000, ""),
        (1001, "1,001 devices is above this tenant's approval threshold of 1,000"),
    ],
)
def test_the_approval_threshold_is_more_devices_than_the_tenants_figure(
    count: int, reason: str
) -> None:
    tenant = TenantModel(name="t", approval_threshold=1000)
    assert (
        approval_reason_for(
            tenant=tenant, integration=Integration.POND, target="SUSPENDED", device_count=count
        )
        == reason
    )


def test_both_gates_are_named_when_both_hold() -> None:
    tenant = TenantModel(name="t", approval_threshold=2)
    assert approval_reason_for(
        tenant=tenant, integration=Integration.POND, target="TERMINATED", device_count=3
    ) == (
        "target TERMINATED is destructive and 3 devices is above this tenant's approval "
        "threshold of 2"
    )


def test_a_plain_bulk_change_is_queued_and_sent_after_commit(
    tenant: TenantModel, sent: list[tuple[int, str]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        bulk_change = create(tenant)
    assert bulk_change.status == Status.QUEUED and bulk_change.approval_reason == ""
    assert sent == [(bulk_change.pk, Status.QUEUED)]


def test_a_destructive_target_waits_for_approval_without_a_message(
    tenant: TenantModel, sent: list[tuple[int, str]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        bulk_change = create(tenant, status="terminated")
    assert bulk_change.status == Status.AWAITING_APPROVAL
    assert bulk_change.approval_reason == "target TERMINATED is destructive"
    assert bulk_change.queued_at is None
    assert sent == []
    assert set(bulk_change.device_changes.values_list("status", flat=True)) == {"PENDING"}


def test_more_devices_than_the_threshold_waits_for_approval(
    tenant: TenantModel, sent: list[tuple[int, str]], django_capture_on_commit_callbacks: Any
) -> None:
    TenantModel.objects.filter(pk=tenant.pk).update(approval_threshold=3)
    tenant.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        at_threshold = create(tenant, 3)
        above = create(tenant, 4, start=100)
    assert at_threshold.status == Status.QUEUED
    assert above.status == Status.AWAITING_APPROVAL
    assert above.approval_reason == "4 devices is above this tenant's approval threshold of 3"
    assert [pk for pk, _ in sent] == [at_threshold.pk]


def test_a_scheduled_bulk_change_waits_without_a_message(
    tenant: TenantModel, sent: list[tuple[int, str]], django_capture_on_commit_callbacks: Any
) -> None:
    when = timezone.now() + timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        bulk_change = create(tenant, scheduled_for=when)
    assert bulk_change.status == Status.SCHEDULED
    assert bulk_change.scheduled_for == when and bulk_change.queued_at is None
    assert sent == []


def test_scheduled_for_at_most_180_days_ahead_and_not_in_the_past(
    tenant: TenantModel, settings: Any
) -> None:
    now = timezone.now()
    validated = validate(tenant=tenant, integration="POND", update_status="SUSPENDED")

    def gates(when: datetime) -> Any:
        return bulk_change_gates(
            tenant=tenant, validated=validated, device_count=1, scheduled_for=when, now=now
        )

    assert gates(now + timedelta(days=180)).scheduled_ahead
    with pytest.raises(ApplicationError, match="more than 180 days ahead") as too_far:
        gates(now + timedelta(days=180, seconds=1))
    assert too_far.value.fields == {"scheduled_for": ["at most 180 days ahead"]}
    # A minute late is "now" (a form or a clock lagging); more is refused.
    assert not gates(now - timedelta(seconds=59)).scheduled_ahead
    with pytest.raises(ApplicationError, match="is in the past"):
        gates(now - timedelta(seconds=61))
    with pytest.raises(ApplicationError, match="needs a UTC offset"):
        gates(datetime(2030, 1, 1, 12, 0))
    settings.BULKCHANGE_MAX_SCHEDULE_DAYS = 7
    with pytest.raises(ApplicationError, match="more than 7 days ahead"):
        gates(now + timedelta(days=8))


def test_a_time_within_the_last_minute_is_queued_at_once(
    tenant: TenantModel, sent: list[tuple[int, str]], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        bulk_change = create(tenant, scheduled_for=timezone.now() - timedelta(seconds=30))
    assert bulk_change.status == Status.QUEUED
    assert [pk for pk, _ in sent] == [bulk_change.pk]


# --- The reaper's release --------------------------------------------------------------------


def test_the_reaper_releases_a_due_bulk_change_and_sends_only_after_commit(
    tenant: TenantModel, sent: list[tuple[int, str]], django_capture_on_commit_callbacks: Any
) -> None:
    bulk_change = create(tenant, scheduled_for=timezone.now() + timedelta(minutes=5))
    due = bulk_change.scheduled_for
    assert due is not None
    # Not early: a pass a second before its time leaves it alone.
    assert bulk_changes_release_due(now=due - timedelta(seconds=1)) == 0
    assert BulkChange.objects.get(pk=bulk_change.pk).status == Status.SCHEDULED

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = reap(enqueue=lambda ids: None, process_by="reaper", now=due)
    assert report.scheduled_released == 1
    released = BulkChange.objects.get(pk=bulk_change.pk)
    assert released.status == Status.QUEUED and released.queued_at == due
    assert sent == []  # released, not yet sent: the message follows the commit
    for callback in callbacks:
        callback()
    assert sent == [(bulk_change.pk, Status.QUEUED)]
    (row,) = rows(bulk_change, "Released scheduled bulk change")
    assert row.process_by == "reaper"
    # A second pass releases nothing again.
    assert bulk_changes_release_due(now=due + timedelta(seconds=5)) == 0


def test_a_scheduled_bulk_changes_devices_cannot_be_claimed_before_release(
    tenant: TenantModel, sent: list[tuple[int, str]]
) -> None:
    bulk_change = create(tenant, 2, scheduled_for=timezone.now() + timedelta(hours=1))
    ids = list(bulk_change.device_changes.values_list("pk", flat=True))
    assert device_change_claim(ids=ids) == []


def test_a_gated_bulk_change_blocks_no_later_change_of_its_devices(
    tenant: TenantModel, sent: list[tuple[int, str]]
) -> None:
    """Order per device: only released (QUEUED, PROCESSING) bulk changes hold their ICCIDs."""
    scheduled = create(tenant, 2, scheduled_for=timezone.now() + timedelta(hours=1))
    awaiting = create(tenant, 2, status="TERMINATED")
    later = create(tenant, 2, status="ACTIVE")
    assert (scheduled.status, awaiting.status, later.status) == (
        Status.SCHEDULED,
        Status.AWAITING_APPROVAL,
        Status.QUEUED,
    )
    ids = sorted(later.device_changes.values_list("pk", flat=True))
    assert sorted(device_change_claim(ids=ids)) == ids


def test_a_released_bulk_change_does_block_a_later_change_of_its_devices(
    tenant: TenantModel, sent: list[tuple[int, str]]
) -> None:
    first = create(tenant, 2, scheduled_for=timezone.now() + timedelta(minutes=1))
    later = create(tenant, 2, status="ACTIVE")
    bulk_changes_release_due(now=timezone.now() + timedelta(minutes=2))
    assert BulkChange.objects.get(pk=first.pk).status == Status.QUEUED
    assert device_change_claim(ids=list(later.device_changes.values_list("pk", flat=True))) == []


# --- Reschedule and cancel before start ------------------------------------------------------


def test_reschedule_moves_the_time_and_logs_old_and_new(
    tenant: TenantModel, sent: list[tuple[int, str]]
) -> None:
    old = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    new = old + timedelta(days=2)
    bulk_change = create(tenant, scheduled_for=old)
    rescheduled = bulk_change_reschedule(
        bulk_change=bulk_change, actor="admin:bob", scheduled_for=new
    )
    assert rescheduled.status == Status.SCHEDULED and rescheduled.scheduled_for == new
    (row,) = rows(bulk_change, "Bulk change rescheduled")
    assert row.process_by == "admin:bob"
    assert row.response_text == (f"rescheduled by admin:bob: {old.isoformat()} → {new.isoformat()}")
    assert sent == []


def test_rescheduling_to_now_releases_at_once(
    tenant: TenantModel, sent: list[tuple[int, str]], django_capture_on_commit_callbacks: Any
) -> None:
    bulk_change = create(tenant, scheduled_for=timezone.now() + timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        released = bulk_change_reschedule(
            bulk_change=bulk_change, actor="cli:ops", scheduled_for=timezone.now()
        )
    assert released.status == Status.QUEUED
    assert [pk for pk, _ in sent] == [bulk_change.pk]
    assert (
        "released to the queue now" in rows(bulk_change, "Bulk change rescheduled")[0].response_text
    )


def test_rescheduling_keeps_the_creation_rules_and_refuses_a_started_bulk_change(
    tenant: TenantModel, sent: list[tuple[int, str]]
) -> None:
    scheduled = create(tenant, scheduled_for=timezone.now() + timedelta(hours=1))
    with pytest.raises(ApplicationError, match="more than 180 days ahead"):
        bulk_change_reschedule(
            bulk_change=scheduled,
            actor="admin:bob",
            scheduled_for=timezone.now() + timedelta(days=181),
        )
    queued = create(tenant, start=50)
    with pytest.raises(Conflict, match="is QUEUED; only a scheduled bulk change"):
        bulk_change_reschedule(
            bulk_change=queued,
            actor="admin:bob",
            scheduled_for=timezone.now() + timedelta(hours=1),
        )


def test_an_awaiting_bulk_change_can_be_rescheduled_and_stays_awaiting(
    tenant: TenantModel, sent: list[tuple[int, str]]
) -> None:
    bulk_change = create(tenant, status="TERMINATED")
    when = timezone.now() + timedelta(hours=3)
    rescheduled = bulk_change_reschedule(
        bulk_change=bulk_change, actor="admin:bob", scheduled_for=when
    )
    assert rescheduled.status == Status.AWAITING_APPROVAL and rescheduled.scheduled_for == when


@pytest.mark.parametrize("gate", ["scheduled", "awaiting"])
def test_a_gated_bulk_change_can_be_cancelled_before_it_starts(
    tenant: TenantModel, sent: list[tuple[int, str]], gate: str
) -> None:
    bulk_change = (
        create(tenant, scheduled_for=timezone.now() + timedelta(hours=1))
        if gate == "scheduled"
        else create(tenant, status="TERMINATED")
    )
    outcome = bulk_change_cancel(bulk_change=bulk_change, actor="admin:bob")
    assert (outcome.cancelled, outcome.finishing, outcome.status) == (3, 0, Status.CANCELLED)
    bulk_change.refresh_from_db()
    assert bulk_change.status == Status.CANCELLED
    assert set(bulk_change.device_changes.values_list("status", flat=True)) == {"CANCELLED"}
    # Cancelled is final: the reaper has nothing to release, nobody to approve.
    assert bulk_changes_release_due(now=timezone.now() + timedelta(hours=2)) == 0
    assert sent == []


# --- Approve and reject ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("actor", "username"),
    [
        ("admin:alice", "alice"),
        ("api:alice", "alice"),
        ("cli:alice", "alice"),
        ("worker:host/12 [automated]", "host/12"),
        ("test", "test"),
    ],
)
def test_an_actor_names_its_user_whatever_the_door(actor: str, username: str) -> None:
    assert actor_username(actor) == username


@pytest.mark.parametrize("approver", ["admin:alice", "api:alice", "cli:Alice"])
def test_the_creator_cannot_approve_or_reject_through_any_door(
    tenant: TenantModel, sent: list[tuple[int, str]], approver: str
) -> None:
    bulk_change = create(tenant, status="TERMINATED", created_by="admin:alice")
    for decide in (bulk_change_approve, bulk_change_reject):
        with pytest.raises(ApplicationError, match="a different person must") as refused:
            decide(bulk_change=bulk_change, actor=approver)
        assert refused.value.status == 403
    assert BulkChange.objects.get(pk=bulk_change.pk).status == Status.AWAITING_APPROVAL


def test_approval_by_another_person_queues_it_with_an_audit_row(
    tenant: TenantModel, sent: list[tuple[int, str]], django_capture_on_commit_callbacks: Any
) -> None:
    bulk_change = create(tenant, status="TERMINATED")
    with django_capture_on_commit_callbacks(execute=True):
        approved = bulk_change_approve(bulk_change=bulk_change, actor="admin:bob", note="ok")
    assert approved.status == Status.QUEUED and approved.queued_at is not None
    assert (approved.decision, approved.decided_by, approved.decision_note) == (
        "APPROVED",
        "admin:bob",
        "ok",
    )
    assert sent == [(bulk_change.pk, Status.QUEUED)]
    (row,) = rows(bulk_change, "Bulk change approved")
    assert row.process_by == "admin:bob"
    assert row.response_text == "approved by admin:bob: queued now; note: ok"


def test_approval_while_its_time_is_ahead_schedules_it(
    tenant: TenantModel, sent: list[tuple[int, str]], django_capture_on_commit_callbacks: Any
) -> None:
    when = timezone.now() + timedelta(hours=2)
    bulk_change = create(tenant, status="TERMINATED", scheduled_for=when)
    assert bulk_change.status == Status.AWAITING_APPROVAL
    with django_capture_on_commit_callbacks(execute=True):
        approved = bulk_change_approve(bulk_change=bulk_change, actor="api:bob")
    assert approved.status == Status.SCHEDULED and approved.queued_at is None
    assert sent == []
    assert rows(bulk_change, "Bulk change approved")[0].response_text == (
        f"approved by api:bob: scheduled for {when.isoformat()}"
    )
    # ... and the reaper releases it at its time.
    assert bulk_changes_release_due(now=when) == 1


def test_rejection_cancels_it_with_its_devices_a_completion_row_and_the_webhook(
    tenant: TenantModel,
    sent: list[tuple[int, str]],
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scheduled: list[int] = []
    monkeypatch.setattr(
        "bulkchanges.services.approvals.webhook_completion_schedule",
        lambda *, bulk_change_id: scheduled.append(bulk_change_id),
    )
    bulk_change = create(tenant, status="TERMINATED")
    with django_capture_on_commit_callbacks(execute=True):
        rejected = bulk_change_reject(bulk_change=bulk_change, actor="admin:bob", note="wrong list")
    assert rejected.status == Status.CANCELLED and rejected.processed_at is not None
    assert rejected.decision == "REJECTED" and rejected.decided_by == "admin:bob"
    assert set(rejected.device_changes.values_list("status", flat=True)) == {"CANCELLED"}
    assert rows(bulk_change, "Bulk change rejected")[0].response_text == (
        "rejected by admin:bob: 3 devices cancelled; note: wrong list"
    )
    assert rows(bulk_change, "Bulk change completed")[0].response_text == "CANCELLED: CANCELLED 3"
    assert scheduled == [bulk_change.pk]
    assert sent == []


def test_a_decision_on_a_bulk_change_no_longer_awaiting_is_a_conflict(
    tenant: TenantModel, sent: list[tuple[int, str]]
) -> None:
    bulk_change = create(tenant, status="TERMINATED")
    bulk_change_approve(bulk_change=bulk_change, actor="admin:bob")
    stale = BulkChange.objects.get(pk=bulk_change.pk)
    stale.status = Status.AWAITING_APPROVAL  # what a second approver's page still showed
    with pytest.raises(Conflict, match=r"is QUEUED \(approved by admin:bob\)") as late:
        bulk_change_reject(bulk_change=stale, actor="admin:carol")
    assert late.value.status == 409
    queued = create(tenant, start=40)
    with pytest.raises(Conflict):
        bulk_change_approve(bulk_change=queued, actor="admin:bob")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("second", ["approve", "reject"])
def test_two_decisions_at_once_one_wins_the_other_gets_a_conflict(
    tenant: TenantModel, sent: list[tuple[int, str]], second: str
) -> None:
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers: PostgreSQL runs the race")
    bulk_change = create(tenant, status="TERMINATED")
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def decide(name: str, action: str) -> None:
        try:
            barrier.wait(timeout=10)
            service = bulk_change_approve if action == "approve" else bulk_change_reject
            service(bulk_change=BulkChange.objects.get(pk=bulk_change.pk), actor=f"admin:{name}")
            outcomes[name] = "won"
        except Conflict:
            outcomes[name] = "conflict"
        finally:
            connection.close()

    threads = [
        threading.Thread(target=decide, args=("bob", "approve")),
        threading.Thread(target=decide, args=("carol", second)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes.values()) == ["conflict", "won"]
    decided = BulkChange.objects.get(pk=bulk_change.pk)
    winner = next(name for name, outcome in outcomes.items() if outcome == "won")
    assert decided.decided_by == f"admin:{winner}"
    assert decided.status == (
        Status.QUEUED if winner == "bob" or second == "approve" else Status.CANCELLED
    )
    assert (
        BulkChangeLog.objects.filter(
            bulk_change=bulk_change,
            log_entry_description__in=("Bulk change approved", "Bulk change rejected"),
        ).count()
        == 1
    )


def test_a_sequential_second_approval_loses(
    tenant: TenantModel, sent: list[tuple[int, str]], django_capture_on_commit_callbacks: Any
) -> None:
    """The same race on SQLite, one after the other: each approver read AWAITING_APPROVAL."""
    bulk_change = create(tenant, status="TERMINATED")
    bob_view = BulkChange.objects.get(pk=bulk_change.pk)
    carol_view = BulkChange.objects.get(pk=bulk_change.pk)
    with django_capture_on_commit_callbacks(execute=True):
        bulk_change_approve(bulk_change=bob_view, actor="admin:bob")
        with pytest.raises(Conflict):
            bulk_change_approve(bulk_change=carol_view, actor="admin:carol")
    assert [pk for pk, _ in sent] == [bulk_change.pk]  # one message, not two
    assert BulkChange.objects.get(pk=bulk_change.pk).decided_by == "admin:bob"


def test_scheduled_for_is_kept_as_an_instant(
    tenant: TenantModel, sent: list[tuple[int, str]]
) -> None:
    when = (timezone.now() + timedelta(days=1)).astimezone(timezone.get_fixed_timezone(60))
    bulk_change = create(tenant, scheduled_for=when)
    stored = BulkChange.objects.get(pk=bulk_change.pk).scheduled_for
    assert stored == when and stored is not None and stored.utcoffset() == timedelta(0)
