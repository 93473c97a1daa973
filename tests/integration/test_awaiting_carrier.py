"""Waiting on an asynchronous carrier is not failing (docs/architecture.md §7): the core's
rules with a scripted carrier, over the real queue path (moto's SQS, the real consumer,
django-q2 inline) and the real callback receiver. The carriers' own wire contracts are tested
per carrier; this file pins down what happens to *any* carrier that answers "pending"."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from bulkchanges import transitions
from bulkchanges.consumer import SqsConsumer
from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    CarrierCallback,
    DeviceChange,
    IntegrationAuthentication,
)
from bulkchanges.services import (
    bulk_change_cancel,
    bulk_change_retry,
)
from bulkchanges.services.reaper import reap
from tests.conftest import Queue, descriptions, drain, iccids, wait_for
from tests.fixtures.scripted_carrier import (
    Script,
    ScriptedCarrier,
    scripted_bulk_change,
    scripted_credentials,
)

pytestmark = pytest.mark.django_db(transaction=True)

Status = DeviceChange.Status


@pytest.fixture
def carrier(scripted_carrier: ScriptedCarrier) -> ScriptedCarrier:
    return scripted_carrier


@pytest.fixture
def world(
    scripted_carrier: ScriptedCarrier, device_statuses: None, settings: Any
) -> IntegrationAuthentication:
    settings.CARRIER_CALLBACK_BASE_URL = "https://pondops.example"
    credentials: IntegrationAuthentication = scripted_credentials(tenant_name="Async Co")
    return credentials


def create(credentials: IntegrationAuthentication, numbers: list[str]) -> BulkChange:
    bulk_change: BulkChange = scripted_bulk_change(credentials, numbers)
    return bulk_change


def only_device(bulk_change: BulkChange) -> DeviceChange:
    return DeviceChange.objects.get(bulk_change=bulk_change)


def waiting(
    credentials: IntegrationAuthentication, carrier: ScriptedCarrier
) -> tuple[BulkChange, DeviceChange]:
    """A one-device bulk change whose carrier never finishes, run until the device waits."""
    [iccid] = iccids(1)
    carrier.scripts[iccid] = Script(outcome="never")
    bulk_change = create(credentials, [iccid])
    poll_until(lambda: only_device(bulk_change).status == Status.AWAITING_CARRIER)
    return bulk_change, only_device(bulk_change)


def poll_until(predicate: Any, *, timeout: float = 30) -> None:
    consumer = SqsConsumer(wait_seconds=1)

    def done() -> bool:
        consumer.poll_once()
        return bool(predicate())

    wait_for(done, timeout=timeout, interval=0, message="condition")


def test_pending_checks_wait_without_consuming_retries_then_processed(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    carrier: ScriptedCarrier,
) -> None:
    [iccid] = iccids(1)
    carrier.scripts[iccid] = Script(pending_checks=3)
    bulk_change = drain(create(world, [iccid]))

    device = only_device(bulk_change)
    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert device.status == Status.PROCESSED
    assert device.attempts == 0  # waiting consumed no retry
    assert device.carrier_waits == 3
    assert len(carrier.submits) == 1  # CONFIRM only reads
    assert len(carrier.checks) == 4
    started, submitted = device.write_started_at, device.carrier_submitted_at
    assert started is not None and submitted is not None
    assert device.confirm_deadline_at is not None
    assert started <= submitted <= device.confirm_deadline_at
    waits = BulkChangeLog.objects.filter(
        device_change=device, log_entry_description="Waiting for carrier"
    )
    assert waits.count() == 3
    assert all(
        "AWAITING_CARRIER: waiting for Scripted carrier: request" in row.response_text
        and "next check at" in row.response_text
        for row in waits
    )


def test_a_device_waiting_on_its_carrier_is_counted_apart_and_keeps_the_bulk_change_open(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    carrier: ScriptedCarrier,
) -> None:
    from bulkchanges.selectors import bulk_change_progress, final_status

    [iccid] = iccids(1)
    carrier.scripts[iccid] = Script(outcome="never", read="online")
    bulk_change = create(world, [iccid])
    poll_until(lambda: only_device(bulk_change).status == Status.AWAITING_CARRIER)

    progress = bulk_change_progress(bulk_change_id=bulk_change.pk)
    assert progress.awaiting_carrier == 1 and progress.failed == 0 and progress.done == 0
    assert final_status(progress.counts) is None
    assert progress.as_dict()["awaiting_carrier"] == 1


def test_never_confirmed_the_read_decides_at_the_deadline(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    carrier: ScriptedCarrier,
) -> None:
    applied, not_applied = iccids(2)
    carrier.scripts[applied] = Script(outcome="never", read="stopped")
    carrier.scripts[not_applied] = Script(outcome="never", read="enabled")
    bulk_change = drain(create(world, [applied, not_applied]), timeout=40)

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    by_iccid = {d.iccid: d for d in DeviceChange.objects.filter(bulk_change=bulk_change)}
    assert by_iccid[applied].status == Status.PROCESSED
    assert by_iccid[applied].attempts == 0
    failed = by_iccid[not_applied]
    assert failed.status == Status.ERROR and failed.attempts == 0
    assert failed.last_error == (
        f"Scripted carrier did not confirm request {failed.carrier_request_id} within "
        "1 hour; check the carrier before retrying"
    )
    assert sorted(carrier.reads) == sorted([applied, not_applied])
    # Never past the deadline: every wait's next check is at or before it.
    waits = BulkChangeLog.objects.filter(
        device_change=failed, log_entry_description="Waiting for carrier"
    ).values_list("response_text", flat=True)
    next_checks = [datetime.fromisoformat(text.rsplit("next check at ", 1)[1]) for text in waits]
    assert next_checks and failed.confirm_deadline_at is not None
    assert all(check <= failed.confirm_deadline_at for check in next_checks)


def test_manual_retry_resumes_at_confirm_and_resubmit_submits_again(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    carrier: ScriptedCarrier,
) -> None:
    [iccid] = iccids(1)
    script = Script(outcome="never", read="enabled")
    carrier.scripts[iccid] = script
    bulk_change = drain(create(world, [iccid]), timeout=40)
    device = only_device(bulk_change)
    assert device.status == Status.ERROR
    old_request = device.carrier_request_id

    # A retry confirms the old request: no second SUBMIT; past its deadline, the read decides.
    script.read = "stopped"
    assert bulk_change_retry(bulk_change=bulk_change, actor="ops") == [device.pk]
    bulk_change = drain(bulk_change)
    device.refresh_from_db()
    assert device.status == Status.PROCESSED
    assert device.carrier_request_id == old_request
    assert len(carrier.submits) == 1

    # A resubmit of an unconfirmed ERROR device forgets its request and submits again.
    second = create(world, iccids(1, start=5))
    carrier.scripts[iccids(1, start=5)[0]] = Script(outcome="failure")
    second = drain(second)
    failed = only_device(second)
    assert failed.status == Status.ERROR and failed.carrier_request_id
    first_request = failed.carrier_request_id
    carrier.scripts[failed.iccid] = Script(outcome="success")
    assert bulk_change_retry(bulk_change=second, actor="ops", resubmit=True) == [failed.pk]
    second = drain(second)
    failed.refresh_from_db()
    assert failed.status == Status.PROCESSED
    assert failed.carrier_request_id and failed.carrier_request_id != first_request
    assert [iccid for iccid, _ in carrier.submits].count(failed.iccid) == 2
    audit = BulkChangeLog.objects.get(
        device_change=failed, log_entry_description="Resubmit requested"
    )
    assert first_request in audit.response_text and "submitted again" in audit.response_text
    assert audit.process_by == "ops"


def test_resubmit_takes_only_unconfirmed_error_devices(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    carrier: ScriptedCarrier,
) -> None:
    from bulkchanges.errors import Conflict

    numbers = iccids(1)
    carrier.scripts[numbers[0]] = Script(outcome="success")
    bulk_change = drain(create(world, numbers))
    assert bulk_change_retry(bulk_change=bulk_change, actor="ops", resubmit=True) == []
    with pytest.raises(Conflict, match="not eligible for resubmit"):
        bulk_change_retry(
            bulk_change=bulk_change,
            actor="ops",
            resubmit=True,
            device_change_ids=[only_device(bulk_change).pk],
        )


def test_a_callback_wakes_the_waiting_device_and_confirm_reads_it(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    settings: Any,
    carrier: ScriptedCarrier,
) -> None:
    settings.BULKCHANGE_CARRIER_TIME_SCALE = 1.0  # the next check is a real minute away
    bulk_change, device = waiting(world, carrier)
    iccid = device.iccid
    assert device.next_attempt_at is not None
    assert device.next_attempt_at > timezone.now() + timedelta(seconds=30)

    url = f"/carriers/teal/callbacks/{world.pk}/"
    query = {
        "token": world.callback_token,
        "requestId": device.carrier_request_id,
        "outcome": "SUCCEEDED",
        "iccid": iccid,
    }
    answer = Client().get(url, query)
    assert answer.status_code == 200 and answer.json() == {"received": True}
    again = Client().post(f"{url}?{_encode(query)}")  # the carrier's re-send: stored once
    assert again.status_code == 200

    callback = CarrierCallback.objects.get()
    assert callback.device_change_id == device.pk and callback.copies == 2
    assert world.callback_token not in callback.path
    device.refresh_from_db()
    assert device.next_attempt_at is not None and device.next_attempt_at <= timezone.now()
    bulk_change = drain(bulk_change, timeout=15)
    device.refresh_from_db()
    assert device.status == Status.PROCESSED and device.attempts == 0
    assert len(carrier.submits) == 1
    assert "Carrier callback received" in descriptions(bulk_change, device)
    rows = BulkChangeLog.objects.filter(bulk_change=bulk_change)
    assert not any(world.callback_token in (row.request_text + row.response_text) for row in rows)


def test_a_callback_that_beats_the_recorded_submit_is_adopted_by_confirm(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    carrier: ScriptedCarrier,
) -> None:
    bulk_change, device = waiting(world, carrier)
    # As if it had come before SUBMIT was recorded: stored unmatched.
    CarrierCallback.objects.create(
        integration="TEAL",
        integration_authentication=world,
        request_id=device.carrier_request_id,
        outcome=CarrierCallback.Outcome.FAILED,
        reason="ESIM_NOT_FOUND",
        method="GET",
        path="/carriers/teal/callbacks/",
    )
    bulk_change = drain(bulk_change, timeout=15)
    device.refresh_from_db()
    assert device.status == Status.ERROR
    assert device.last_error == "scripted request failed: ESIM_NOT_FOUND"
    assert CarrierCallback.objects.get().device_change_id == device.pk


@pytest.mark.parametrize(
    ("path", "query", "status"),
    [
        ("/carriers/teal/callbacks/{pk}/", {"token": "wrong", "requestId": "r"}, 401),
        ("/carriers/teal/callbacks/{pk}/", {"requestId": "r"}, 401),
        ("/carriers/teal/callbacks/{pk}/", {"token": "{token}"}, 400),
        ("/carriers/teal/callbacks/999999/", {"token": "{token}", "requestId": "r"}, 404),
        ("/carriers/pond/callbacks/{pk}/", {"token": "{token}", "requestId": "r"}, 404),
        ("/carriers/nosuch/callbacks/{pk}/", {"token": "{token}", "requestId": "r"}, 404),
    ],
)
def test_callback_refusals(
    world: IntegrationAuthentication, path: str, query: dict[str, str], status: int
) -> None:
    filled = {key: value.replace("{token}", world.callback_token) for key, value in query.items()}
    answer = Client().get(path.replace("{pk}", str(world.pk)), filled)
    assert answer.status_code == status
    assert answer.json()["received"] is False
    assert world.callback_token not in answer.content.decode()
    assert not CarrierCallback.objects.exists()


def test_an_authenticated_callback_for_an_unknown_request_is_stored_unmatched(
    world: IntegrationAuthentication,
) -> None:
    answer = Client().post(
        f"/carriers/teal/callbacks/{world.pk}/?token={world.callback_token}&requestId=not-ours"
    )
    assert answer.status_code == 200
    callback = CarrierCallback.objects.get()
    assert callback.device_change_id is None and callback.request_id == "not-ours"


def test_a_huge_callback_body_is_refused_unread(world: IntegrationAuthentication) -> None:
    answer = Client().post(
        f"/carriers/teal/callbacks/{world.pk}/?token={world.callback_token}&requestId=r",
        data=b"x" * (65 * 1024),
        content_type="application/octet-stream",
    )
    assert answer.status_code == 413
    assert not CarrierCallback.objects.exists()


def test_the_reaper_resends_an_overdue_wait_with_the_same_retry_number(
    world: IntegrationAuthentication, sqs_queue: Queue, inline_workers: None, settings: Any
) -> None:
    from bulkchanges import sqs

    [iccid] = iccids(1)
    bulk_change = create(world, [iccid])
    device = only_device(bulk_change)
    long_ago = timezone.now() - timedelta(hours=1)
    DeviceChange.objects.filter(pk=device.pk).update(
        status=Status.AWAITING_CARRIER, attempts=2, next_attempt_at=long_ago
    )
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.PROCESSING)
    sqs.sqs_client().purge_queue(QueueUrl=sqs_queue.url)
    report = reap(enqueue=lambda ids: None, process_by="reaper")
    assert report.retries_resent == 1
    messages = sqs.sqs_client().receive_message(
        QueueUrl=sqs_queue.url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    [message] = [m for m in messages if sqs.decode(m).device_change_id == device.pk]
    assert sqs.decode(message).retry_number == 2
    # A second pass right away re-sends nothing: the grace period restarted.
    assert reap(enqueue=lambda ids: None, process_by="reaper").retries_resent == 0


def test_cancel_leaves_a_waiting_device_to_be_confirmed_then_the_bulk_change_is_cancelled(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    carrier: ScriptedCarrier,
) -> None:
    """A device waiting on its carrier has sent its change: the cancel does not stop it. Its
    checks go on in the CANCELLING bulk change until the carrier confirms (PROCESSED)."""
    [iccid] = iccids(1)
    carrier.scripts[iccid] = Script(pending_checks=2)
    bulk_change = create(world, [iccid])
    poll_until(lambda: only_device(bulk_change).status == Status.AWAITING_CARRIER)

    outcome = bulk_change_cancel(bulk_change=bulk_change, actor="ops")
    assert (outcome.cancelled, outcome.finishing) == (0, 1)
    assert bulk_change.status == BulkChange.Status.CANCELLING
    poll_until(lambda: BulkChange.objects.get(pk=bulk_change.pk).status in BulkChange.TERMINAL)

    device = only_device(bulk_change)
    assert device.status == Status.PROCESSED and device.last_error == ""
    assert len(carrier.submits) == 1  # confirmed, never submitted again
    bulk_change.refresh_from_db()
    assert bulk_change.status == BulkChange.Status.CANCELLED
    assert bulk_change.processed_at is not None and device.processed_at is not None
    assert bulk_change.processed_at >= device.processed_at


def test_a_lost_submit_answer_is_flagged_to_the_processor_on_the_retry(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    monkeypatch: Any,
    carrier: ScriptedCarrier,
) -> None:
    from tests.fixtures.scripted_carrier import ScriptedProcessor

    [iccid] = iccids(1)
    carrier.scripts[iccid] = Script(lose_submit_answer=True)
    seen: list[bool] = []
    perform = ScriptedProcessor.perform

    def spy(self: ScriptedProcessor, step: Any, context: Any) -> Any:
        if step == "submit":
            seen.append(context.progress.write_may_have_reached_carrier)
        return perform(self, step, context)

    monkeypatch.setattr(ScriptedProcessor, "perform", spy)
    bulk_change = drain(create(world, [iccid]))
    assert only_device(bulk_change).status == Status.PROCESSED
    assert seen == [False, True]


def test_waking_moves_only_waiting_rows_and_claiming_them_keeps_the_retry_number(
    world: IntegrationAuthentication,
) -> None:
    bulk_change = create(world, iccids(2))
    waiting, pending = DeviceChange.objects.filter(bulk_change=bulk_change).order_by("pk")
    later = timezone.now() + timedelta(hours=1)
    DeviceChange.objects.filter(pk=waiting.pk).update(
        status=Status.AWAITING_CARRIER, attempts=3, next_attempt_at=later
    )
    assert transitions.device_changes_wake(ids=[waiting.pk, pending.pk], now=timezone.now()) == [
        waiting.pk
    ]
    import uuid

    won = transitions.device_changes_claim(
        ids=[waiting.pk],
        token=uuid.uuid4(),
        lease_until=timezone.now() + timedelta(minutes=5),
        now=timezone.now(),
    )
    assert won == 1
    waiting.refresh_from_db()
    assert waiting.status == Status.PROCESSING and waiting.attempts == 3


def _encode(query: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(query)


def test_a_device_whose_bulk_change_is_cancelled_during_its_check_waits_and_ends_processed(
    world: IntegrationAuthentication,
    sqs_queue: Queue,
    inline_workers: None,
    carrier: ScriptedCarrier,
    monkeypatch: Any,
) -> None:
    """A cancel while the carrier is being asked: the device still waits (AWAITING_CARRIER in a
    CANCELLING bulk change), is checked again, and ends with the carrier's answer."""
    from tests.fixtures.scripted_carrier import ScriptedProcessor

    [iccid] = iccids(1)
    bulk_change = create(world, [iccid])
    checks: list[str] = []

    def check_then_cancel(self: ScriptedProcessor, context: Any, script: Script) -> Any:
        checks.append(context.iccid)
        if len(checks) == 1:
            bulk_change_cancel(bulk_change=bulk_change, actor="ops")  # while the check runs
            return None  # still pending
        return confirmed()

    monkeypatch.setattr(ScriptedProcessor, "_check", check_then_cancel)
    poll_until(lambda: BulkChange.objects.get(pk=bulk_change.pk).status in BulkChange.TERMINAL)

    device = only_device(bulk_change)
    assert device.status == Status.PROCESSED
    assert device.carrier_waits == 1 and len(checks) == 2
    assert device.claim_token is None and device.claimed_until is None
    assert BulkChange.objects.get(pk=bulk_change.pk).status == BulkChange.Status.CANCELLED
    assert "Waiting for carrier" in descriptions(bulk_change, device)


def confirmed() -> Any:
    from integrations.base import Step, StepResult, utc_now

    return StepResult(Step.CONFIRM, {"carrier_status_at": utc_now()})
