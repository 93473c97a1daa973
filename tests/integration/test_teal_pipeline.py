"""The Teal pipeline in one process: a real SQS endpoint (moto server), real HTTP to the Teal
simulator, the real database and the real consumer, with django-q2 in sync mode.

Teal is asynchronous and named by our own requestId: these tests pin that the id is stored
before the submit and reused on a resubmission, that a confirm that runs out of time is retried
by confirming again (never by re-submitting), and that Teal's per-device errors fail only that
device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from bulkchanges.consumer import SqsConsumer
from bulkchanges.errors import ApplicationError
from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    Device,
    DeviceChange,
    IntegrationAuthentication,
    Tenant,
)
from bulkchanges.services import bulk_change_create, status_update_request_validate
from bulkchanges.types import DeviceRef
from integrations.simulators.control import SimulatorControl
from tests.conftest import Queue, descriptions, drain, iccids, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

API_KEY = "teal-key-acme"
API_SECRET = "teal-secret-5d1e90"
LABEL = "Acme fleet"

CHANGE = "Change Teal eSIM state"
POLL = "Read Teal operation"
READ = "Read Teal eSIM"
RESULT = "Device status change result"
RETRY = "Retry scheduled"


def eids(count: int, *, start: int = 0) -> list[str]:
    return [f"890490320000000000000000{start + n:08d}" for n in range(count)]


@dataclass
class TealWorld:
    tenant: Tenant
    teal: IntegrationAuthentication
    simulator: SimulatorControl

    def seed(self, devices: list[DeviceRef], status: str = "stopped") -> None:
        self.simulator.seed_teal_esims(
            api_key=API_KEY,
            esims=[{"eid": d.eid, "iccid": d.iccid, "status": status} for d in devices],
        )

    def create(
        self, devices: list[DeviceRef], *, status: str = "enabled", ignore_current: bool = True
    ) -> BulkChange:
        """A bulk change created through the same services every entry point uses."""
        validated = status_update_request_validate(
            tenant=self.tenant,
            integration="TEAL",
            update_status=status,
            is_ignore_current_status=ignore_current,
        )
        bulk_change, _ = bulk_change_create(
            tenant=self.tenant, created_by="test", validated=validated, devices=devices
        )
        return bulk_change


@pytest.fixture
def teal_world(simulator: SimulatorControl, device_statuses: None) -> TealWorld:
    """A tenant with Teal credentials pointing at the simulator (no rate limit on either side)."""
    tenant = Tenant.objects.create(name="Acme IoT")
    simulator.add_teal_account(
        api_key=API_KEY, api_secret=API_SECRET, label=LABEL, calls_per_minute=0
    )
    teal = IntegrationAuthentication.objects.create(
        tenant=tenant,
        integration="TEAL",
        base_url=simulator.teal_base_url,
        account=LABEL,
        username=API_KEY,
        secret=API_SECRET,
        rate_limit=0,
        max_concurrency=4,
    )
    return TealWorld(tenant, teal, simulator)


def devices(count: int, *, start: int = 0) -> list[DeviceRef]:
    return [
        DeviceRef(iccid=iccid, eid=eid)
        for iccid, eid in zip(iccids(count, start=start), eids(count, start=start), strict=True)
    ]


def device_change(bulk_change: BulkChange, device: DeviceRef) -> DeviceChange:
    return DeviceChange.objects.get(bulk_change=bulk_change, iccid=device.iccid)


def submitted_request_ids(simulator: SimulatorControl, op: str, eid: str) -> list[str]:
    """The requestId of every submission the simulator received for ``eid`` (faulted too)."""
    return [
        parse_qs(urlsplit(entry["path"]).query, keep_blank_values=True)["requestId"][0]
        for entry in simulator.requests(carrier="teal", op=op, key=eid)
    ]


def run_until_retry_scheduled(bulk_change: BulkChange) -> DeviceChange:
    """Poll the queue (workers run inline) until a device of the bulk change awaits a retry."""
    consumer = SqsConsumer(wait_seconds=1)

    def retry_scheduled() -> DeviceChange | None:
        consumer.poll_once()
        return DeviceChange.objects.filter(
            bulk_change=bulk_change, status=DeviceChange.Status.RETRY_SCHEDULED
        ).first()

    found: DeviceChange = wait_for(
        retry_scheduled, timeout=30, interval=0, message="retry scheduled"
    )
    return found


def test_mixed_bulk_change_ends_processed_with_errors_with_the_right_statuses_and_audit(
    teal_world: TealWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    known = devices(4)
    unknown = devices(1, start=9000)[0]
    flaky = known[1]
    teal_world.seed(known, status="stopped")
    teal_world.simulator.add_fault("teal", "enable", key=flaky.eid, status=503, times=1)

    bulk_change = drain(teal_world.create([*known, unknown]))

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    for device in known:
        change = device_change(bulk_change, device)
        assert change.status == DeviceChange.Status.PROCESSED
        assert change.attempts == (1 if device is flaky else 0)
        assert change.carrier_request_id and change.carrier_submitted_at
        assert change.carrier_status_at
        assert teal_world.simulator.teal_esim(device.eid)["status"] == "online"
    assert (
        Device.objects.filter(
            iccid__in=[d.iccid for d in known], integration="TEAL", status__code="online"
        ).count()
        == 4
    )
    failed = device_change(bulk_change, unknown)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == (
        f"HTTP 404 from Teal: eSIM {unknown.eid} not found (ESIM_NOT_FOUND)"
    )
    assert descriptions(bulk_change, failed) == [CHANGE, RESULT]
    retried = device_change(bulk_change, flaky)
    assert descriptions(bulk_change, retried) == [CHANGE, RETRY, CHANGE, POLL, RESULT]
    assert descriptions(bulk_change, device_change(bulk_change, known[0])) == [
        CHANGE,
        POLL,
        RESULT,
    ]
    assert descriptions(bulk_change).count("Bulk change completed") == 1
    assert teal_world.simulator.call_count("teal", "enable", flaky.eid) == 2
    assert teal_world.simulator.call_count("teal", "enable", known[0].eid) == 1


def test_a_transient_submit_failure_is_resubmitted_with_the_same_request_id(
    teal_world: TealWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [device] = devices(1)
    teal_world.seed([device])
    teal_world.simulator.add_fault("teal", "enable", key=device.eid, status=503, times=1)

    bulk_change = drain(teal_world.create([device]))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    change = device_change(bulk_change, device)
    seen = submitted_request_ids(teal_world.simulator, "enable", device.eid)
    assert seen == [change.carrier_request_id] * 2
    [operation] = teal_world.simulator.teal_operations()
    assert operation["requestId"] == change.carrier_request_id
    assert operation["submissions"] == 1  # the 503 was answered before Teal saw it
    assert change.attempts == 1


def test_a_confirm_past_the_budget_is_retried_by_confirming_the_stored_request_id(
    teal_world: TealWorld, sqs_queue: Queue, inline_workers: None, settings: Any
) -> None:
    settings.BULKCHANGE_CONFIRM_SECONDS = 1
    [device] = devices(1)
    teal_world.seed([device], status="online")
    teal_world.simulator.configure_teal(completion_seconds="never")
    bulk_change = teal_world.create([device], status="disabled")

    waiting = run_until_retry_scheduled(bulk_change)

    assert waiting.carrier_request_id and waiting.carrier_submitted_at
    assert waiting.carrier_status_at is None
    assert waiting.last_error == (
        f"Teal request {waiting.carrier_request_id} still running (PROCESSING) after 1 s; "
        "the retry confirms it again"
    )
    polls_before_retry = teal_world.simulator.call_count(
        "teal", "operation", waiting.carrier_request_id
    )
    assert polls_before_retry >= 2

    teal_world.simulator.configure_teal(completion_seconds=0)
    bulk_change = drain(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    change = device_change(bulk_change, device)
    assert change.attempts == 1
    assert change.carrier_request_id == waiting.carrier_request_id
    assert teal_world.simulator.call_count("teal", "disable", device.eid) == 1
    assert (
        teal_world.simulator.call_count("teal", "operation", change.carrier_request_id)
        == polls_before_retry + 1
    )
    assert teal_world.simulator.teal_esim(device.eid)["status"] == "stopped"
    status = Device.objects.get(iccid=device.iccid, integration="TEAL").status
    assert status is not None and status.code == "stopped"
    rows = descriptions(bulk_change, change)
    assert rows[0] == CHANGE
    assert rows[-3:] == [RETRY, POLL, RESULT]
    assert set(rows[1:-3]) == {POLL}


def test_a_per_entry_error_from_teal_fails_only_that_device(
    teal_world: TealWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    good, locked = devices(2)
    teal_world.seed([good, locked])
    teal_world.simulator.set_teal_errors(locked.eid, entry_error="Profile is locked by the MNO")

    bulk_change = drain(teal_world.create([good, locked]))

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    failed = device_change(bulk_change, locked)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert (
        failed.last_error == f"Teal could not enable EID {locked.eid}: Profile is locked by the MNO"
    )
    assert descriptions(bulk_change, failed) == [CHANGE, POLL, RESULT]
    assert teal_world.simulator.teal_esim(locked.eid)["status"] == "stopped"
    assert device_change(bulk_change, good).status == DeviceChange.Status.PROCESSED
    assert teal_world.simulator.teal_esim(good.eid)["status"] == "online"


def test_a_device_without_an_eid_fails_before_any_call(
    teal_world: TealWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    with_eid = devices(1)[0]
    [iccid] = iccids(1, start=500)
    without_eid = DeviceRef(iccid=iccid)
    teal_world.seed([with_eid])

    bulk_change = drain(teal_world.create([with_eid, without_eid], ignore_current=False))

    failed = device_change(bulk_change, without_eid)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.last_error == f"Teal needs the EID for ICCID {iccid}"
    assert failed.attempts == 0
    assert descriptions(bulk_change, failed) == [RESULT]
    processed = device_change(bulk_change, with_eid)
    assert processed.status == DeviceChange.Status.PROCESSED
    simulator = teal_world.simulator
    calls_for_the_device_with_an_eid = (
        simulator.call_count("teal", "read_esim", with_eid.eid)
        + simulator.call_count("teal", "enable", with_eid.eid)
        + simulator.call_count("teal", "operation", processed.carrier_request_id)
    )
    assert simulator.call_count("teal") == calls_for_the_device_with_an_eid == 3
    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS


def test_429_with_retry_after_delays_the_retry_at_least_that_long(
    teal_world: TealWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [device] = devices(1)
    teal_world.seed([device])
    teal_world.simulator.add_fault("teal", "enable", key=device.eid, status=429, retry_after=45)
    bulk_change = teal_world.create([device])

    waiting = run_until_retry_scheduled(bulk_change)

    assert waiting.next_attempt_at is not None
    delay = (waiting.next_attempt_at - timezone.now()).total_seconds()
    assert 40 < delay <= 45
    assert (
        waiting.last_error
        == "HTTP 429 from Teal: Simulated fault: 429 Too Many Requests (GENERIC_ERROR)"
    )
    assert waiting.carrier_request_id  # kept for the resubmission
    assert descriptions(bulk_change, waiting) == [CHANGE, RETRY]
    assert teal_world.simulator.call_count("teal", "enable", device.eid) == 1


def test_a_rejected_secret_fails_the_device_naming_the_account_never_the_secret(
    teal_world: TealWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    wrong_secret = "teal-wrong-secret-77aa"
    teal_world.teal.secret = wrong_secret
    teal_world.teal.save()
    [device] = devices(1)
    teal_world.seed([device])

    bulk_change = drain(teal_world.create([device]))

    assert bulk_change.status == BulkChange.Status.ERROR
    failed = device_change(bulk_change, device)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == (
        "Teal rejected the ApiKey/ApiSecret of Teal account Acme fleet "
        "(HTTP 401 from Teal: Invalid ApiKey or ApiSecret (UNAUTHORIZED))"
    )
    assert descriptions(bulk_change, failed) == [CHANGE, RESULT]
    for row in BulkChangeLog.objects.filter(bulk_change=bulk_change).values():
        for value in row.values():
            assert wrong_secret not in str(value)
            assert API_SECRET not in str(value)
    sent = BulkChangeLog.objects.get(device_change=failed, log_entry_description=CHANGE)
    assert "ApiSecret: [REDACTED]" in sent.request_text
    assert sent.response_status == 401


def test_a_device_already_enabled_is_skipped_after_reading_its_esim(
    teal_world: TealWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [device] = devices(1)
    teal_world.seed([device], status="waiting")

    bulk_change = drain(teal_world.create([device], ignore_current=False))

    change = device_change(bulk_change, device)
    assert change.status == DeviceChange.Status.SKIPPED
    assert descriptions(bulk_change, change) == [READ, RESULT]
    assert teal_world.simulator.call_count("teal", "enable") == 0


@pytest.mark.parametrize("status", ["online", "stopped", "ACTIVE"])
def test_a_target_teal_cannot_set_is_refused_when_the_bulk_change_is_created(
    teal_world: TealWorld, status: str
) -> None:
    with pytest.raises(ApplicationError) as raised:
        teal_world.create(devices(1), status=status)

    assert raised.value.fields["update_status"] == [
        f"Teal cannot set status {status!r}; allowed: enabled, disabled"
    ]
    assert BulkChange.objects.count() == 0
