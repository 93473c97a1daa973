"""The Teal pipeline in one process: a real SQS endpoint (moto server), real HTTP to the Teal
simulator, the real database and the real consumer, with django-q2 in sync mode.

Teal is asynchronous and named by our own requestId, reads included: these tests pin that the
id is stored before the submit, that a running operation makes the device wait (AWAITING_CARRIER,
no retry spent) until polling confirms it, that past the 30-minute deadline a read decides, that
a SUBMIT whose answer was lost asks Teal first and one Teal never saw is sent again under the
same id, and that without a callback URL nothing is called. The cases every carrier shares are
in test_carrier_pipeline.py.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bulkchanges.models import BulkChange, DeviceChange
from bulkchanges.types import DeviceRef
from integrations.simulators.control import SimulatorControl
from tests.conftest import Queue, descriptions, drain, iccids, wait_for
from tests.fixtures.callback_listener import CallbackListener
from tests.fixtures.pipeline import (
    OUTCOME,
    RETRY,
    TealWorld,
    device_change,
    run_until_status,
)

pytestmark = pytest.mark.django_db(transaction=True)

CHANGE = TealWorld.update_row
POLL = TealWorld.POLL
INFO = TealWorld.INFO
WAITING = "Waiting for carrier"


@pytest.fixture
def world(simulator: SimulatorControl, device_statuses: None) -> TealWorld:
    return TealWorld.arrange(simulator)


@pytest.fixture
def waiting_fast(settings: Any) -> None:
    """A confirm budget of 0.3 s; carrier time a hundredth of real time: the waiting schedule's
    first minute is 0.6 s (the SQS delay rounds it to 1 s), the confirm deadline 18 s."""
    settings.BULKCHANGE_CONFIRM_SECONDS = 0.3
    settings.BULKCHANGE_CARRIER_TIME_SCALE = 0.01


@pytest.fixture
def deadline_fast(settings: Any) -> None:
    """The 30-minute confirm deadline in 1.8 s."""
    settings.BULKCHANGE_CONFIRM_SECONDS = 0.3
    settings.BULKCHANGE_CARRIER_TIME_SCALE = 0.001


def query(entry: dict[str, Any]) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(entry["path"]).query).items()}


def submitted_request_ids(simulator: SimulatorControl, op: str, eid: str) -> list[str]:
    """The requestId of every submission the simulator received for ``eid`` (faulted too)."""
    return [
        query(entry)["requestId"] for entry in simulator.requests(carrier="teal", op=op, key=eid)
    ]


def test_a_running_operation_waits_without_spending_retries_until_polling_confirms_it(
    world: TealWorld, sqs_queue: Queue, inline_workers: None, waiting_fast: None
) -> None:
    [device] = world.devices(1)
    world.seed([device], status="online")
    world.simulator.configure_teal(completion_seconds=2.5)
    bulk_change = world.create([device], status="disabled")

    waiting = run_until_status(bulk_change, DeviceChange.Status.AWAITING_CARRIER)

    assert waiting.attempts == 0
    assert waiting.carrier_waits == 1
    assert waiting.carrier_request_id and waiting.carrier_submitted_at
    assert waiting.carrier_status_at is None
    assert waiting.next_attempt_at is not None
    assert descriptions(bulk_change, waiting)[-1] == WAITING

    bulk_change = drain(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    change = device_change(bulk_change, device)
    assert change.status == DeviceChange.Status.PROCESSED
    assert change.attempts == 0
    assert change.carrier_waits >= 2
    assert world.carrier_status(device) == "stopped"
    assert world.inventory_status(device) == "stopped"
    [operation] = world.simulator.teal_operations()
    assert operation["requestId"] == change.carrier_request_id
    assert operation["submissions"] == 1
    assert operation["interim_answers"] >= 3  # real 102s, each followed by a stale final answer
    assert operation["callback"]["sent"] is False  # nobody listened: polling alone decided
    rows = descriptions(bulk_change, change)
    assert rows[0] == CHANGE
    assert rows[-2:] == [POLL, OUTCOME]
    assert set(rows[1:-2]) == {POLL, WAITING}
    assert rows.count(WAITING) == change.carrier_waits
    assert world.calls("disable", device.eid) == 1


@pytest.mark.parametrize(
    ("stuck", "status", "carrier_status"),
    [
        pytest.param("applied", DeviceChange.Status.PROCESSED, "online", id="the-eSIM-changed"),
        pytest.param("unapplied", DeviceChange.Status.ERROR, "stopped", id="the-eSIM-did-not"),
    ],
)
def test_an_operation_never_completed_is_decided_by_a_read_past_the_deadline(
    world: TealWorld,
    sqs_queue: Queue,
    inline_workers: None,
    deadline_fast: None,
    stuck: str,
    status: str,
    carrier_status: str,
) -> None:
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.set_teal_errors(device.eid, stuck=stuck)

    bulk_change = drain(world.create([device]))

    change = device_change(bulk_change, device)
    assert change.status == status
    assert change.attempts == 0
    assert change.carrier_waits >= 1
    assert world.carrier_status(device) == carrier_status
    operations = world.simulator.teal_operations()
    [change_operation] = [op for op in operations if op["action"] == "enable"]
    [read] = [op for op in operations if op["action"] == "info"]
    assert change_operation["status"] == "STUCK"
    assert read["status"] == "DONE"
    rows = descriptions(bulk_change, change)
    assert rows[-3:] == [INFO, POLL, OUTCOME]
    if status == DeviceChange.Status.ERROR:
        assert change.last_error == (
            f"Teal did not complete request {change.carrier_request_id} within 30 minutes "
            f"(eSIM {device.eid} is disabled); check the carrier before retrying"
        )
        assert world.inventory_status(device) is None
    else:
        assert change.last_error == ""
        assert world.inventory_status(device) == "online"


def test_a_submit_whose_answer_was_lost_asks_teal_first_and_does_not_submit_again(
    world: TealWorld, sqs_queue: Queue, inline_workers: None, settings: Any
) -> None:
    settings.BULKCHANGE_HTTP_READ_TIMEOUT = 0.3
    [device] = world.devices(1)
    world.seed([device])
    # Teal acts on the submit, but its answer comes after our read timeout.
    world.simulator.add_fault("teal", "enable", key=device.eid, kind="timeout", delay_ms=600)

    bulk_change = drain(world.create([device]))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    change = device_change(bulk_change, device)
    assert change.attempts == 1
    assert world.calls("enable", device.eid) == 1
    [operation] = world.simulator.teal_operations()
    assert operation["submissions"] == 1
    assert descriptions(bulk_change, change) == [CHANGE, RETRY, POLL, POLL, OUTCOME]
    assert world.carrier_status(device) == "online"


def test_a_submit_teal_never_saw_is_sent_again_under_the_same_request_id(
    world: TealWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.add_fault("teal", "enable", key=device.eid, status=503, times=1)

    bulk_change = drain(world.create([device]))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    change = device_change(bulk_change, device)
    assert len(change.carrier_request_id) == 32
    seen = submitted_request_ids(world.simulator, "enable", device.eid)
    assert seen == [change.carrier_request_id] * 2
    [operation] = world.simulator.teal_operations()
    assert operation["requestId"] == change.carrier_request_id
    assert operation["submissions"] == 1  # the 503 was answered before Teal saw it
    assert change.attempts == 1
    # The retry asked first: operation-result 404 (never queued), then the submit again.
    assert descriptions(bulk_change, change) == [CHANGE, RETRY, POLL, CHANGE, POLL, OUTCOME]


def test_generic_error_is_retried_whatever_its_http_status(
    world: TealWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.set_teal_errors(device.eid, generic_errors=1, generic_error_status=400)

    bulk_change = drain(world.create([device]))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    change = device_change(bulk_change, device)
    assert change.attempts == 1
    retry = change.logs.get(log_entry_description=RETRY)
    assert retry.error_text == (
        "HTTP 400 from Teal: An unexpected error occurred; please retry (GENERIC_ERROR)"
    )


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
    # The device with an EID: a read (info + its result), then the change and its result.
    assert descriptions(bulk_change, processed) == [INFO, POLL, CHANGE, POLL, OUTCOME]
    assert world.calls("esim_info", with_eid.eid) == world.calls("enable", with_eid.eid) == 1
    assert world.calls("operation_result") == 2
    assert world.calls() == 4
    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS


def test_without_a_callback_url_every_device_fails_before_any_call(
    world: TealWorld, sqs_queue: Queue, inline_workers: None, settings: Any
) -> None:
    settings.CARRIER_CALLBACK_BASE_URL = ""
    world.use(own_callback_url="")
    devices = world.devices(2)
    world.seed(devices)

    bulk_change = drain(world.create(devices, ignore_current=False))

    assert bulk_change.status == BulkChange.Status.ERROR
    for device in devices:
        failed = device_change(bulk_change, device)
        assert failed.status == DeviceChange.Status.ERROR
        assert failed.last_error == (
            "Teal requires a callbackUrl; set CARRIER_CALLBACK_BASE_URL or the account's "
            "callback URL"
        )
        assert failed.attempts == 0
        assert descriptions(bulk_change, failed) == [OUTCOME]
    assert world.calls() == 0


def test_teal_signals_our_callback_url_with_the_token_and_its_request_id(
    world: TealWorld,
    sqs_queue: Queue,
    inline_workers: None,
    settings: Any,
    callback_listener: CallbackListener,
) -> None:
    settings.CARRIER_CALLBACK_BASE_URL = callback_listener.origin
    [device] = world.devices(1)
    world.seed([device])

    bulk_change = drain(world.create([device]))

    change = device_change(bulk_change, device)
    assert change.status == DeviceChange.Status.PROCESSED
    [submitted] = world.simulator.requests(carrier="teal", op="enable", key=device.eid)
    expected = world.callback_url(callback_listener.origin)
    assert query(submitted)["callbackUrl"] == expected
    wait_for(callback_listener.requests, timeout=5, message="Teal's callback")
    row = world.credentials
    assert callback_listener.requests() == [
        (
            "GET",
            f"/carriers/teal/callbacks/{row.pk}/?token={row.callback_token}"
            f"&requestId={change.carrier_request_id}",
            b"",
        )
    ]
