"""Telegence bulk changes through the real pipeline: a real SQS endpoint (moto server), real HTTP
to the Telegence simulator, the real database and consumer, django-q2 in sync mode. The cases
every carrier shares are in test_carrier_pipeline.py; these are Telegence's own: the PATCH
accepted then confirmed by re-reading the line, waiting for the carrier (AWAITING_CARRIER)
without consuming a retry, the four-hour deadline, and a PATCH whose answer was lost."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from bulkchanges.consumer import SqsConsumer
from bulkchanges.models import BulkChange, BulkChangeLog, Device, DeviceChange, DeviceStatus
from bulkchanges.types import DeviceRef
from integrations.simulators.control import SimulatorControl
from tests.conftest import Queue, approved, descriptions, drain, wait_for
from tests.fixtures.pipeline import OUTCOME, RETRY, TelegenceWorld, device_change

pytestmark = pytest.mark.django_db(transaction=True)

UPDATE = TelegenceWorld.update_row
READ = TelegenceWorld.read_row
WAITING = "Waiting for carrier"
FOUR_HOURS = 4 * 3600


@pytest.fixture
def world(simulator: SimulatorControl, device_statuses: None) -> TelegenceWorld:
    return TelegenceWorld.arrange(simulator)


@pytest.fixture
def one_read_per_confirm(settings: Any) -> None:
    """Each CONFIRM attempt reads the line once (no budget to poll again), so the simulator's
    read count decides when the line shows the change."""
    settings.BULKCHANGE_CONFIRM_SECONDS = 0


def today_utc_dates(started: datetime) -> set[str]:
    return {started.date().isoformat(), datetime.now(UTC).date().isoformat()}


def run_until(
    bulk_change: BulkChange, found: Callable[[], DeviceChange | None], message: str
) -> DeviceChange:
    """Poll the queue (workers run inline) until ``found`` finds a device change."""
    consumer = SqsConsumer(wait_seconds=1)

    def step() -> DeviceChange | None:
        consumer.poll_once()
        return found()

    result: DeviceChange = wait_for(step, timeout=60, interval=0, message=message)
    return result


def awaiting(bulk_change: BulkChange, device: DeviceRef) -> DeviceChange | None:
    return DeviceChange.objects.filter(
        bulk_change=bulk_change,
        iccid=device.iccid,
        status=DeviceChange.Status.AWAITING_CARRIER,
    ).first()


@pytest.mark.parametrize(
    ("status", "options", "code", "reason"),
    [
        pytest.param("Suspended", {"reason_code": "NP"}, "S", "NP", id="the-reason-code-given"),
        # any case: the request is validated to the canonical name
        pytest.param("SUSPENDED", None, "S", "CR", id="CR-by-default-status-in-any-case"),
        pytest.param("Cancelled", None, "C", "CAN", id="CAN-by-default-for-cancel"),
    ],
)
def test_a_change_is_patched_with_its_reason_code_and_todays_date_then_confirmed_by_a_read(
    world: TelegenceWorld,
    sqs_queue: Queue,
    inline_workers: None,
    status: str,
    options: dict[str, str] | None,
    code: str,
    reason: str,
) -> None:
    started = datetime.now(UTC)
    devices = world.devices(2)
    world.seed(devices)

    bulk_change = drain(approved(world.create(devices, status=status, options=options)))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    target = world.simulator.telegence_subscriber(devices[0].msisdn)["status"]
    for device in devices:
        line = world.simulator.telegence_subscriber(device.msisdn)
        [change] = line["changes"]
        assert (change["subscriberStatus"], change["reasonCode"]) == (code, reason)
        assert change["effectiveDate"] in today_utc_dates(started)
        done = device_change(bulk_change, device)
        assert done.carrier_request_id == ""  # AT&T answers no request id
        assert done.carrier_submitted_at is not None and done.carrier_status_at is not None
        assert done.confirm_deadline_at == done.carrier_submitted_at + timedelta(hours=4)
        assert descriptions(bulk_change, done) == [UPDATE, READ, OUTCOME]
        inventory = Device.objects.get(integration="TELEGENCE", iccid=device.iccid)
        assert inventory.status == DeviceStatus.objects.get(integration="TELEGENCE", code=target)
        assert inventory.msisdn == device.msisdn


def test_a_line_that_shows_the_change_after_a_few_reads_waits_without_a_retry_then_is_processed(
    world: TelegenceWorld,
    sqs_queue: Queue,
    inline_workers: None,
    one_read_per_confirm: None,
    settings: Any,
) -> None:
    settings.BULKCHANGE_CARRIER_TIME_SCALE = 0.001  # a waiting-schedule minute is 0.06 s
    world.simulator.set_telegence_completion(reads=3)
    [device] = world.devices(1)
    world.seed([device])
    bulk_change = world.create([device])

    waiting = run_until(bulk_change, lambda: awaiting(bulk_change, device), "awaiting carrier")

    assert waiting.attempts == 0
    assert waiting.carrier_submitted_at is not None and waiting.carrier_status_at is None
    deadline = waiting.confirm_deadline_at
    assert deadline is not None and waiting.next_attempt_at is not None
    assert waiting.next_attempt_at <= deadline
    assert world.carrier_status(device) == "Active"  # AT&T has not applied the order yet
    bulk_change = drain(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    done = device_change(bulk_change, device)
    assert (done.status, done.attempts, done.carrier_waits) == (
        DeviceChange.Status.PROCESSED,
        0,
        3,
    )
    assert world.calls("change_line", device.msisdn) == 1  # confirming never re-submits
    assert world.calls("read_line", device.msisdn) == 4
    assert descriptions(bulk_change, done) == [
        UPDATE,
        *[READ, WAITING] * 3,
        READ,
        OUTCOME,
    ]
    waits = BulkChangeLog.objects.filter(device_change=done, log_entry_description=WAITING)
    assert all(
        f"waiting for Telegence: line {device.msisdn} still shows Active" in row.response_text
        for row in waits
    )
    assert world.carrier_status(device) == world.inventory_status(device) == "Suspended"


def test_lines_never_confirmed_are_decided_by_a_read_at_the_four_hour_deadline(
    world: TelegenceWorld,
    sqs_queue: Queue,
    inline_workers: None,
    one_read_per_confirm: None,
    settings: Any,
) -> None:
    # Four hours are 2 s here; the waiting schedule's first check is at the deadline.
    settings.BULKCHANGE_CARRIER_TIME_SCALE = 2 / FOUR_HOURS
    settings.BULKCHANGE_WAITING_SCHEDULE_MINUTES = [240]
    world.simulator.set_telegence_completion(seconds="never")
    late, never = world.devices(2)
    world.seed([late, never])
    bulk_change = world.create([late, never])

    for device in (late, never):
        waiting = run_until(bulk_change, partial(awaiting, bulk_change, device), "waiting")
        assert waiting.attempts == 0
        assert waiting.next_attempt_at == waiting.confirm_deadline_at
    # AT&T applies one order late, after the last check before the deadline.
    world.simulator.apply_telegence_change(late.msisdn)
    bulk_change = drain(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    reconciled = device_change(bulk_change, late)
    assert reconciled.status == DeviceChange.Status.PROCESSED
    assert reconciled.attempts == 0
    assert reconciled.carrier_status_at is not None and reconciled.confirm_deadline_at
    assert reconciled.carrier_status_at >= reconciled.confirm_deadline_at
    assert world.inventory_status(late) == "Suspended"
    failed = device_change(bulk_change, never)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == (
        f"Telegence accepted the change but line {never.msisdn} still shows Active"
    )
    assert world.inventory_status(never) is None
    for device, final in ((late, reconciled), (never, failed)):
        assert world.calls("change_line", device.msisdn) == 1
        assert world.calls("read_line", device.msisdn) == 2
        assert descriptions(bulk_change, final) == [UPDATE, READ, WAITING, READ, OUTCOME]


@pytest.mark.parametrize(
    ("fault", "applied", "rows", "patches"),
    [
        # The PATCH reached AT&T and was applied; its answer timed out. The retry reads the
        # line, sees the target, and does not send the PATCH again.
        pytest.param({"kind": "timeout", "delay_ms": 700}, True, [READ, OUTCOME], 1, id="applied"),
        # The connection dropped before AT&T answered and nothing changed: the retry reads,
        # then sends the PATCH again, then confirms.
        pytest.param({"kind": "drop"}, False, [READ, UPDATE, READ, OUTCOME], 2, id="not-applied"),
    ],
)
def test_a_patch_whose_answer_was_lost_is_retried_only_after_reading_the_line(
    world: TelegenceWorld,
    sqs_queue: Queue,
    inline_workers: None,
    settings: Any,
    fault: dict[str, Any],
    applied: bool,
    rows: list[str],
    patches: int,
) -> None:
    settings.BULKCHANGE_HTTP_READ_TIMEOUT = 0.3
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.add_fault("telegence", "change_line", key=device.msisdn, **fault)

    bulk_change = drain(world.create([device]))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    done = device_change(bulk_change, device)
    assert (done.status, done.attempts) == (DeviceChange.Status.PROCESSED, 1)
    assert descriptions(bulk_change, done) == [UPDATE, RETRY, *rows]
    assert world.calls("change_line", device.msisdn) == patches
    line = world.simulator.telegence_subscriber(device.msisdn)
    assert len(line["changes"]) == 1  # applied once: a dropped PATCH changed nothing
    assert line["status"] == "Suspended"


def test_a_device_without_msisdn_fails_before_any_call(
    world: TelegenceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    with_msisdn, in_inventory = world.devices(2)
    [without] = world.devices(1, start=2)
    world.seed([with_msisdn, in_inventory])
    Device.objects.create(
        tenant=world.tenant,
        integration="TELEGENCE",
        iccid=in_inventory.iccid,
        msisdn=in_inventory.msisdn,
    )
    bulk_change = drain(
        world.create(
            [
                with_msisdn,
                DeviceRef(iccid=without.iccid),
                DeviceRef(iccid=in_inventory.iccid),  # the inventory knows its MSISDN
            ],
            ignore_current=False,
        )
    )

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    failed = device_change(bulk_change, without)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.last_error == (
        f"Telegence needs the subscriber number (MSISDN) for ICCID {without.iccid}"
    )
    assert descriptions(bulk_change, failed) == [OUTCOME]
    assert device_change(bulk_change, with_msisdn).status == DeviceChange.Status.PROCESSED
    assert device_change(bulk_change, in_inventory).status == DeviceChange.Status.PROCESSED
    assert world.calls(key="") == 0
    # one read to see the current status, one PATCH, one read to confirm
    assert world.simulator.calls()["telegence"] == {
        "read_line": {with_msisdn.msisdn: 2, in_inventory.msisdn: 2},
        "change_line": {with_msisdn.msisdn: 1, in_inventory.msisdn: 1},
    }
    assert world.carrier_status(in_inventory) == "Suspended"


def test_an_msisdn_in_another_format_is_sent_as_ten_digits(
    world: TelegenceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [device] = world.devices(1)
    world.seed([device])
    formatted = f"+1 {device.msisdn[:3]}-{device.msisdn[3:6]}-{device.msisdn[6:]}"

    bulk_change = drain(world.create([DeviceRef(iccid=device.iccid, msisdn=formatted)]))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert world.calls("change_line", device.msisdn) == 1
    assert world.carrier_status(device) == "Suspended"


def test_a_change_out_of_cancelled_ends_error_with_the_gateways_answer(
    world: TelegenceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [device] = world.devices(1)
    world.seed([device], status="Cancelled")

    bulk_change = drain(world.create([device], status="Active"))

    assert bulk_change.status == BulkChange.Status.ERROR
    failed = device_change(bulk_change, device)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == (
        "HTTP 404 from Telegence: unknown line, or a change the line does not allow (/service/) "
        "(id 306760c0-4c63-11f0-8b71-000000000001)"
    )
    row = BulkChangeLog.objects.get(device_change=failed, log_entry_description=UPDATE)
    assert row.response_status == 404 and row.has_errors
    assert world.calls("change_line", device.msisdn) == 1
    assert world.calls("read_line", device.msisdn) == 0
    assert world.carrier_status(device) == "Cancelled"
