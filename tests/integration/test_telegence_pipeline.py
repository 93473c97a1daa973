"""Telegence bulk changes through the real pipeline: a real SQS endpoint (moto server), real HTTP
to the Telegence simulator, the real database and consumer, django-q2 in sync mode. The cases
every carrier shares are in test_carrier_pipeline.py; these are Telegence's own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bulkchanges.models import BulkChange, BulkChangeLog, Device, DeviceChange, DeviceStatus
from bulkchanges.types import DeviceRef
from integrations.simulators.control import SimulatorControl
from tests.conftest import Queue, descriptions, drain
from tests.fixtures.pipeline import OUTCOME, TelegenceWorld, device_change

pytestmark = pytest.mark.django_db(transaction=True)

UPDATE = TelegenceWorld.update_row


@pytest.fixture
def world(simulator: SimulatorControl, device_statuses: None) -> TelegenceWorld:
    return TelegenceWorld.arrange(simulator)


def today_utc_dates(started: datetime) -> set[str]:
    return {started.date().isoformat(), datetime.now(UTC).date().isoformat()}


@pytest.mark.parametrize(
    ("status", "options", "reason"),
    [
        pytest.param("Suspended", {"reason_code": "NP"}, "NP", id="the-reason-code-given"),
        # any case: the request is validated to the canonical name
        pytest.param("SUSPENDED", None, "CR", id="CR-by-default-status-in-any-case"),
    ],
)
def test_a_change_is_sent_with_its_reason_code_and_todays_date_keeping_the_transaction_id(
    world: TelegenceWorld,
    sqs_queue: Queue,
    inline_workers: None,
    status: str,
    options: dict[str, str] | None,
    reason: str,
) -> None:
    started = datetime.now(UTC)
    devices = world.devices(2)
    world.seed(devices)

    bulk_change = drain(world.create(devices, status=status, options=options))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    for device in devices:
        subscriber = world.simulator.telegence_subscriber(device.msisdn)
        assert subscriber["serviceStatus"] == "Suspended"
        [change] = subscriber["changes"]
        assert device_change(bulk_change, device).carrier_request_id == change["transactionId"]
        assert change["reasonCode"] == reason
        assert change["effectiveDate"] in today_utc_dates(started)
        inventory = Device.objects.get(integration="TELEGENCE", iccid=device.iccid)
        assert inventory.status == DeviceStatus.objects.get(
            integration="TELEGENCE", code="Suspended"
        )
        assert inventory.msisdn == device.msisdn


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
    assert world.simulator.calls()["telegence"] == {
        "get_subscriber": {with_msisdn.msisdn: 1, in_inventory.msisdn: 1},
        "update_status": {with_msisdn.msisdn: 1, in_inventory.msisdn: 1},
    }
    assert world.carrier_status(in_inventory) == "Suspended"


def test_a_change_out_of_cancelled_ends_error_with_the_carrier_message(
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
        f"HTTP 409 from Telegence: Subscriber {device.msisdn} is Cancelled; its status cannot "
        "change (STATUS_CHANGE_NOT_ALLOWED)"
    )
    row = BulkChangeLog.objects.get(device_change=failed, log_entry_description=UPDATE)
    assert row.response_status == 409 and row.has_errors
    assert world.calls("update_status", device.msisdn) == 1
    assert world.carrier_status(device) == "Cancelled"
