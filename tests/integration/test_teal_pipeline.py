"""The Teal pipeline in one process: a real SQS endpoint (moto server), real HTTP to the Teal
simulator, the real database and the real consumer, with django-q2 in sync mode.

Teal is asynchronous and named by our own requestId: these tests pin that the id is stored
before the submit and reused on a resubmission, that a confirm that runs out of time is retried
by confirming again (never by re-submitting), and that Teal's per-device errors fail only that
device. The cases every carrier shares are in test_carrier_pipeline.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bulkchanges.models import BulkChange, DeviceChange
from bulkchanges.types import DeviceRef
from integrations.simulators.control import SimulatorControl
from tests.conftest import Queue, descriptions, drain, iccids
from tests.fixtures.pipeline import (
    OUTCOME,
    RETRY,
    TealWorld,
    device_change,
    run_until_retry_scheduled,
)

pytestmark = pytest.mark.django_db(transaction=True)

CHANGE = TealWorld.update_row
POLL = TealWorld.POLL


@pytest.fixture
def world(simulator: SimulatorControl, device_statuses: None) -> TealWorld:
    return TealWorld.arrange(simulator)


def submitted_request_ids(simulator: SimulatorControl, op: str, eid: str) -> list[str]:
    """The requestId of every submission the simulator received for ``eid`` (faulted too)."""
    return [
        parse_qs(urlsplit(entry["path"]).query, keep_blank_values=True)["requestId"][0]
        for entry in simulator.requests(carrier="teal", op=op, key=eid)
    ]


def test_a_transient_submit_failure_is_resubmitted_with_the_same_request_id(
    world: TealWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.add_fault("teal", "enable", key=device.eid, status=503, times=1)

    bulk_change = drain(world.create([device]))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    change = device_change(bulk_change, device)
    seen = submitted_request_ids(world.simulator, "enable", device.eid)
    assert seen == [change.carrier_request_id] * 2
    [operation] = world.simulator.teal_operations()
    assert operation["requestId"] == change.carrier_request_id
    assert operation["submissions"] == 1  # the 503 was answered before Teal saw it
    assert change.attempts == 1


def test_a_confirm_past_the_budget_is_retried_by_confirming_the_stored_request_id(
    world: TealWorld, sqs_queue: Queue, inline_workers: None, settings: Any
) -> None:
    settings.BULKCHANGE_CONFIRM_SECONDS = 1
    [device] = world.devices(1)
    world.seed([device], status="online")
    world.simulator.configure_teal(completion_seconds="never")
    bulk_change = world.create([device], status="disabled")

    waiting = run_until_retry_scheduled(bulk_change)

    assert waiting.carrier_request_id and waiting.carrier_submitted_at
    assert waiting.carrier_status_at is None
    assert waiting.last_error == (
        f"Teal request {waiting.carrier_request_id} still running (PROCESSING) after 1 s; "
        "the retry confirms it again"
    )
    polls_before_retry = world.calls("operation", waiting.carrier_request_id)
    assert polls_before_retry >= 2

    world.simulator.configure_teal(completion_seconds=0)
    bulk_change = drain(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    change = device_change(bulk_change, device)
    assert change.attempts == 1
    assert change.carrier_request_id == waiting.carrier_request_id
    assert world.calls("disable", device.eid) == 1
    assert world.calls("operation", change.carrier_request_id) == polls_before_retry + 1
    assert world.carrier_status(device) == "stopped"
    assert world.inventory_status(device) == "stopped"
    rows = descriptions(bulk_change, change)
    assert rows[0] == CHANGE
    assert rows[-3:] == [RETRY, POLL, OUTCOME]
    assert set(rows[1:-3]) == {POLL}


def test_a_per_entry_error_from_teal_fails_only_that_device(
    world: TealWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    good, locked = world.devices(2)
    world.seed([good, locked])
    world.simulator.set_teal_errors(locked.eid, entry_error="Profile is locked by the MNO")

    bulk_change = drain(world.create([good, locked]))

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    failed = device_change(bulk_change, locked)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert (
        failed.last_error == f"Teal could not enable EID {locked.eid}: Profile is locked by the MNO"
    )
    assert descriptions(bulk_change, failed) == [CHANGE, POLL, OUTCOME]
    assert world.carrier_status(locked) == "stopped"
    assert device_change(bulk_change, good).status == DeviceChange.Status.PROCESSED
    assert world.carrier_status(good) == "online"


def test_a_device_without_an_eid_fails_before_any_call(
    world: TealWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [with_eid] = world.devices(1)
    [iccid] = iccids(1, start=500)
    without_eid = DeviceRef(iccid=iccid)
    world.seed([with_eid])

    bulk_change = drain(world.create([with_eid, without_eid], ignore_current=False))

    failed = device_change(bulk_change, without_eid)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.last_error == f"Teal needs the EID for ICCID {iccid}"
    assert failed.attempts == 0
    assert descriptions(bulk_change, failed) == [OUTCOME]
    processed = device_change(bulk_change, with_eid)
    assert processed.status == DeviceChange.Status.PROCESSED
    calls_for_the_device_with_an_eid = (
        world.calls("read_esim", with_eid.eid)
        + world.calls("enable", with_eid.eid)
        + world.calls("operation", processed.carrier_request_id)
    )
    assert world.calls() == calls_for_the_device_with_an_eid == 3
    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
