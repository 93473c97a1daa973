"""The POND pipeline in one process: a real SQS endpoint (moto server), real HTTP to the carrier
simulators, the real database, and the real consumer — with django-q2 in sync mode so each
hand-off runs inline. The subprocess versions (real qcluster and poll_sqs) are in
test_end_to_end.py."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from bulkchanges import sqs
from bulkchanges.consumer import SqsConsumer
from bulkchanges.models import BulkChange, BulkChangeLog, Device, DeviceChange
from integrations.pond import SIM_SERVICE_FIELDS
from tests.conftest import (
    POND_KEY,
    REV_PASSWORD,
    PondWorld,
    Queue,
    create_bulk_change,
    descriptions,
    drain,
    iccids,
    seed_sims,
    wait_for,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_bulk_change_reaches_processed_with_inventory_rev_services_and_audit_rows(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    numbers = iccids(20)
    seed_sims(pond_world, numbers)
    bulk_change = drain(create_bulk_change(pond_world, numbers))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert bulk_change.processed_at is not None
    devices = DeviceChange.objects.filter(bulk_change=bulk_change)
    assert {d.status for d in devices} == {DeviceChange.Status.PROCESSED}
    assert all(d.is_processed and d.attempts == 0 and d.rev_service_id for d in devices)
    assert Device.objects.filter(iccid__in=numbers, status__code="SUSPENDED").count() == 20
    services = pond_world.simulator.rev_services()
    assert sorted(service["number"] for service in services) == numbers
    assert all(len(service["products"]) == 1 for service in services)
    for iccid in numbers:
        sim = pond_world.simulator.pond_sim(iccid)
        assert {sim[name] for name in SIM_SERVICE_FIELDS} == {"DISABLED"}
        assert sim["status_of_sim"] == "In-Service"
        assert {p["status"] for p in sim["packages"]} == {"NOT_ACTIVE"}
    first = devices.first()
    assert descriptions(bulk_change, first) == [
        "Update POND SIM status",
        "List POND SIM packages",
        "Update POND package status",
        "Find Rev.io service",
        "Create Rev.io service",
        "Find Rev.io service products",
        "Create Rev.io service product",
        "Device status change result",
    ]
    assert descriptions(bulk_change).count("Bulk change completed") == 1
    assert all(
        row.startswith("worker:")
        for row in BulkChangeLog.objects.filter(device_change=first).values_list(
            "process_by", flat=True
        )
    )


def test_503_twice_then_success_ends_processed_after_two_retries(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    numbers = iccids(3)
    seed_sims(pond_world, numbers)
    pond_world.simulator.add_fault("pond", "set_sim_status", key=numbers[1], status=503, times=2)
    bulk_change = drain(create_bulk_change(pond_world, numbers, with_rev=False))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    retried = DeviceChange.objects.get(bulk_change=bulk_change, iccid=numbers[1])
    assert retried.status == DeviceChange.Status.PROCESSED
    assert retried.attempts == 2
    sim_calls = [d for d in descriptions(bulk_change, retried) if d == "Update POND SIM status"]
    assert len(sim_calls) == 3  # one audit row per attempt
    assert descriptions(bulk_change, retried).count("Retry scheduled") == 2
    assert pond_world.simulator.call_count("pond", "set_sim_status", numbers[1]) == 3
    assert pond_world.simulator.call_count("pond", "set_sim_status", numbers[0]) == 1


def test_429_retry_after_beyond_the_sqs_cap_is_honoured_by_resending_early_messages(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid] = iccids(1)
    seed_sims(pond_world, [iccid])
    pond_world.simulator.add_fault(
        "pond", "set_sim_status", key=iccid, status=429, retry_after="1200"
    )
    bulk_change = create_bulk_change(pond_world, [iccid], with_rev=False)
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

    device_change = DeviceChange.objects.get(bulk_change=bulk_change)
    assert device_change.next_attempt_at is not None
    delay = (device_change.next_attempt_at - timezone.now()).total_seconds()
    assert 1190 < delay <= 1200 * 1.2
    # The retry message is delayed by SQS's maximum, 900 s.
    assert sqs_queue.messages() == 1
    # Deliver a copy early, as SQS would after 900 s: it is sent again with what is left.
    sqs.send_device_retry(
        bulk_change_id=bulk_change.pk,
        device_change_id=device_change.pk,
        retry_number=1,
        delay_seconds=0,
    )
    wait_for(
        lambda: consumer.poll_once() or consumer.stats.deferred,
        timeout=10,
        interval=0,
        message="early message deferred",
    )
    assert sqs_queue.messages() == 2  # the original (delayed) and the re-sent one
    device_change.refresh_from_db()
    assert device_change.status == DeviceChange.Status.RETRY_SCHEDULED
    assert pond_world.simulator.call_count("pond", "set_sim_status", iccid) == 1


def test_unknown_iccid_fails_only_that_device(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    known = iccids(4)
    seed_sims(pond_world, known)
    unknown = iccids(1, start=9000)[0]
    bulk_change = drain(create_bulk_change(pond_world, [*known, unknown], with_rev=False))

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    failed = DeviceChange.objects.get(bulk_change=bulk_change, iccid=unknown)
    assert failed.status == DeviceChange.Status.ERROR
    assert "SIM not found" in failed.last_error
    assert failed.attempts == 0
    assert (
        DeviceChange.objects.filter(
            bulk_change=bulk_change, status=DeviceChange.Status.PROCESSED
        ).count()
        == 4
    )


def test_package_step_failure_resumes_at_the_package_step(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid] = iccids(1)
    seed_sims(pond_world, [iccid])
    pond_world.simulator.add_fault("pond", "set_package_status", status=503)
    bulk_change = drain(create_bulk_change(pond_world, [iccid], with_rev=False))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert pond_world.simulator.call_count("pond", "set_sim_status", iccid) == 1
    assert pond_world.simulator.call_count("pond", "set_package_status") == 2
    assert DeviceChange.objects.get(bulk_change=bulk_change).attempts == 1


def test_rev_503_is_retried_without_calling_pond_again_and_creates_one_service(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid] = iccids(1)
    seed_sims(pond_world, [iccid])
    pond_world.simulator.add_fault("rev", "create_service", status=503)
    bulk_change = drain(create_bulk_change(pond_world, [iccid]))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert pond_world.simulator.call_count("pond", "set_sim_status", iccid) == 1
    assert pond_world.simulator.call_count("pond", "set_package_status") == 1
    assert len(pond_world.simulator.rev_services()) == 1
    device_change = DeviceChange.objects.get(bulk_change=bulk_change)
    assert device_change.attempts == 1
    assert (
        "Rev service not created yet"
        in BulkChangeLog.objects.get(
            device_change=device_change, log_entry_description="Retry scheduled"
        ).error_text
    )


def test_rev_permanent_failure_keeps_the_carrier_change_and_says_so(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid] = iccids(1)
    seed_sims(pond_world, [iccid])
    pond_world.simulator.add_fault("rev", "create_service", status=404)
    bulk_change = drain(create_bulk_change(pond_world, [iccid]))

    device_change = DeviceChange.objects.get(bulk_change=bulk_change)
    assert device_change.status == DeviceChange.Status.ERROR
    assert device_change.last_error.startswith("carrier updated, Rev service not created:")
    assert device_change.carrier_status_at and device_change.service_status_at
    status = Device.objects.get(iccid=iccid).status
    assert status is not None and status.code == "SUSPENDED"


def test_duplicate_delivery_calls_the_carrier_once(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    numbers = iccids(10)
    seed_sims(pond_world, numbers)
    bulk_change = create_bulk_change(pond_world, numbers, with_rev=False)
    sqs.send_bulk_change(bulk_change.pk)  # the same message again
    drain(bulk_change)
    consumer = SqsConsumer(wait_seconds=1)
    consumer.poll_once()  # whatever is left is a no-op

    for iccid in numbers:
        assert pond_world.simulator.call_count("pond", "set_sim_status", iccid) == 1
    assert sqs_queue.messages() == 0


def test_message_for_a_finished_bulk_change_is_a_deleted_no_op(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None, caplog: Any
) -> None:
    numbers = iccids(2)
    seed_sims(pond_world, numbers)
    bulk_change = drain(create_bulk_change(pond_world, numbers, with_rev=False))
    sqs.send_bulk_change(bulk_change.pk)
    consumer = SqsConsumer(wait_seconds=1)
    wait_for(
        lambda: consumer.poll_once() or consumer.stats.no_ops,
        timeout=10,
        interval=0,
        message="no-op",
    )
    assert sqs_queue.messages() == 0
    assert "is PROCESSED; message is a no-op" in caplog.text


def test_legacy_producer_message_is_processed_like_ours(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    numbers = iccids(3)
    seed_sims(pond_world, numbers)
    # Created without our sender: as another system would write it, then released by message.
    bulk_change = create_bulk_change(pond_world, numbers, with_rev=False)
    sqs_queue.receive_all(wait=1)  # throw our own message away (visibility 2 s)…
    sqs_queue.client.purge_queue(QueueUrl=sqs_queue.url)
    sqs_queue.client.send_message(
        QueueUrl=sqs_queue.url,
        MessageBody="Not used",
        MessageAttributes={
            "BulkChangeId": {"DataType": "String", "StringValue": str(bulk_change.pk)},
            "M2MDeviceChangeId": {"DataType": "String", "StringValue": "0"},
            "RetryNumber": {"DataType": "String", "StringValue": "0"},
            "IsFromAutomatedUpdateDeviceStatusLambda": {
                "DataType": "String",
                "StringValue": "True",
            },
            "NewServiceActivations": {"DataType": "String", "StringValue": "[]"},
            "ServiceProviderId": {"DataType": "String", "StringValue": "17"},
            "AdditionBulkChangeId": {"DataType": "String", "StringValue": "0"},
            "IsRetryUpdateIdentifier": {"DataType": "String", "StringValue": "False"},
        },
    )
    bulk_change = drain(bulk_change)
    assert bulk_change.status == BulkChange.Status.PROCESSED
    process_by = set(
        BulkChangeLog.objects.filter(
            bulk_change=bulk_change, device_change__isnull=False
        ).values_list("process_by", flat=True)
    )
    assert process_by and all(value.endswith("[automated]") for value in process_by)


@pytest.mark.parametrize(
    ("attributes", "body", "reason"),
    [
        ({}, "Not used", "BulkChangeId is missing"),
        (
            {"BulkChangeId": {"DataType": "Number", "StringValue": "abc"}},
            "",
            "BulkChangeId is not a number",
        ),
        (
            {"BulkChangeId": {"DataType": "Number", "StringValue": "999999"}},
            "",
            "unknown bulk change 999999",
        ),
    ],
)
def test_malformed_messages_never_crash_the_poller_and_end_in_the_dlq(
    pond_world: PondWorld,
    sqs_queue: Queue,
    inline_workers: None,
    caplog: Any,
    attributes: dict[str, Any],
    body: str,
    reason: str,
) -> None:
    sqs_queue.client.send_message(
        QueueUrl=sqs_queue.url, MessageBody=body or "{}", MessageAttributes=attributes
    )
    consumer = SqsConsumer(wait_seconds=1)
    wait_for(
        lambda: consumer.poll_once() is not None and sqs_queue.messages(sqs_queue.dlq_url),
        timeout=30,
        interval=0.5,
        message="message moved to the DLQ",
    )
    assert consumer.stats.malformed == 2  # maxReceiveCount 2 in tests
    assert reason in caplog.text
    assert sqs_queue.messages() == 0


def test_unsupported_change_type_is_malformed(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None, caplog: Any
) -> None:
    [iccid] = iccids(1)
    bulk_change = create_bulk_change(pond_world, [iccid], with_rev=False)
    BulkChange.objects.filter(pk=bulk_change.pk).update(
        change_request_type=BulkChange.ChangeRequestType.ARCHIVAL
    )
    consumer = SqsConsumer(wait_seconds=1)
    wait_for(
        lambda: consumer.poll_once() is not None and consumer.stats.malformed,
        timeout=10,
        interval=0,
        message="malformed",
    )
    assert "ARCHIVAL, which PondOps does not process" in caplog.text


def test_writes_disabled_fails_every_device_without_a_carrier_call(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    numbers = iccids(5)
    seed_sims(pond_world, numbers)
    pond_world.pond.writes_enabled = False
    pond_world.pond.save()
    bulk_change = drain(create_bulk_change(pond_world, numbers))

    assert bulk_change.status == BulkChange.Status.ERROR
    for device_change in DeviceChange.objects.filter(bulk_change=bulk_change):
        assert device_change.status == DeviceChange.Status.ERROR
        assert device_change.last_error == "writes are disabled for POND distributor 1234"
        assert descriptions(bulk_change, device_change) == ["Writes disabled"]
    assert pond_world.simulator.call_count("pond") == 0
    assert pond_world.simulator.call_count("rev") == 0


def test_retries_exhausted_end_in_error_with_the_last_carrier_error(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None, settings: Any
) -> None:
    settings.BULKCHANGE_MAX_RETRIES = 2
    [iccid] = iccids(1)
    seed_sims(pond_world, [iccid])
    pond_world.simulator.add_fault("pond", "set_sim_status", status=503, times=-1)
    bulk_change = drain(create_bulk_change(pond_world, [iccid], with_rev=False))

    device_change = DeviceChange.objects.get(bulk_change=bulk_change)
    assert device_change.status == DeviceChange.Status.ERROR
    assert device_change.attempts == 2
    assert device_change.last_error.startswith("gave up after 2 retries: HTTP 503 from POND")
    assert pond_world.simulator.call_count("pond", "set_sim_status", iccid) == 3


def test_html_error_page_becomes_a_readable_error(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None, settings: Any
) -> None:
    settings.BULKCHANGE_MAX_RETRIES = 0
    [iccid] = iccids(1)
    seed_sims(pond_world, [iccid])
    pond_world.simulator.add_fault("pond", "set_sim_status", kind="html", status=502)
    bulk_change = drain(create_bulk_change(pond_world, [iccid], with_rev=False))

    device_change = DeviceChange.objects.get(bulk_change=bulk_change)
    assert (
        device_change.last_error == "gave up after 0 retries: HTTP 502 from POND: 502 Bad Gateway"
    )
    row = BulkChangeLog.objects.get(
        device_change=device_change, log_entry_description="Update POND SIM status"
    )
    assert row.response_status == 502 and row.has_errors
    assert "Traceback" not in row.error_text + device_change.last_error


def test_two_bulk_changes_on_one_iccid_apply_in_creation_order(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    shared, only_first, only_second = iccids(3)
    seed_sims(pond_world, [shared, only_first, only_second])
    suspend = create_bulk_change(pond_world, [shared, only_first], with_rev=False)
    activate = create_bulk_change(
        pond_world, [shared, only_second], status="ACTIVE", with_rev=False
    )
    messages = sqs_queue.receive_all(wait=1)
    by_bulk = {m["MessageAttributes"]["BulkChangeId"]["StringValue"]: m for m in messages}
    consumer = SqsConsumer(wait_seconds=1)
    # The second bulk change arrives first: its own device runs, the shared one waits.
    consumer.handle(by_bulk[str(activate.pk)])
    waiting = DeviceChange.objects.get(bulk_change=activate, iccid=shared)
    assert waiting.status == DeviceChange.Status.PENDING
    assert DeviceChange.objects.get(bulk_change=activate, iccid=only_second).status == "PROCESSED"
    consumer.handle(by_bulk[str(suspend.pk)])  # finishing the shared device releases the next

    for bulk_change in (suspend, activate):
        bulk_change.refresh_from_db()
        assert bulk_change.status == BulkChange.Status.PROCESSED
    writes = [
        r for r in pond_world.simulator.requests(carrier="pond", op="set_sim_status", key=shared)
    ]
    assert [r["body"]["sim_data_service_status"] for r in writes] == ["DISABLED", "ENABLED"]
    assert pond_world.simulator.pond_sim(shared)["sim_data_service_status"] == "ENABLED"


def test_a_later_bulk_change_cannot_overtake_a_scheduled_retry(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [iccid] = iccids(1)
    seed_sims(pond_world, [iccid])
    pond_world.simulator.add_fault(
        "pond", "set_sim_status", key=iccid, status=429, retry_after="600"
    )
    first = create_bulk_change(pond_world, [iccid], with_rev=False)
    consumer = SqsConsumer(wait_seconds=1)
    wait_for(
        lambda: (
            consumer.poll_once()
            or DeviceChange.objects.filter(
                bulk_change=first, status=DeviceChange.Status.RETRY_SCHEDULED
            ).exists()
        ),
        timeout=10,
        interval=0,
        message="retry scheduled",
    )
    second = create_bulk_change(pond_world, [iccid], status="ACTIVE", with_rev=False)
    wait_for(
        lambda: (
            consumer.poll_once()
            or BulkChange.objects.filter(pk=second.pk, status=BulkChange.Status.PROCESSING).exists()
        ),
        timeout=10,
        interval=0,
        message="second bulk change picked up",
    )

    assert DeviceChange.objects.get(bulk_change=second).status == DeviceChange.Status.PENDING
    assert pond_world.simulator.call_count("pond", "set_sim_status", iccid) == 1


def test_ignore_current_status_false_skips_devices_already_in_the_target(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    suspended, active = iccids(2)
    seed_sims(pond_world, [suspended], services="DISABLED")
    seed_sims(pond_world, [active])
    bulk_change = drain(
        create_bulk_change(pond_world, [suspended, active], with_rev=False, ignore_current=False)
    )

    assert bulk_change.status == BulkChange.Status.PROCESSED
    skipped = DeviceChange.objects.get(bulk_change=bulk_change, iccid=suspended)
    assert skipped.status == DeviceChange.Status.SKIPPED
    assert pond_world.simulator.call_count("pond", "set_sim_status", suspended) == 0
    assert pond_world.simulator.call_count("pond", "set_sim_status", active) == 1


def test_cancel_stops_unclaimed_devices(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    from bulkchanges.services import bulk_change_cancel

    numbers = iccids(4)
    seed_sims(pond_world, numbers)
    bulk_change = create_bulk_change(pond_world, numbers, with_rev=False)
    outcome = bulk_change_cancel(bulk_change=bulk_change, actor="admin:ops")
    assert (outcome.cancelled, outcome.finishing, outcome.status) == (4, 0, "CANCELLED")
    SqsConsumer(wait_seconds=1).poll_once()

    assert bulk_change.status == BulkChange.Status.CANCELLED
    assert pond_world.simulator.call_count("pond") == 0
    assert descriptions(bulk_change) == ["Bulk change cancelled", "Bulk change completed"]
    completion = BulkChangeLog.objects.get(
        bulk_change=bulk_change, log_entry_description="Bulk change completed"
    )
    assert completion.response_text == (
        "CANCELLED: 0 changed before the cancel took effect, 4 cancelled"
    )


def test_cancel_lets_an_in_flight_device_run_to_its_end_then_the_bulk_change_is_cancelled(
    pond_world: PondWorld, sqs_queue: Queue
) -> None:
    """docs/architecture.md §6: a device that sent its carrier write runs every remaining step
    — the package status, the inventory, the Rev.io service — and ends PROCESSED; the bulk
    change is CANCELLING until then, CANCELLED after, never finished before its last device."""
    import threading

    from django.db import connection

    from bulkchanges.services import bulk_change_cancel
    from bulkchanges.services.processing import device_changes_process

    [iccid] = iccids(1)
    seed_sims(pond_world, [iccid])
    pond_world.simulator.config(latency_ms=800)
    bulk_change = create_bulk_change(pond_world, [iccid])
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.PROCESSING)
    device_change = DeviceChange.objects.get(bulk_change=bulk_change)

    def work() -> None:
        try:
            device_changes_process(ids=[device_change.pk], process_by="test", enqueue=list)
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    wait_for(  # counted on arrival: the SIM status call is now in flight for 800 ms
        lambda: pond_world.simulator.call_count("pond", "set_sim_status", iccid) == 1,
        timeout=20,
        interval=0.02,
        message="the SIM status call in flight",
    )
    outcome = bulk_change_cancel(bulk_change=bulk_change, actor="admin:ops")
    assert (outcome.cancelled, outcome.finishing, outcome.status) == (0, 1, "CANCELLING")
    assert "stays CANCELLING" in outcome.describe()
    assert "Rev.io steps included" in outcome.describe()  # this change creates a Rev service
    assert BulkChange.objects.get(pk=bulk_change.pk).status == BulkChange.Status.CANCELLING
    worker.join(timeout=60)

    device_change.refresh_from_db()
    assert device_change.status == DeviceChange.Status.PROCESSED
    assert device_change.carrier_status_at is not None
    assert device_change.service_status_at is not None  # the next step ran after the cancel
    assert device_change.rev_service_id is not None  # and so did Rev.io
    assert device_change.previous_status == ""  # no inventory, no read (IsIgnoreCurrentStatus)
    assert pond_world.simulator.call_count("pond", "list_packages") >= 1
    assert pond_world.simulator.call_count("rev") >= 1
    assert Device.objects.filter(iccid=iccid, status__code="SUSPENDED").exists()
    bulk_change.refresh_from_db()
    assert bulk_change.status == BulkChange.Status.CANCELLED
    assert bulk_change.processed_at is not None and device_change.processed_at is not None
    assert bulk_change.processed_at >= device_change.processed_at
    [completion] = BulkChangeLog.objects.filter(
        bulk_change=bulk_change, log_entry_description="Bulk change completed"
    )
    assert completion.response_text == (
        "CANCELLED: 1 changed before the cancel took effect, 0 cancelled"
    )
    assert completion.processed_at >= device_change.processed_at


def test_retry_command_requeues_failed_devices_and_logs_who(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None, settings: Any
) -> None:
    settings.BULKCHANGE_MAX_RETRIES = 0
    numbers = iccids(3)
    seed_sims(pond_world, numbers)
    pond_world.simulator.add_fault("pond", "set_sim_status", key=numbers[0], status=503)
    bulk_change = drain(create_bulk_change(pond_world, numbers, with_rev=False))
    failed = DeviceChange.objects.get(bulk_change=bulk_change, status="ERROR")

    out = StringIO()
    call_command("retry_bulk_change", str(bulk_change.pk), "--dry-run", stdout=out)
    assert f"would re-queue 1 devices: {failed.pk}" in out.getvalue()
    assert DeviceChange.objects.get(pk=failed.pk).status == "ERROR"

    call_command("retry_bulk_change", str(bulk_change.pk), stdout=out)
    bulk_change = drain(bulk_change)
    assert bulk_change.status == BulkChange.Status.PROCESSED
    failed.refresh_from_db()
    assert failed.status == DeviceChange.Status.PROCESSED and failed.attempts == 0
    row = BulkChangeLog.objects.filter(
        device_change=failed, log_entry_description="Retry requested"
    ).get()
    assert row.process_by.startswith("cli:") and "attempts was 0" in row.response_text
    assert bulk_change.logs.filter(log_entry_description="Bulk change completed").count() == 2

    with pytest.raises(CommandError, match="bulk change 999999 does not exist"):
        call_command("retry_bulk_change", "999999")


def test_reaper_returns_expired_leases_and_finishes_the_bulk_change(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    numbers = iccids(2)
    seed_sims(pond_world, numbers)
    bulk_change = create_bulk_change(pond_world, numbers, with_rev=False)
    # A worker claimed a device and died: PROCESSING with a lease in the past.
    BulkChange.objects.filter(pk=bulk_change.pk).update(status=BulkChange.Status.PROCESSING)
    DeviceChange.objects.filter(bulk_change=bulk_change, iccid=numbers[0]).update(
        status=DeviceChange.Status.PROCESSING, claimed_until=timezone.now() - timedelta(seconds=1)
    )
    out = StringIO()
    call_command("reap_once", stdout=out)
    assert "expired leases 1" in out.getvalue()
    bulk_change = drain(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    reaped = DeviceChange.objects.get(bulk_change=bulk_change, iccid=numbers[0])
    assert reaped.attempts == 1
    assert pond_world.simulator.call_count("pond", "set_sim_status", numbers[0]) == 1


def test_secrets_never_reach_logs_audit_rows_or_admin_pages(
    pond_world: PondWorld,
    sqs_queue: Queue,
    inline_workers: None,
    caplog: Any,
    admin_client: Any,
) -> None:
    numbers = iccids(2)
    seed_sims(pond_world, numbers)
    pond_world.simulator.add_fault("pond", "set_sim_status", key=numbers[0], status=401)
    bulk_change = drain(create_bulk_change(pond_world, numbers))

    texts = [caplog.text]
    for row in BulkChangeLog.objects.filter(bulk_change=bulk_change):
        texts += [row.request_text, row.response_text, row.error_text]
    texts += [d.last_error for d in DeviceChange.objects.filter(bulk_change=bulk_change)]
    for url in (
        f"/admin/bulkchanges/integrationauthentication/{pond_world.pond.pk}/change/",
        f"/admin/bulkchanges/integrationauthentication/{pond_world.rev.pk}/change/",
        "/admin/bulkchanges/integrationauthentication/",
        "/admin/bulkchanges/bulkchangelog/",
        f"/admin/bulkchanges/bulkchange/{bulk_change.pk}/change/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200
        texts.append(response.content.decode())
    joined = "\n".join(texts)
    assert POND_KEY not in joined
    assert REV_PASSWORD not in joined
    assert "POND rejected the API key for distributor 1234" in joined


def test_an_absurd_retry_after_is_capped_and_recorded_never_a_silent_lease_expiry(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None, settings: Any
) -> None:
    from tests.fixtures.pipeline import run_until_retry_scheduled

    settings.BULKCHANGE_MAX_RETRY_DELAY_SECONDS = 3600
    numbers = iccids(1)
    seed_sims(pond_world, numbers)
    pond_world.simulator.add_fault(
        "pond", "set_sim_status", status=429, retry_after=300_000_000_000, times=1
    )
    bulk_change = create_bulk_change(pond_world, numbers, with_rev=False)
    started = timezone.now()

    device = run_until_retry_scheduled(bulk_change)

    assert device.next_attempt_at is not None
    waits = (device.next_attempt_at - started).total_seconds()
    assert 3590 <= waits <= 3600 + 30  # the cap, not 9,500 years
    rows = descriptions(bulk_change, device)
    assert rows == ["Update POND SIM status", "Retry scheduled"]


def test_a_call_whose_audit_row_cannot_be_written_is_not_sent_and_the_device_retries(
    pond_world: PondWorld, sqs_queue: Queue, inline_workers: None, monkeypatch: Any
) -> None:
    """No call without its row: with the audit table refusing the first start row, the carrier
    is not called, and the device is retried (and then processed) like any transient failure."""
    from django.db import OperationalError

    from bulkchanges.services import logs

    [iccid] = iccids(1)
    seed_sims(pond_world, [iccid])
    real_write = logs.call_started_write
    refused: list[str] = []

    def refuse_once(start: Any, **kwargs: Any) -> int:
        if not refused:
            refused.append(start.description)
            raise OperationalError("database is locked")
        return real_write(start, **kwargs)

    monkeypatch.setattr(logs, "call_started_write", refuse_once)
    bulk_change = drain(create_bulk_change(pond_world, [iccid], with_rev=False))

    device_change = DeviceChange.objects.get(bulk_change=bulk_change)
    assert device_change.status == DeviceChange.Status.PROCESSED and device_change.attempts == 1
    assert refused == ["Update POND SIM status"]
    assert pond_world.simulator.call_count("pond", "set_sim_status", iccid) == 1
    [retry] = BulkChangeLog.objects.filter(
        device_change=device_change, log_entry_description="Retry scheduled"
    )
    assert "could not be written (OperationalError); the call was not sent" in retry.error_text
    calls = BulkChangeLog.objects.filter(device_change=device_change).exclude(request_text="")
    assert calls.count() == 3 and not calls.filter(in_flight=True).exists()
    assert not calls.filter(has_errors=True).exists()
