"""Truthful cancel (docs/architecture.md §6, "Cancel"): a device that has sent no carrier write
is CANCELLED at once; one that has runs to its end with its real outcome; the bulk change is
CANCELLING until the last of those ends, then CANCELLED with one completion row carrying the
counts and the completion webhook. The race between the cancel and a worker's write start has
exactly one winner, in either order — on PostgreSQL with real concurrent transactions too.

The carrier is the scripted one (tests/fixtures/scripted_carrier.py, in Teal's place), over the
real queue path (moto's SQS, the real consumer, django-q2 inline)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from bulkchanges import transitions
from bulkchanges.consumer import SqsConsumer
from bulkchanges.errors import Conflict
from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    Device,
    DeviceChange,
    DeviceStatus,
    IntegrationAuthentication,
    WebhookDelivery,
)
from bulkchanges.selectors import bulk_change_cancel_impact, bulk_change_progress
from bulkchanges.services import (
    bulk_change_cancel,
    bulk_change_retry,
)
from bulkchanges.services.processing import device_change_claim
from bulkchanges.services.reaper import reap
from integrations.base import Step
from tests.conftest import Queue, iccids, wait_for
from tests.fixtures.callback_listener import CallbackListener
from tests.fixtures.scripted_carrier import (
    Script,
    ScriptedCarrier,
    ScriptedProcessor,
    scripted_bulk_change,
    scripted_credentials,
)

pytestmark = pytest.mark.django_db(transaction=True)

Status = DeviceChange.Status
COMPLETION = "Bulk change completed"


@pytest.fixture
def carrier(scripted_carrier: ScriptedCarrier) -> ScriptedCarrier:
    return scripted_carrier


@pytest.fixture
def world(
    scripted_carrier: ScriptedCarrier, device_statuses: None, settings: Any
) -> IntegrationAuthentication:
    settings.CARRIER_CALLBACK_BASE_URL = "https://pondops.example"
    settings.PONDOPS_WEBHOOK_EXTRA_ORIGINS = ["http://127.0.0.1:*"]
    # One device at a time: the tests say which one is in flight.
    credentials: IntegrationAuthentication = scripted_credentials(
        tenant_name="Cancel Co", max_concurrency=1
    )
    return credentials


def create(
    credentials: IntegrationAuthentication,
    numbers: list[str],
    *,
    ignore_current: bool = True,
    callback_url: str = "",
) -> BulkChange:
    bulk_change: BulkChange = scripted_bulk_change(
        credentials, numbers, ignore_current=ignore_current
    )
    if callback_url:
        BulkChange.objects.filter(pk=bulk_change.pk).update(callback_url=callback_url)
    return bulk_change


def poll_until_final(bulk_change: BulkChange, *, timeout: float = 30) -> BulkChange:
    consumer = SqsConsumer(wait_seconds=1)

    def final() -> bool:
        consumer.poll_once()
        return BulkChange.objects.get(pk=bulk_change.pk).status in BulkChange.TERMINAL

    wait_for(final, timeout=timeout, interval=0, message="a final status")
    bulk_change.refresh_from_db()
    return bulk_change


def devices(bulk_change: BulkChange) -> list[DeviceChange]:
    return list(DeviceChange.objects.filter(bulk_change=bulk_change).order_by("pk"))


def completion_rows(bulk_change: BulkChange) -> list[str]:
    return list(
        BulkChangeLog.objects.filter(
            bulk_change=bulk_change, log_entry_description=COMPLETION
        ).values_list("response_text", flat=True)
    )


def around_write_start(
    monkeypatch: pytest.MonkeyPatch, *, before: Callable[[], object] = lambda: None
) -> list[bool]:
    """Run ``before`` just before the worker's conditional write start; returns its results."""
    original = transitions.device_change_start_write
    won: list[bool] = []

    def start_write(**kwargs: Any) -> bool:
        before()
        won.append(original(**kwargs))
        return won[-1]

    monkeypatch.setattr(transitions, "device_change_start_write", start_write)
    return won


def during_submit(monkeypatch: pytest.MonkeyPatch, act: Callable[[], object]) -> None:
    """Run ``act`` once, while the first SUBMIT is at the carrier (after its write start)."""
    perform = ScriptedProcessor.perform
    done: list[bool] = []

    def spy(self: ScriptedProcessor, step: Step, context: Any) -> Any:
        if step is Step.SUBMIT and not done:
            done.append(True)
            act()
        return perform(self, step, context)

    monkeypatch.setattr(ScriptedProcessor, "perform", spy)


