"""Jasper bulk changes through the real pipeline: a real SQS endpoint (moto server), real HTTP to
the Jasper simulator, the real database and consumer, django-q2 in sync mode (inline_workers).

What the operator sees is the specification: device statuses, attempts, the audit rows and the
messages on failed devices. The cases every carrier shares (a mixed bulk change, 429 with
Retry-After, rejected credentials, refusals at creation, skipping) are in
test_carrier_pipeline.py; these are Jasper's own.
"""

from __future__ import annotations

import pytest

from bulkchanges.models import BulkChange, BulkChangeLog, Device, DeviceChange, DeviceStatus
from integrations.simulators.control import SimulatorControl
from tests.conftest import Queue, descriptions, drain
from tests.fixtures.pipeline import OUTCOME, JasperWorld, device_change, run_until_retry_scheduled

pytestmark = pytest.mark.django_db(transaction=True)

UPDATE = JasperWorld.update_row
READ = JasperWorld.read_row


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
    assert failed.carrier_status_at is None
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
