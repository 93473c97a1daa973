"""Jasper bulk changes through the real pipeline: a real SQS endpoint (moto server), real HTTP to
the Jasper simulator, the real database and consumer, django-q2 in sync mode (inline_workers).

What the operator sees is the specification: device statuses, attempts, the audit rows and the
messages on failed devices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.utils import timezone

from bulkchanges.consumer import SqsConsumer
from bulkchanges.errors import ApplicationError
from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    Device,
    DeviceChange,
    DeviceStatus,
    IntegrationAuthentication,
    Tenant,
)
from bulkchanges.services import bulk_change_create, status_update_request_validate
from bulkchanges.types import DeviceRef
from integrations.simulators.control import SimulatorControl
from tests.conftest import Queue, descriptions, drain, iccids, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

USERNAME = "ops-api"
API_KEY = "jasper-secret-key-8c41e7"
ACCOUNT_LABEL = "Jasper account ops-api (Acme US)"
UPDATE = "Update Jasper device status"
READ = "Read Jasper device"
OUTCOME = "Device status change result"
RETRY = "Retry scheduled"


@dataclass
class JasperWorld:
    tenant: Tenant
    jasper: IntegrationAuthentication
    simulator: SimulatorControl


@pytest.fixture
def jasper_world(simulator: SimulatorControl, device_statuses: None) -> JasperWorld:
    """A tenant whose Jasper credentials point at the simulator (no rate limit on either side)."""
    tenant = Tenant.objects.create(name="Acme IoT")
    simulator.add_jasper_account(username=USERNAME, api_key=API_KEY, rate_limit=0)
    jasper = IntegrationAuthentication.objects.create(
        tenant=tenant,
        integration="JASPER",
        base_url=simulator.jasper_base_url,
        account="Acme US",
        username=USERNAME,
        secret=API_KEY,
        rate_limit=0,
        max_concurrency=4,
    )
    return JasperWorld(tenant, jasper, simulator)


def seed(world: JasperWorld, numbers: list[str], status: str = "ACTIVATED") -> None:
    world.simulator.seed_jasper_devices(
        username=USERNAME, devices=[{"iccid": iccid, "status": status} for iccid in numbers]
    )


def create_bulk_change(
    world: JasperWorld,
    numbers: list[str],
    *,
    status: str = "DEACTIVATED",
    ignore_current: bool = True,
) -> BulkChange:
    """A Jasper bulk change created through the services every entry point uses."""
    validated = status_update_request_validate(
        tenant=world.tenant,
        integration="JASPER",
        update_status=status,
        is_ignore_current_status=ignore_current,
    )
    bulk_change, _ = bulk_change_create(
        tenant=world.tenant,
        created_by="test",
        validated=validated,
        devices=[DeviceRef(iccid=iccid) for iccid in numbers],
    )
    return bulk_change


def device_change(bulk_change: BulkChange, iccid: str) -> DeviceChange:
    return DeviceChange.objects.get(bulk_change=bulk_change, iccid=iccid)


def inventory_status(iccid: str) -> str | None:
    device = Device.objects.filter(integration="JASPER", iccid=iccid).first()
    return device.status.code if device is not None and device.status is not None else None


# --- The common cases ------------------------------------------------------------------------


def test_mixed_bulk_change_ends_processed_with_errors_with_the_right_devices_and_rows(
    jasper_world: JasperWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    numbers = iccids(4)
    seed(jasper_world, numbers)
    unknown = iccids(1, start=9000)[0]
    retried = numbers[1]
    jasper_world.simulator.add_fault("jasper", "update_device", key=retried, status=503)

    bulk_change = drain(create_bulk_change(jasper_world, [*numbers, unknown]))

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    for iccid in numbers:
        done = device_change(bulk_change, iccid)
        assert done.status == DeviceChange.Status.PROCESSED
        assert done.attempts == (1 if iccid == retried else 0)
        assert done.carrier_status_at is not None
        assert jasper_world.simulator.jasper_device(iccid)["status"] == "DEACTIVATED"
        assert inventory_status(iccid) == "DEACTIVATED"
    failed = device_change(bulk_change, unknown)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == (
        "HTTP 404 from Jasper: Resource not found - Invalid ICCID (20000001)"
    )
    assert inventory_status(unknown) is None
    assert descriptions(bulk_change, device_change(bulk_change, retried)) == [
        UPDATE,
        RETRY,
        UPDATE,
        OUTCOME,
    ]
    assert descriptions(bulk_change, device_change(bulk_change, numbers[0])) == [UPDATE, OUTCOME]
    assert descriptions(bulk_change, failed) == [UPDATE, OUTCOME]
    retry_row = BulkChangeLog.objects.get(
        device_change=device_change(bulk_change, retried), log_entry_description=RETRY
    )
    assert retry_row.error_text.startswith("HTTP 503 from Jasper: Simulated fault: 503")
    assert descriptions(bulk_change).count("Bulk change completed") == 1
    assert jasper_world.simulator.call_count("jasper", "update_device", retried) == 2
    assert jasper_world.simulator.call_count("jasper", "update_device", numbers[0]) == 1
    assert jasper_world.simulator.call_count("jasper", "get_device") == 0


def test_429_with_retry_after_delays_the_retry_at_least_that_long(
    jasper_world: JasperWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid] = iccids(1)
    seed(jasper_world, [iccid])
    jasper_world.simulator.add_fault(
        "jasper", "update_device", key=iccid, status=429, retry_after=3
    )
    before = timezone.now()
    bulk_change = create_bulk_change(jasper_world, [iccid])
    consumer = SqsConsumer(wait_seconds=1)
    wait_for(
        lambda: (
            consumer.poll_once()
            or DeviceChange.objects.filter(
                bulk_change=bulk_change, status=DeviceChange.Status.RETRY_SCHEDULED
            ).exists()
        ),
        timeout=20,
        interval=0,
        message="retry scheduled",
    )

    scheduled = device_change(bulk_change, iccid)
    assert scheduled.next_attempt_at is not None
    assert scheduled.next_attempt_at >= before + timedelta(seconds=3)
    assert scheduled.next_attempt_at <= timezone.now() + timedelta(seconds=3.5)
    assert scheduled.last_error == "HTTP 429 from Jasper: Rate Limit Exceeded (40000029)"

    bulk_change = drain(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    first, second = jasper_world.simulator.requests(carrier="jasper", op="update_device")
    assert (first["status"], second["status"]) == (429, 200)
    assert second["time"] - first["time"] >= 3
    assert second["time"] >= scheduled.next_attempt_at.timestamp()
    assert device_change(bulk_change, iccid).attempts == 1


def test_a_rejected_api_key_fails_every_device_naming_the_account_never_the_key(
    jasper_world: JasperWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    numbers = iccids(2)
    seed(jasper_world, numbers)
    wrong_key = "jasper-wrong-key-0d5a93"
    jasper_world.jasper.secret = wrong_key
    jasper_world.jasper.save()

    bulk_change = drain(create_bulk_change(jasper_world, numbers))

    assert bulk_change.status == BulkChange.Status.ERROR
    for iccid in numbers:
        failed = device_change(bulk_change, iccid)
        assert failed.status == DeviceChange.Status.ERROR
        assert failed.attempts == 0
        assert failed.last_error == (
            f"Jasper rejected the credentials of {ACCOUNT_LABEL} "
            "(HTTP 401 from Jasper: Invalid credentials (10000001))"
        )
        assert descriptions(bulk_change, failed) == [UPDATE, OUTCOME]
        assert jasper_world.simulator.jasper_device(iccid)["status"] == "ACTIVATED"
        assert jasper_world.simulator.call_count("jasper", "update_device", iccid) == 1
    rows = BulkChangeLog.objects.filter(bulk_change=bulk_change)
    assert rows.count() == 5  # a call and an outcome per device, and the completion
    for row in rows:
        for text in (
            row.log_entry_description,
            row.request_text,
            row.response_text,
            row.error_text,
            row.process_by,
            row.request_id,
        ):
            assert wrong_key not in text
            assert API_KEY not in text
    for failed in DeviceChange.objects.filter(bulk_change=bulk_change):
        assert wrong_key not in failed.last_error
        assert wrong_key not in str(failed.change_request)


# --- Jasper's own cases ----------------------------------------------------------------------


def test_a_wrong_iccid_echo_fails_that_device_permanently_naming_both_iccids(
    jasper_world: JasperWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    echoed, fine = iccids(2)
    seed(jasper_world, [echoed, fine])
    stranger = "89148000009999999999"
    jasper_world.simulator.jasper_wrong_echo(iccid=echoed, echo=stranger)

    bulk_change = drain(create_bulk_change(jasper_world, [echoed, fine]))

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    failed = device_change(bulk_change, echoed)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == (
        f"HTTP 200 from Jasper: the answer echoed ICCID {stranger}, not {echoed}; "
        "the status change is not confirmed"
    )
    assert failed.carrier_status_at is None
    assert inventory_status(echoed) is None
    row = BulkChangeLog.objects.get(device_change=failed, log_entry_description=UPDATE)
    assert row.response_status == 200 and row.has_errors
    assert stranger in row.response_text and echoed in row.error_text
    assert jasper_world.simulator.call_count("jasper", "update_device", echoed) == 1
    assert device_change(bulk_change, fine).status == DeviceChange.Status.PROCESSED


def test_a_transition_jasper_refuses_ends_error_with_its_message(
    jasper_world: JasperWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    retired, activated = iccids(2)
    seed(jasper_world, [retired], status="RETIRED")
    seed(jasper_world, [activated], status="DEACTIVATED")

    bulk_change = drain(create_bulk_change(jasper_world, [retired, activated], status="ACTIVATED"))

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    failed = device_change(bulk_change, retired)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == "HTTP 400 from Jasper: Invalid status change (10000024)"
    assert descriptions(bulk_change, failed) == [UPDATE, OUTCOME]
    assert jasper_world.simulator.jasper_device(retired)["status"] == "RETIRED"
    assert jasper_world.simulator.call_count("jasper", "update_device", retired) == 1
    assert device_change(bulk_change, activated).status == DeviceChange.Status.PROCESSED
    assert inventory_status(activated) == "ACTIVATED"


def test_without_ignore_current_status_an_unknown_device_is_read_and_skipped_when_already_there(
    jasper_world: JasperWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    already, changing = iccids(2)
    seed(jasper_world, [already], status="DEACTIVATED")
    seed(jasper_world, [changing], status="ACTIVATED")

    bulk_change = drain(create_bulk_change(jasper_world, [already, changing], ignore_current=False))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    skipped = device_change(bulk_change, already)
    assert skipped.status == DeviceChange.Status.SKIPPED
    assert descriptions(bulk_change, skipped) == [READ, OUTCOME]
    assert jasper_world.simulator.call_count("jasper", "get_device", already) == 1
    assert jasper_world.simulator.call_count("jasper", "update_device", already) == 0
    changed = device_change(bulk_change, changing)
    assert changed.status == DeviceChange.Status.PROCESSED
    assert descriptions(bulk_change, changed) == [READ, UPDATE, OUTCOME]
    assert jasper_world.simulator.jasper_device(changing)["status"] == "DEACTIVATED"


def test_without_ignore_current_status_a_known_device_is_judged_by_our_inventory(
    jasper_world: JasperWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid] = iccids(1)
    seed(jasper_world, [iccid], status="ACTIVATED")
    Device.objects.create(
        tenant=jasper_world.tenant,
        integration="JASPER",
        iccid=iccid,
        status=DeviceStatus.objects.get(integration="JASPER", code="DEACTIVATED"),
    )

    bulk_change = drain(create_bulk_change(jasper_world, [iccid], ignore_current=False))

    assert device_change(bulk_change, iccid).status == DeviceChange.Status.SKIPPED
    assert jasper_world.simulator.call_count("jasper") == 0


def test_a_device_jasper_reports_purged_is_not_skipped_and_its_refusal_is_reported(
    jasper_world: JasperWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid] = iccids(1)
    seed(jasper_world, [iccid], status="PURGED")

    bulk_change = drain(create_bulk_change(jasper_world, [iccid], ignore_current=False))

    failed = device_change(bulk_change, iccid)
    assert failed.status == DeviceChange.Status.ERROR
    assert descriptions(bulk_change, failed) == [READ, UPDATE, OUTCOME]
    assert "Invalid status change" in failed.last_error


@pytest.mark.parametrize("status", ["PURGED", "REPLACED", "SUSPENDED"])
def test_a_status_jasper_cannot_set_is_refused_at_creation_with_the_allowed_values(
    jasper_world: JasperWorld, status: str
) -> None:
    with pytest.raises(ApplicationError) as raised:
        create_bulk_change(jasper_world, iccids(1), status=status)

    assert raised.value.fields["update_status"] == [
        f"Jasper cannot set status {status!r}; allowed: ACTIVATED, DEACTIVATED, "
        "ACTIVATION_READY, TEST_READY, INVENTORY, RETIRED"
    ]
    assert not BulkChange.objects.exists()


def test_carrier_options_are_refused_at_creation(jasper_world: JasperWorld) -> None:
    with pytest.raises(ApplicationError) as raised:
        status_update_request_validate(
            tenant=jasper_world.tenant,
            integration="JASPER",
            update_status="DEACTIVATED",
            options={"reason_code": "FF"},
        )

    assert raised.value.fields["options"] == ["Jasper takes no reason_code; leave it empty"]
