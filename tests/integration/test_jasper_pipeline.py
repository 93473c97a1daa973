"""Jasper bulk changes through the real pipeline: a real SQS endpoint (moto server), real HTTP to
the Jasper simulator, the real database and consumer, django-q2 in sync mode (inline_workers).

What the operator sees is the specification: device statuses, attempts, the audit rows and the
messages on failed devices. The cases every carrier shares (a mixed bulk change, 429 with
Retry-After, rejected credentials, refusals at creation, skipping) are in
test_carrier_pipeline.py; these are Jasper's own — among them the polling paths: a PUT Jasper
answers 202 (or without the ICCID echo) is confirmed by reading the device, the device waiting
(AWAITING_CARRIER) between reads without using a retry, and reconciled by one read at the
10-minute deadline (compressed by BULKCHANGE_CARRIER_TIME_SCALE).
"""

from __future__ import annotations

from typing import Any

import pytest

from bulkchanges.models import BulkChange, BulkChangeLog, Device, DeviceChange, DeviceStatus
from integrations.simulators.control import SimulatorControl
from tests.conftest import Queue, descriptions, drain
from tests.fixtures.pipeline import (
    OUTCOME,
    RETRY,
    JasperWorld,
    device_change,
    run_until_retry_scheduled,
    run_until_status,
)

pytestmark = pytest.mark.django_db(transaction=True)

UPDATE = JasperWorld.update_row
READ = JasperWorld.read_row
WAITING = "Waiting for carrier"


def run_until_awaiting_carrier(bulk_change: BulkChange) -> DeviceChange:
    return run_until_status(bulk_change, DeviceChange.Status.AWAITING_CARRIER)


@pytest.fixture
def one_read_per_attempt(settings: Any) -> Any:
    """Each CONFIRM attempt reads the device once (no budget to poll again)."""
    settings.BULKCHANGE_CONFIRM_SECONDS = 0
    return settings


@pytest.fixture
def world(simulator: SimulatorControl, device_statuses: None) -> JasperWorld:
    return JasperWorld.arrange(simulator)