# --- The race: cancel vs the worker's write start ----------------------------------------------


def test_a_cancel_before_the_write_start_wins_and_the_worker_sends_nothing(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    carrier: ScriptedCarrier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [iccid] = iccids(1)
    bulk_change = create(world, [iccid])
    won = around_write_start(
        monkeypatch, before=lambda: bulk_change_cancel(bulk_change=bulk_change, actor="ops")
    )

    bulk_change = poll_until_final(bulk_change)

    assert won == [False]  # the worker lost: the device was PROCESSING, no write yet
    assert carrier.submits == []
    [device] = devices(bulk_change)
    assert device.status == Status.CANCELLED and device.write_started_at is None
    assert device.claim_token is None and device.claimed_until is None
    assert bulk_change.status == BulkChange.Status.CANCELLED
    assert completion_rows(bulk_change) == [
        "CANCELLED: 0 changed before the cancel took effect, 1 cancelled"
    ]


def test_a_write_start_before_the_cancel_wins_and_the_device_runs_to_its_end(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    carrier: ScriptedCarrier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [iccid] = iccids(1)
    bulk_change = create(world, [iccid])
    outcomes: list[Any] = []
    during_submit(
        monkeypatch,
        lambda: outcomes.append(bulk_change_cancel(bulk_change=bulk_change, actor="ops")),
    )

    bulk_change = poll_until_final(bulk_change)

    [outcome] = outcomes
    assert (outcome.cancelled, outcome.finishing, outcome.status) == (0, 1, "CANCELLING")
    assert len(carrier.submits) == 1
    [device] = devices(bulk_change)
    assert device.status == Status.PROCESSED  # its real outcome, not CANCELLED
    assert bulk_change.status == BulkChange.Status.CANCELLED
    assert bulk_change.processed_at is not None and device.processed_at is not None
    assert bulk_change.processed_at >= device.processed_at
    assert completion_rows(bulk_change) == [
        "CANCELLED: 1 changed before the cancel took effect, 0 cancelled"
    ]


def test_the_conditional_updates_have_one_winner_in_either_order(
    world: IntegrationAuthentication,
) -> None:
    """The two conditional UPDATEs alone: whichever runs first wins, the other moves nothing."""
    bulk_change = create(world, iccids(2))
    first, second = devices(bulk_change)
    token = uuid.uuid4()
    now = timezone.now()
    DeviceChange.objects.filter(pk__in=[first.pk, second.pk]).update(
        status=Status.PROCESSING, claim_token=token, claimed_until=now + timedelta(minutes=1)
    )
    # Write start first (the first device): the cancel leaves it alone.
    assert transitions.device_change_start_write(
        device_change_id=first.pk, token=token, now=now, previous_status="online", lease_until=now
    )
    # Then the cancel: only the second device, which sent nothing, is cancelled ...
    assert transitions.device_changes_cancel(bulk_change_id=bulk_change.pk, now=now) == 1
    # ... and its worker's write start, coming after, wins nothing.
    assert not transitions.device_change_start_write(
        device_change_id=second.pk, token=token, now=now, previous_status="", lease_until=now
    )
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.previous_status) == (Status.PROCESSING, "online")
    assert first.write_started_at is not None
    assert (second.status, second.write_started_at, second.claim_token) == (
        Status.CANCELLED,
        None,
        None,
    )


@pytest.mark.parametrize("first", ["cancel", "write_start"])
def test_concurrent_transactions_on_postgresql_have_one_winner(
    world: IntegrationAuthentication, first: str
) -> None:
    """Two real transactions on two connections: the first holds its UPDATE uncommitted while
    the second runs; the second waits for the row lock, re-checks its condition, and loses."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrent row locks need PostgreSQL (SQLite serialises writers)")
    bulk_change = create(world, iccids(1))
    [device] = devices(bulk_change)
    token = uuid.uuid4()
    now = timezone.now()
    DeviceChange.objects.filter(pk=device.pk).update(
        status=Status.PROCESSING, claim_token=token, claimed_until=now + timedelta(minutes=1)
    )

    def cancel() -> int:
        return transitions.device_changes_cancel(bulk_change_id=bulk_change.pk, now=now)

    def write_start() -> int:
        return int(
            transitions.device_change_start_write(
                device_change_id=device.pk,
                token=token,
                now=now,
                previous_status="online",
                lease_until=now + timedelta(minutes=1),
            )
        )

    runs = {"cancel": cancel, "write_start": write_start}
    second = "write_start" if first == "cancel" else "cancel"
    results: dict[str, int] = {}
    holding, started = threading.Event(), threading.Event()
    release = threading.Event()

    def in_thread(name: str, *, hold: bool) -> None:
        try:
            with transaction.atomic():
                results[name] = runs[name]()
                if hold:
                    holding.set()
                    release.wait(10)
                else:
                    started.set()
        finally:
            connection.close()

    holder = threading.Thread(target=in_thread, args=(first,), kwargs={"hold": True})
    holder.start()
    assert holding.wait(10)
    waiter = threading.Thread(target=in_thread, args=(second,), kwargs={"hold": False})
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive(), "the second UPDATE should wait for the first one's row lock"
    release.set()
    holder.join(10)
    waiter.join(10)

    assert results == {first: 1, second: 0}
    device.refresh_from_db()
    if first == "cancel":
        assert device.status == Status.CANCELLED and device.write_started_at is None
    else:
        assert device.status == Status.PROCESSING and device.write_started_at is not None


# --- CANCELLING until the last device in flight ends -------------------------------------------


def test_one_device_in_flight_finishes_the_rest_are_cancelled_and_the_webhook_has_the_counts(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    carrier: ScriptedCarrier,
    monkeypatch: pytest.MonkeyPatch,
    callback_listener: CallbackListener,
) -> None:
    numbers = iccids(3)
    carrier.scripts[numbers[0]] = Script(pending_checks=2)  # it waits on the carrier twice
    bulk_change = create(world, numbers, callback_url=callback_listener.url)
    seen: list[tuple[str, str, int, int]] = []

    def cancel_mid_run() -> None:
        outcome = bulk_change_cancel(bulk_change=bulk_change, actor="ops")
        status = BulkChange.objects.get(pk=bulk_change.pk).status
        seen.append((outcome.status, status, outcome.cancelled, outcome.finishing))

    during_submit(monkeypatch, cancel_mid_run)

    bulk_change = poll_until_final(bulk_change)

    assert seen == [("CANCELLING", "CANCELLING", 2, 1)]
    first, *rest = devices(bulk_change)
    assert first.status == Status.PROCESSED and first.carrier_waits == 2
    assert [device.status for device in rest] == [Status.CANCELLED, Status.CANCELLED]
    assert [submitted for submitted, _ in carrier.submits] == [numbers[0]]
    assert bulk_change.status == BulkChange.Status.CANCELLED
    assert first.processed_at is not None and bulk_change.processed_at is not None
    assert bulk_change.processed_at >= first.processed_at
    assert completion_rows(bulk_change) == [
        "CANCELLED: 1 changed before the cancel took effect, 2 cancelled"
    ]
    cancel_row = BulkChangeLog.objects.get(
        bulk_change=bulk_change, log_entry_description="Bulk change cancelled"
    )
    assert cancel_row.process_by == "ops"
    assert cancel_row.response_text.startswith("2 devices cancelled now")
    assert "1 device has already sent the change to the carrier" in cancel_row.response_text

    progress = bulk_change_progress(bulk_change_id=bulk_change.pk)
    assert (progress.changed, progress.cancelled, progress.failed, progress.in_flight) == (
        1,
        2,
        0,
        0,
    )
    assert progress.cancel_summary() == "1 changed before the cancel took effect, 2 cancelled"

    wait_for(lambda: callback_listener.bodies(), timeout=10, message="the completion webhook")
    [payload] = callback_listener.bodies()
    summary = payload["bulk_change"]
    assert summary["status"] == "CANCELLED"
    assert summary["processed_at"] == bulk_change.processed_at.isoformat()
    assert {key: summary["progress"][key] for key in ("changed", "cancelled", "failed")} == {
        "changed": 1,
        "cancelled": 2,
        "failed": 0,
    }
    assert WebhookDelivery.objects.get(bulk_change=bulk_change).status == "SUCCEEDED"


def test_a_device_in_flight_that_fails_ends_error_and_is_counted_apart(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    carrier: ScriptedCarrier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    numbers = iccids(2)
    carrier.scripts[numbers[0]] = Script(outcome="failure")
    bulk_change = create(world, numbers)
    during_submit(monkeypatch, lambda: bulk_change_cancel(bulk_change=bulk_change, actor="ops"))

    bulk_change = poll_until_final(bulk_change)

    assert [device.status for device in devices(bulk_change)] == [Status.ERROR, Status.CANCELLED]
    assert bulk_change.status == BulkChange.Status.CANCELLED
    assert completion_rows(bulk_change) == [
        "CANCELLED: 0 changed before the cancel took effect, 1 cancelled, 1 failed"
    ]
    completion = BulkChangeLog.objects.get(
        bulk_change=bulk_change, log_entry_description=COMPLETION
    )
    assert completion.has_errors


def test_the_confirm_counts_say_what_the_cancel_will_do(
    world: IntegrationAuthentication,
) -> None:
    bulk_change = create(world, iccids(4))
    first, second, third, _ = devices(bulk_change)
    now = timezone.now()
    DeviceChange.objects.filter(pk=first.pk).update(
        status=Status.AWAITING_CARRIER, write_started_at=now, next_attempt_at=now
    )
    DeviceChange.objects.filter(pk=second.pk).update(
        status=Status.RETRY_SCHEDULED, write_started_at=now, next_attempt_at=now
    )
    DeviceChange.objects.filter(pk=third.pk).update(
        status=Status.RETRY_SCHEDULED, next_attempt_at=now
    )
    impact = bulk_change_cancel_impact(bulk_change_id=bulk_change.pk)
    assert (impact.cancel_now, impact.finishing) == (2, 2)

    outcome = bulk_change_cancel(bulk_change=bulk_change, actor="ops")

    assert (outcome.cancelled, outcome.finishing, outcome.status) == (2, 2, "CANCELLING")
    statuses = [device.status for device in devices(bulk_change)]
    assert statuses == [
        Status.AWAITING_CARRIER,  # submitted: confirmed to its end
        Status.RETRY_SCHEDULED,  # a write was sent before its transient failure: runs on
        Status.CANCELLED,  # its failure came before any write
        Status.CANCELLED,
    ]
    assert BulkChange.objects.get(pk=bulk_change.pk).cancel_requested_by == "ops"


# --- Claims, retries and the reaper in a CANCELLING bulk change ---------------------------------


def test_only_devices_in_flight_are_claimed_in_a_cancelling_bulk_change(
    world: IntegrationAuthentication,
) -> None:
    bulk_change = create(world, iccids(2))
    in_flight, unsent = devices(bulk_change)
    past = timezone.now() - timedelta(minutes=1)
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.CANCELLING)
    # A state no cancel leaves behind (it cancels unsent devices at once), to test the guard.
    DeviceChange.objects.filter(pk__in=[in_flight.pk, unsent.pk]).update(
        status=Status.RETRY_SCHEDULED, next_attempt_at=past
    )
    DeviceChange.objects.filter(pk=in_flight.pk).update(write_started_at=past)

    assert device_change_claim(ids=[in_flight.pk, unsent.pk]) == [in_flight.pk]


def test_retry_refuses_a_cancelling_bulk_change(world: IntegrationAuthentication) -> None:
    bulk_change = create(world, iccids(1))
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.CANCELLING)
    bulk_change.refresh_from_db()
    with pytest.raises(Conflict, match="is cancelling"):
        bulk_change_retry(bulk_change=bulk_change, actor="ops")
    with pytest.raises(Conflict, match="is CANCELLING; only"):
        bulk_change_cancel(bulk_change=bulk_change, actor="ops")


def test_the_reaper_writes_a_missed_cancelled_never_before_the_last_device(
    world: IntegrationAuthentication, sqs_queue: Queue
) -> None:
    bulk_change = create(world, iccids(2))
    done, cancelled = devices(bulk_change)
    ahead = timezone.now() + timedelta(seconds=5)  # a worker whose clock ran ahead
    DeviceChange.objects.filter(pk=done.pk).update(
        status=Status.PROCESSED, is_processed=True, processed_at=ahead
    )
    DeviceChange.objects.filter(pk=cancelled.pk).update(
        status=Status.CANCELLED, is_processed=True, processed_at=timezone.now()
    )
    # The last device ended; its worker died before its completion check.
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.CANCELLING)

    report = reap(enqueue=lambda ids: None, process_by="reaper")

    assert report.bulk_changes_completed == 1
    bulk_change.refresh_from_db()
    assert bulk_change.status == BulkChange.Status.CANCELLED
    assert bulk_change.processed_at is not None and bulk_change.processed_at >= ahead
    assert completion_rows(bulk_change) == [
        "CANCELLED: 1 changed before the cancel took effect, 1 cancelled"
    ]
    assert reap(enqueue=lambda ids: None, process_by="reaper").bulk_changes_completed == 0


def test_the_reaper_recovers_devices_in_flight_of_a_cancelling_bulk_change(
    world: IntegrationAuthentication, sqs_queue: Queue, settings: Any
) -> None:
    bulk_change = create(world, iccids(2))
    dead_worker, lost_message = devices(bulk_change)
    long_ago = timezone.now() - timedelta(seconds=settings.BULKCHANGE_REAPER_GRACE_SECONDS + 60)
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.CANCELLING)
    DeviceChange.objects.filter(pk=dead_worker.pk).update(
        status=Status.PROCESSING,
        write_started_at=long_ago,
        claim_token=uuid.uuid4(),
        claimed_until=long_ago,
    )
    DeviceChange.objects.filter(pk=lost_message.pk).update(
        status=Status.RETRY_SCHEDULED, write_started_at=long_ago, next_attempt_at=long_ago
    )
    enqueued: list[list[int]] = []

    report = reap(enqueue=enqueued.append, process_by="reaper")

    assert report.leases_expired == 1 and enqueued == [[dead_worker.pk]]
    assert report.retries_resent == 1
    assert report.bulk_changes_completed == 0
    assert BulkChange.objects.get(pk=bulk_change.pk).status == BulkChange.Status.CANCELLING
    # Both are claimable again: they had sent their change, so they run to their end.
    assert sorted(device_change_claim(ids=[dead_worker.pk, lost_message.pk])) == sorted(
        [dead_worker.pk, lost_message.pk]
    )


# --- previous_status, recorded with the write start --------------------------------------------


def test_previous_status_is_the_inventory_at_claim_time_else_the_carriers_read(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    carrier: ScriptedCarrier,
) -> None:
    known, unknown = iccids(2)
    online = DeviceStatus.objects.get(integration="TEAL", code="online")
    Device.objects.create(tenant=world.tenant, integration="TEAL", iccid=known, status=online)
    carrier.scripts[unknown] = Script(read="waiting")  # not in our inventory: read it
    bulk_change = poll_until_final(create(world, [known, unknown], ignore_current=False))

    first, second = devices(bulk_change)
    assert (first.status, first.previous_status) == (Status.PROCESSED, "online")
    assert (second.status, second.previous_status) == (Status.PROCESSED, "waiting")
    assert carrier.reads == [unknown]
    assert first.write_started_at is not None and second.write_started_at is not None


# --- The completion webhook follows CANCELLED, a rejected approval's too -----------------------


def test_a_rejected_approval_is_announced_like_any_cancelled_bulk_change(
    world: IntegrationAuthentication,
    inline_workers: None,
    callback_listener: CallbackListener,
    settings: Any,
) -> None:
    """Whoever writes the rejection, the sweep announces a CANCELLED bulk change that has no
    delivery yet, with its counts (its devices never ran: none changed)."""
    from bulkchanges.services.webhooks import webhook_deliveries_sweep

    bulk_change = create(world, iccids(2), callback_url=callback_listener.url)
    BulkChange.objects.filter(pk=bulk_change.pk).update(
        status=BulkChange.Status.AWAITING_APPROVAL, queued_at=None
    )
    decided = timezone.now() - timedelta(seconds=settings.BULKCHANGE_REAPER_GRACE_SECONDS + 5)
    assert transitions.bulk_change_reject(bulk_change_id=bulk_change.pk, now=decided, by="two")

    webhook_deliveries_sweep()

    wait_for(lambda: callback_listener.bodies(), timeout=10, message="the completion webhook")
    [payload] = callback_listener.bodies()
    assert payload["bulk_change"]["status"] == "CANCELLED"
    assert payload["bulk_change"]["progress"]["total"] == 2
    assert payload["bulk_change"]["progress"]["changed"] == 0
