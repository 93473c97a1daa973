"""Telegence bulk changes through the real pipeline: a real SQS endpoint (moto server), real HTTP
to the Telegence simulator, the real database and consumer, django-q2 in sync mode."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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

APP_ID = "pondops-app"
APP_SECRET = "tg-pipeline-secret-4d7e"
BILLING_ACCOUNT = "287654321"
UPDATE = "Update Telegence subscriber status"
READ = "Read Telegence subscriber"
OUTCOME = "Device status change result"
RETRY = "Retry scheduled"


def msisdns(count: int, *, start: int = 0) -> list[str]:
    return [f"21455{start + n:05d}" for n in range(count)]


@dataclass
class TelegenceWorld:
    tenant: Tenant
    telegence: IntegrationAuthentication
    simulator: SimulatorControl

    def seed(self, pairs: list[tuple[str, str]], status: str = "Active") -> None:
        self.simulator.seed_telegence_subscribers(
            app_id=APP_ID,
            subscribers=[
                {"msisdn": msisdn, "iccid": iccid, "status": status} for iccid, msisdn in pairs
            ],
        )

    def bulk_change(
        self,
        devices: list[DeviceRef],
        *,
        status: str = "Suspended",
        ignore_current: bool = True,
        options: dict[str, str] | None = None,
    ) -> BulkChange:
        """Created through the same services every entry point uses."""
        validated = status_update_request_validate(
            tenant=self.tenant,
            integration="TELEGENCE",
            update_status=status,
            is_ignore_current_status=ignore_current,
            options=options,
        )
        bulk_change, _ = bulk_change_create(
            tenant=self.tenant, created_by="test", validated=validated, devices=devices
        )
        return bulk_change


@pytest.fixture
def telegence_world(simulator: SimulatorControl, device_statuses: None) -> TelegenceWorld:
    """A tenant with Telegence credentials pointing at the simulator."""
    tenant = Tenant.objects.create(name="Acme Mobility")
    simulator.add_telegence_account(
        app_id=APP_ID, app_secret=APP_SECRET, billing_account=BILLING_ACCOUNT, rate_limit=0
    )
    telegence = IntegrationAuthentication.objects.create(
        tenant=tenant,
        integration="TELEGENCE",
        base_url=simulator.telegence_base_url,
        account=BILLING_ACCOUNT,
        username=APP_ID,
        secret=APP_SECRET,
        rate_limit=0,
        max_concurrency=4,
    )
    return TelegenceWorld(tenant, telegence, simulator)


def device_change(bulk_change: BulkChange, iccid: str) -> DeviceChange:
    return DeviceChange.objects.get(bulk_change=bulk_change, iccid=iccid)


def today_utc_dates(started: datetime) -> set[str]:
    return {started.date().isoformat(), datetime.now(UTC).date().isoformat()}


def test_mixed_bulk_change_ends_processed_with_errors_after_a_retry(
    telegence_world: TelegenceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    started = datetime.now(UTC)
    numbers, lines = iccids(4), msisdns(4)
    unknown_iccid, unknown_msisdn = numbers[3], lines[3]
    telegence_world.seed(list(zip(numbers[:3], lines[:3], strict=True)))
    world = telegence_world
    world.simulator.add_fault("telegence", "update_status", key=lines[1], status=503, times=2)
    bulk_change = drain(
        world.bulk_change(
            [DeviceRef(iccid=i, msisdn=m) for i, m in zip(numbers, lines, strict=True)],
            options={"reason_code": "NP"},
        )
    )

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    statuses = {
        d.iccid: (d.status, d.attempts)
        for d in DeviceChange.objects.filter(bulk_change=bulk_change)
    }
    assert statuses == {
        numbers[0]: (DeviceChange.Status.PROCESSED, 0),
        numbers[1]: (DeviceChange.Status.PROCESSED, 2),
        numbers[2]: (DeviceChange.Status.PROCESSED, 0),
        unknown_iccid: (DeviceChange.Status.ERROR, 0),
    }
    failed = device_change(bulk_change, unknown_iccid)
    assert failed.last_error == "HTTP 404 from Telegence: Subscriber not found (SUB_404)"
    assert descriptions(bulk_change, failed) == [UPDATE, OUTCOME]
    retried = device_change(bulk_change, numbers[1])
    assert descriptions(bulk_change, retried) == [UPDATE, RETRY, UPDATE, RETRY, UPDATE, OUTCOME]
    assert retried.last_error == ""
    retry_errors = BulkChangeLog.objects.filter(
        device_change=retried, log_entry_description=RETRY
    ).values_list("error_text", flat=True)
    fault = "HTTP 503 from Telegence: Simulated fault: 503 Service Unavailable"
    assert list(retry_errors) == [f"{fault} (SERVICE_UNAVAILABLE)"] * 2
    for iccid, msisdn in zip(numbers[:3], lines[:3], strict=True):
        done = device_change(bulk_change, iccid)
        assert done.carrier_status_at is not None
        subscriber = world.simulator.telegence_subscriber(msisdn)
        assert subscriber["serviceStatus"] == "Suspended"
        [change] = subscriber["changes"]
        assert done.carrier_request_id == change["transactionId"]
        assert change["reasonCode"] == "NP"
        assert change["effectiveDate"] in today_utc_dates(started)
        device = Device.objects.get(integration="TELEGENCE", iccid=iccid)
        assert device.status is not None and device.status.code == "Suspended"
        assert device.msisdn == msisdn
    assert world.simulator.call_count("telegence", "update_status", lines[1]) == 3
    assert world.simulator.call_count("telegence", "update_status", lines[0]) == 1
    assert world.simulator.call_count("telegence", "update_status", unknown_msisdn) == 1
    assert world.simulator.call_count("telegence", "get_subscriber") == 0
    assert not Device.objects.filter(iccid=unknown_iccid).exists()
    assert descriptions(bulk_change).count("Bulk change completed") == 1


def test_429_with_retry_after_delays_the_retry_at_least_that_long(
    telegence_world: TelegenceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid], [msisdn] = iccids(1), msisdns(1)
    world = telegence_world
    world.seed([(iccid, msisdn)])
    world.simulator.add_fault(
        "telegence", "update_status", key=msisdn, status=429, retry_after="120"
    )
    before = timezone.now()
    bulk_change = world.bulk_change([DeviceRef(iccid=iccid, msisdn=msisdn)])
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
    assert scheduled.next_attempt_at >= before + timedelta(seconds=120)
    assert scheduled.next_attempt_at <= timezone.now() + timedelta(seconds=121)
    assert scheduled.last_error.startswith("HTTP 429 from Telegence:")
    assert "RATE_LIMIT_EXCEEDED" in scheduled.last_error
    assert descriptions(bulk_change, scheduled) == [UPDATE, RETRY]
    consumer.poll_once()  # the retry message is delayed: nothing is due yet
    assert world.simulator.call_count("telegence", "update_status", msisdn) == 1
    assert world.simulator.telegence_subscriber(msisdn)["serviceStatus"] == "Active"


def test_a_rejected_secret_fails_the_device_naming_the_account_never_the_secret(
    telegence_world: TelegenceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    wrong_secret = "tg-wrong-secret-8c1f0a"
    world = telegence_world
    world.telegence.secret = wrong_secret
    world.telegence.save()
    numbers, lines = iccids(2), msisdns(2)
    world.seed(list(zip(numbers, lines, strict=True)))
    bulk_change = drain(
        world.bulk_change(
            [DeviceRef(iccid=i, msisdn=m) for i, m in zip(numbers, lines, strict=True)]
        )
    )

    assert bulk_change.status == BulkChange.Status.ERROR
    for failed in DeviceChange.objects.filter(bulk_change=bulk_change):
        assert failed.status == DeviceChange.Status.ERROR
        assert failed.attempts == 0
        assert failed.last_error == (
            "Telegence rejected the app id and secret for Telegence billing account 287654321 "
            "(HTTP 401 from Telegence: Invalid app-id or app-secret for app pondops-app "
            "(UNAUTHORIZED))"
        )
        assert descriptions(bulk_change, failed) == [UPDATE, OUTCOME]
    texts = list(
        DeviceChange.objects.filter(bulk_change=bulk_change).values_list("last_error", flat=True)
    )
    for row in BulkChangeLog.objects.filter(bulk_change=bulk_change):
        texts += [
            row.log_entry_description,
            row.request_text,
            row.response_text,
            row.error_text,
            row.process_by,
            row.request_id,
        ]
    joined = "\n".join(texts)
    assert wrong_secret not in joined
    assert APP_SECRET not in joined
    assert "app-secret: [REDACTED]" in joined
    for msisdn in lines:
        assert world.simulator.call_count("telegence", "update_status", msisdn) == 1
        assert world.simulator.telegence_subscriber(msisdn)["serviceStatus"] == "Active"


def test_a_device_without_msisdn_fails_before_any_call(
    telegence_world: TelegenceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    world = telegence_world
    with_msisdn, without, in_inventory = iccids(3)
    line, inventory_line = msisdns(2)
    world.seed([(with_msisdn, line), (in_inventory, inventory_line)])
    Device.objects.create(
        tenant=world.tenant, integration="TELEGENCE", iccid=in_inventory, msisdn=inventory_line
    )
    bulk_change = drain(
        world.bulk_change(
            [
                DeviceRef(iccid=with_msisdn, msisdn=line),
                DeviceRef(iccid=without),
                DeviceRef(iccid=in_inventory),  # the inventory knows its MSISDN
            ],
            ignore_current=False,
        )
    )

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    failed = device_change(bulk_change, without)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.last_error == (
        f"Telegence needs the subscriber number (MSISDN) for ICCID {without}"
    )
    assert descriptions(bulk_change, failed) == [OUTCOME]
    assert device_change(bulk_change, with_msisdn).status == DeviceChange.Status.PROCESSED
    assert device_change(bulk_change, in_inventory).status == DeviceChange.Status.PROCESSED
    assert world.simulator.call_count("telegence", key="") == 0
    assert world.simulator.calls()["telegence"] == {
        "get_subscriber": {line: 1, inventory_line: 1},
        "update_status": {line: 1, inventory_line: 1},
    }
    assert world.simulator.telegence_subscriber(inventory_line)["serviceStatus"] == "Suspended"


def test_a_change_out_of_cancelled_ends_error_with_the_carrier_message(
    telegence_world: TelegenceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    world = telegence_world
    [iccid], [msisdn] = iccids(1), msisdns(1)
    world.seed([(iccid, msisdn)], status="Cancelled")
    bulk_change = drain(world.bulk_change([DeviceRef(iccid=iccid, msisdn=msisdn)], status="Active"))

    assert bulk_change.status == BulkChange.Status.ERROR
    failed = device_change(bulk_change, iccid)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == (
        f"HTTP 409 from Telegence: Subscriber {msisdn} is Cancelled; its status cannot change "
        "(STATUS_CHANGE_NOT_ALLOWED)"
    )
    row = BulkChangeLog.objects.get(device_change=failed, log_entry_description=UPDATE)
    assert row.response_status == 409 and row.has_errors
    assert world.simulator.call_count("telegence", "update_status", msisdn) == 1
    assert world.simulator.telegence_subscriber(msisdn)["serviceStatus"] == "Cancelled"


def test_ignore_current_status_false_reads_the_line_and_skips_those_already_there(
    telegence_world: TelegenceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    started = datetime.now(UTC)
    world = telegence_world
    suspended, active = iccids(2)
    suspended_line, active_line = msisdns(2)
    world.seed([(suspended, suspended_line)], status="Suspended")
    world.seed([(active, active_line)])
    bulk_change = drain(
        world.bulk_change(
            [
                DeviceRef(iccid=suspended, msisdn=suspended_line),
                DeviceRef(iccid=active, msisdn=active_line),
            ],
            status="SUSPENDED",  # any case: the request is validated to the canonical name
            ignore_current=False,
        )
    )

    assert bulk_change.status == BulkChange.Status.PROCESSED
    skipped = device_change(bulk_change, suspended)
    assert skipped.status == DeviceChange.Status.SKIPPED
    assert descriptions(bulk_change, skipped) == [READ, OUTCOME]
    changed = device_change(bulk_change, active)
    assert changed.status == DeviceChange.Status.PROCESSED
    assert descriptions(bulk_change, changed) == [READ, UPDATE, OUTCOME]
    assert world.simulator.call_count("telegence", "update_status", suspended_line) == 0
    [change] = world.simulator.telegence_subscriber(active_line)["changes"]
    assert change["reasonCode"] == "CR"
    assert change["effectiveDate"] in today_utc_dates(started)
    assert DeviceStatus.objects.get(integration="TELEGENCE", code="Suspended").pk == (
        Device.objects.get(iccid=active).status_id
    )


@pytest.mark.parametrize(
    ("status", "options", "field", "message"),
    [
        ("Deactivated", {}, "update_status", "Telegence cannot set status 'Deactivated'"),
        ("Suspended", {"reason_code": "C R"}, "options", "is not a Telegence reason code"),
    ],
)
def test_a_request_telegence_cannot_carry_out_is_refused_at_creation(
    telegence_world: TelegenceWorld,
    status: str,
    options: dict[str, str],
    field: str,
    message: str,
) -> None:
    with pytest.raises(ApplicationError) as raised:
        telegence_world.bulk_change(
            [DeviceRef(iccid=iccids(1)[0], msisdn="2145550000")], status=status, options=options
        )

    assert message in " ".join(raised.value.fields[field])
    assert not BulkChange.objects.exists()