def test_the_retry_after_a_429_is_sent_no_sooner_than_retry_after_and_succeeds(
    world: JasperWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.add_fault(
        "jasper", "update_device", key=device.iccid, status=429, retry_after=3
    )
    bulk_change = world.create([device])
    scheduled = run_until_retry_scheduled(bulk_change)  # when: test_carrier_pipeline.py
    assert scheduled.next_attempt_at is not None

    bulk_change = drain(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    first, second = world.simulator.requests(carrier="jasper", op="update_device")
    assert (first["status"], second["status"]) == (429, 200)
    assert second["time"] - first["time"] >= 3
    assert second["time"] >= scheduled.next_attempt_at.timestamp()
    assert device_change(bulk_change, device).attempts == 1


@pytest.mark.parametrize("answer", ["accepted", "accepted-empty", "no-echo", "empty"])
def test_an_unconfirmed_put_is_confirmed_by_reading_the_device_after_a_few_waits(
    world: JasperWorld,
    sqs_queue: Queue,
    inline_workers: None,
    one_read_per_attempt: Any,
    answer: str,
) -> None:
    one_read_per_attempt.BULKCHANGE_WAITING_SCHEDULE_MINUTES = [0]  # the next check is due at once
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.jasper_unconfirmed(iccid=device.iccid, answer=answer, reads=3)
    bulk_change = world.create([device])

    waiting = run_until_awaiting_carrier(bulk_change)

    assert waiting.attempts == 0
    assert waiting.carrier_submitted_at is not None and waiting.carrier_status_at is None
    assert waiting.confirm_deadline_at is not None
    deadline = waiting.confirm_deadline_at - waiting.carrier_submitted_at
    assert deadline.total_seconds() == 600
    assert waiting.next_attempt_at is not None
    assert world.inventory_status(device) is None
    row = BulkChangeLog.objects.get(device_change=waiting, log_entry_description=WAITING)
    assert f"ICCID {device.iccid} still shows ACTIVATED, not DEACTIVATED" in row.response_text

    bulk_change = drain(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    done = device_change(bulk_change, device)
    assert done.status == DeviceChange.Status.PROCESSED
    assert (done.attempts, done.carrier_waits) == (0, 3)
    assert done.carrier_status_at is not None and done.last_error == ""
    assert descriptions(bulk_change, done) == [UPDATE, *[READ, WAITING] * 3, READ, OUTCOME]
    assert world.calls("update_device", device.iccid) == 1  # CONFIRM never submits again
    assert world.calls("get_device", device.iccid) == 4
    assert world.inventory_status(device) == "DEACTIVATED"


@pytest.fixture
def short_deadline(one_read_per_attempt: Any) -> None:
    """The 10-minute deadline compressed to 1.2 s; the first wait (15 minutes) would pass it,
    so the next check is due at the deadline: one wait, then the reconciliation read."""
    one_read_per_attempt.BULKCHANGE_CARRIER_TIME_SCALE = 0.002
    one_read_per_attempt.BULKCHANGE_WAITING_SCHEDULE_MINUTES = [15]


def test_a_change_never_shown_by_the_deadline_ends_error_saying_what_the_device_shows(
    world: JasperWorld, sqs_queue: Queue, inline_workers: None, short_deadline: None
) -> None:
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.jasper_unconfirmed(iccid=device.iccid, reads=None)  # never shown

    bulk_change = drain(world.create([device]))

    assert bulk_change.status == BulkChange.Status.ERROR
    failed = device_change(bulk_change, device)
    assert failed.status == DeviceChange.Status.ERROR
    assert (failed.attempts, failed.carrier_waits) == (0, 1)
    assert failed.last_error == (
        f"Jasper did not confirm the status change of ICCID {device.iccid} within 10 minutes; "
        "check the carrier before retrying: Jasper accepted the change but the device still "
        "shows ACTIVATED"
    )
    assert failed.carrier_status_at is None
    assert descriptions(bulk_change, failed) == [UPDATE, READ, WAITING, READ, OUTCOME]
    assert world.calls("update_device", device.iccid) == 1
    assert world.inventory_status(device) is None


def test_a_change_shown_by_the_deadline_read_is_reconciled_and_processed(
    world: JasperWorld, sqs_queue: Queue, inline_workers: None, short_deadline: None
) -> None:
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.jasper_unconfirmed(iccid=device.iccid, reads=None)
    bulk_change = world.create([device])
    waiting = run_until_awaiting_carrier(bulk_change)
    assert waiting.next_attempt_at == waiting.confirm_deadline_at  # the wait ends at the deadline

    world.simulator.jasper_settle(device.iccid)  # Jasper applies it, after the confirm reads
    bulk_change = drain(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    done = device_change(bulk_change, device)
    assert done.status == DeviceChange.Status.PROCESSED
    assert (done.attempts, done.carrier_waits) == (0, 1)
    assert descriptions(bulk_change, done) == [UPDATE, READ, WAITING, READ, OUTCOME]
    assert world.calls("update_device", device.iccid) == 1
    assert world.inventory_status(device) == "DEACTIVATED"


@pytest.mark.parametrize("status", [400, 429])
def test_a_tariff_limit_on_the_put_is_retried_and_the_change_made(
    world: JasperWorld, sqs_queue: Queue, inline_workers: None, status: int
) -> None:
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.jasper_tariff_limit(iccid=device.iccid, status=status)

    bulk_change = drain(world.create([device]))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    done = device_change(bulk_change, device)
    assert (done.status, done.attempts) == (DeviceChange.Status.PROCESSED, 1)
    assert descriptions(bulk_change, done) == [UPDATE, RETRY, UPDATE, OUTCOME]
    retry = BulkChangeLog.objects.get(device_change=done, log_entry_description=RETRY)
    assert retry.error_text == f"HTTP {status} from Jasper: Exceeding Tariff limits (40000029)"
    first, second = world.simulator.requests(carrier="jasper", op="update_device")
    assert (first["status"], second["status"]) == (status, 200)
    assert second["time"] - first["time"] >= 1  # at least 1 s after a 40000029
    assert world.carrier_status(device) == "DEACTIVATED"


def test_a_tariff_limit_on_the_confirm_read_is_retried_at_confirm_without_a_second_put(
    world: JasperWorld, sqs_queue: Queue, inline_workers: None, one_read_per_attempt: Any
) -> None:
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.jasper_unconfirmed(iccid=device.iccid)
    world.simulator.jasper_tariff_limit(op="get_device", iccid=device.iccid, status=400)

    bulk_change = drain(world.create([device]))

    done = device_change(bulk_change, device)
    assert (done.status, done.attempts, done.carrier_waits) == (
        DeviceChange.Status.PROCESSED,
        1,
        0,
    )
    assert descriptions(bulk_change, done) == [UPDATE, READ, RETRY, READ, OUTCOME]
    assert world.calls("update_device", device.iccid) == 1
    assert world.inventory_status(device) == "DEACTIVATED"


def test_activating_an_activated_sim_counts_as_done(
    world: JasperWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [device] = world.devices(1)
    world.seed([device], status="ACTIVATED")

    bulk_change = drain(world.create([device], status="ACTIVATED"))

    done = device_change(bulk_change, device)
    assert (done.status, done.attempts) == (DeviceChange.Status.PROCESSED, 0)
    assert descriptions(bulk_change, done) == [UPDATE, OUTCOME]
    row = BulkChangeLog.objects.get(device_change=done, log_entry_description=UPDATE)
    assert row.response_status == 400 and "10030000" in row.response_text
    assert world.inventory_status(device) == "ACTIVATED"


def test_a_wrong_iccid_echo_fails_that_device_permanently_naming_both_iccids(
    world: JasperWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    echoed, fine = world.devices(2)
    world.seed([echoed, fine])
    stranger = "89148000009999999999"
    world.simulator.jasper_wrong_echo(iccid=echoed.iccid, echo=stranger)

    bulk_change = drain(world.create([echoed, fine]))

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    failed = device_change(bulk_change, echoed)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == (
        f"HTTP 200 from Jasper: the answer echoed ICCID {stranger}, not {echoed.iccid}; "
        "the status change is not confirmed"
    )
    assert failed.carrier_status_at is None and failed.carrier_submitted_at is None
    assert world.inventory_status(echoed) is None
    row = BulkChangeLog.objects.get(device_change=failed, log_entry_description=UPDATE)
    assert row.response_status == 200 and row.has_errors
    assert stranger in row.response_text and echoed.iccid in row.error_text
    assert world.calls("update_device", echoed.iccid) == 1
    assert device_change(bulk_change, fine).status == DeviceChange.Status.PROCESSED


def test_a_transition_jasper_refuses_ends_error_with_its_message(
    world: JasperWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    retired, activated = world.devices(2)
    world.seed([retired], status="RETIRED")
    world.seed([activated], status="DEACTIVATED")

    bulk_change = drain(world.create([retired, activated], status="ACTIVATED"))

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    failed = device_change(bulk_change, retired)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == "HTTP 400 from Jasper: Invalid status change (10000024)"
    assert descriptions(bulk_change, failed) == [UPDATE, OUTCOME]
    assert world.carrier_status(retired) == "RETIRED"
    assert world.calls("update_device", retired.iccid) == 1
    assert device_change(bulk_change, activated).status == DeviceChange.Status.PROCESSED
    assert world.inventory_status(activated) == "ACTIVATED"


def test_without_ignore_current_status_a_known_device_is_judged_by_our_inventory(
    world: JasperWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [device] = world.devices(1)
    world.seed([device], status="ACTIVATED")
    Device.objects.create(
        tenant=world.tenant,
        integration="JASPER",
        iccid=device.iccid,
        status=DeviceStatus.objects.get(integration="JASPER", code="DEACTIVATED"),
    )

    bulk_change = drain(world.create([device], ignore_current=False))

    assert device_change(bulk_change, device).status == DeviceChange.Status.SKIPPED
    assert world.calls() == 0


def test_a_device_jasper_reports_purged_is_not_skipped_and_its_refusal_is_reported(
    world: JasperWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [device] = world.devices(1)
    world.seed([device], status="PURGED")

    bulk_change = drain(world.create([device], ignore_current=False))

    failed = device_change(bulk_change, device)
    assert failed.status == DeviceChange.Status.ERROR
    assert descriptions(bulk_change, failed) == [READ, UPDATE, OUTCOME]
    assert "Invalid status change" in failed.last_error
