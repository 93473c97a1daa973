"""The ThingSpace pipeline in one process: a real SQS endpoint (moto server), real HTTP to the
ThingSpace simulator, the real database and token store, and the real consumer — with
django-q2 in sync mode so each hand-off runs inline.

Beyond the cases every carrier shares (in test_carrier_pipeline.py): tokens refused mid-run are
renewed once for the whole bulk change and an expired session is reopened with the same access
token; a request pending for several waits is confirmed by polling without spending retries
(AWAITING_CARRIER), one never confirmed is reconciled by the read at its deadline; a Failed
request ends in ERROR with the CarrierService callback's reason (or, without one, after the
reason wait); activations pair the IMEI with the ICCID; two rejected logins stop every further
login for the account."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from bulkchanges.models import BulkChange, BulkChangeLog, CarrierCallback, Device, DeviceChange
from bulkchanges.services.callback_registration import carrier_callback_register
from bulkchanges.tokens import token_store
from integrations.simulators.control import SimulatorControl
from integrations.thingspace import ThingSpaceProcessor
from integrations.thingspace_tokens import reset_login_failures
from tests.conftest import Queue, descriptions, drain, wait_for
from tests.fixtures.callback_listener import CallbackListener
from tests.fixtures.pipeline import (
    OUTCOME,
    RETRY,
    ThingSpaceWorld,
    assert_no_secret_recorded,
    device_change,
    run_until_status,
)

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNT = ThingSpaceWorld.ACCOUNT
UWS_USER = ThingSpaceWorld.UWS_USER
WRONG_UWS_PASSWORD = "wrong-uws-password-6b"
ACTIVATION = {"service_plan": "M2M-5GB", "mdn_zip_code": "10001"}
LOCKOUT = f"ThingSpace login failing for {ACCOUNT}; check the credentials"
LOGIN = list(ThingSpaceWorld.login_rows)
SUBMIT = ThingSpaceWorld.update_row
CHECK = ThingSpaceWorld.CHECK
READ = ThingSpaceWorld.read_row
WAITING = "Waiting for carrier"
IMEI = "990013907835573"
READ_IMEI = "990013907835581"


@pytest.fixture
def world(simulator: SimulatorControl, device_statuses: None) -> ThingSpaceWorld:
    return ThingSpaceWorld.arrange(simulator)


def test_tokens_refused_mid_run_are_renewed_once_for_the_whole_bulk_change(
    world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    world.use(max_concurrency=4)
    devices = world.devices(8)
    world.seed(devices)
    # ThingSpace drops every token after three device calls: the rest of the run sees 401s.
    world.simulator.expire_thingspace_tokens(after_requests=3)

    bulk_change = drain(world.create(devices))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert (world.calls("oauth_token"), world.calls("session_login")) == (2, 2)
    for device in devices:
        shown = world.simulator.thingspace_device(device.iccid)
        assert shown["state"] == "suspended"
        assert len(shown["requests"]) == 1  # a submit refused with 401 was repeated, not doubled
    statuses = BulkChangeLog.objects.filter(bulk_change=bulk_change).values_list(
        "response_status", flat=True
    )
    assert 401 in statuses  # the refusal is on the audit trail
    assert DeviceChange.objects.filter(bulk_change=bulk_change, attempts=0).count() == 8


@pytest.fixture
def quick_waits(settings: Any) -> None:
    """Each CONFIRM attempt polls 0.3 s; waits are immediate; carrier time runs 2,400 times
    faster (2 hours in 3 s, 15 minutes in 0.375 s)."""
    settings.BULKCHANGE_CONFIRM_SECONDS = 0.3
    settings.BULKCHANGE_WAITING_SCHEDULE_MINUTES = [0]
    settings.BULKCHANGE_CARRIER_TIME_SCALE = 3 / 7200


def test_a_request_pending_for_several_waits_is_confirmed_by_polling_without_spending_retries(
    world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None, quick_waits: None
) -> None:
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.set_thingspace_completion_delay(1500)
    bulk_change = world.create([device])

    waiting = run_until_status(bulk_change, DeviceChange.Status.AWAITING_CARRIER)
    request_id = waiting.carrier_request_id
    assert request_id and waiting.carrier_submitted_at and waiting.carrier_status_at is None
    assert waiting.attempts == 0
    bulk_change = drain(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    done = device_change(bulk_change, device)
    assert (done.status, done.attempts, done.carrier_request_id) == (
        DeviceChange.Status.PROCESSED,
        0,
        request_id,
    )
    assert done.carrier_waits >= 2
    assert world.calls("submit_action", device.iccid) == 1
    rows = descriptions(bulk_change, done)
    assert rows[:3] == [*LOGIN, SUBMIT]
    assert rows.count(WAITING) == done.carrier_waits
    assert rows[-2:] == [CHECK, OUTCOME]
    assert RETRY not in rows
    assert world.carrier_status(device) == "suspended"


@pytest.mark.parametrize(
    ("carrier_state", "outcome"),
    [
        pytest.param("suspended", DeviceChange.Status.PROCESSED, id="in-the-target"),
        pytest.param("active", DeviceChange.Status.ERROR, id="not-in-the-target"),
    ],
)
def test_a_request_never_confirmed_is_reconciled_by_the_read_at_its_deadline(
    world: ThingSpaceWorld,
    sqs_queue: Queue,
    inline_workers: None,
    quick_waits: None,
    settings: Any,
    carrier_state: str,
    outcome: str,
) -> None:
    settings.BULKCHANGE_WAITING_SCHEDULE_MINUTES = [15]  # 0.375 s a wait: a few before 3 s
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.set_thingspace_completion_delay(None)  # the request stays Pending
    bulk_change = world.create([device])
    run_until_status(bulk_change, DeviceChange.Status.AWAITING_CARRIER)
    world.seed([device], status=carrier_state)  # what the line shows, request still pending

    bulk_change = drain(bulk_change)

    done = device_change(bulk_change, device)
    assert (done.status, done.attempts) == (outcome, 0)
    rows = descriptions(bulk_change, done)
    assert rows[-2:] == [READ, OUTCOME]  # past the deadline the read decides, no status call
    if outcome == DeviceChange.Status.PROCESSED:
        assert world.inventory_status(device) == "suspended"
    else:
        assert done.last_error == (
            f"ThingSpace did not confirm request {done.carrier_request_id} within 2 hours; "
            "check the carrier before retrying: the request is still not settled"
        )
    assert world.calls("submit_action", device.iccid) == 1


def test_a_failed_request_without_a_callback_ends_in_error_once_the_reason_wait_is_over(
    world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None, quick_waits: None
) -> None:
    active, deactivated = world.devices(2)
    world.seed([active])
    world.seed([deactivated], status="deactivated")

    bulk_change = drain(world.create([active, deactivated]))

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    failed = device_change(bulk_change, deactivated)
    assert (failed.status, failed.attempts) == (DeviceChange.Status.ERROR, 0)
    assert failed.last_error == (
        f"ThingSpace request {failed.carrier_request_id} failed; no CarrierService callback "
        "gave the reason"
    )
    assert WAITING in descriptions(bulk_change, failed)
    assert device_change(bulk_change, active).status == DeviceChange.Status.PROCESSED


def test_a_failed_requests_carrier_service_callback_gives_the_reason(
    world: ThingSpaceWorld,
    sqs_queue: Queue,
    inline_workers: None,
    quick_waits: None,
    settings: Any,
    callback_listener: CallbackListener,
) -> None:
    settings.BULKCHANGE_CARRIER_TIME_SCALE = 1.0  # the reason wait is a real 15 minutes
    settings.CARRIER_CALLBACK_BASE_URL = callback_listener.url.rstrip("/")
    carrier_callback_register(credentials=world.credentials)
    world.credentials.refresh_from_db()
    [device] = world.devices(1)
    world.seed([device], status="deactivated")
    world.simulator.set_thingspace_completion_delay(200)
    bulk_change = world.create([device])
    run_until_status(bulk_change, DeviceChange.Status.AWAITING_CARRIER)
    [received] = wait_for(lambda: callback_listener.received, timeout=10, interval=0.02)
    store_callback(world, received.body)  # as PondOps' receiver does

    bulk_change = drain(bulk_change)

    failed = device_change(bulk_change, device)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.last_error == (
        f"ThingSpace request {failed.carrier_request_id} failed: "
        "UnifiedWebService.REQUEST_FAILED.InvalidStateTransition: "
        f"Device {device.iccid} is deactivated; suspend is not allowed"
    )


def store_callback(world: ThingSpaceWorld, body: bytes) -> None:
    """Authenticate and parse a CarrierService callback, store it for its device change and
    make that change due now — what the inbound receiver does."""
    credentials = world.credentials.as_credentials()
    [event] = ThingSpaceProcessor.parse_callback(
        credentials=credentials, method="POST", query={}, body=body
    )
    change = DeviceChange.objects.get(carrier_request_id=event.request_id)
    CarrierCallback.objects.create(
        integration="THINGSPACE",
        integration_authentication=world.credentials,
        request_id=event.request_id,
        device_id=event.device_id,
        device_kind=event.device_kind,
        outcome=event.outcome,
        reason=event.reason,
        device_change=change,
        method="POST",
        path=f"/carriers/thingspace/callbacks/{world.credentials.pk}/",
        body="(redacted)",
    )
    DeviceChange.objects.filter(pk=change.pk).update(next_attempt_at=timezone.now())


def test_an_expired_session_mid_run_opens_a_new_session_with_the_same_access_token(
    world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    devices = world.devices(4)
    world.seed(devices)
    # ThingSpace's sessions expire after three device calls: the next answers 400 Expired.
    world.simulator.expire_thingspace_tokens(kind="session", after_requests=3)

    bulk_change = drain(world.create(devices))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert (world.calls("oauth_token"), world.calls("session_login")) == (1, 2)
    statuses = BulkChangeLog.objects.filter(bulk_change=bulk_change).values_list(
        "response_status", flat=True
    )
    assert 400 in statuses
    assert DeviceChange.objects.filter(bulk_change=bulk_change, attempts=0).count() == 4


def test_activation_pairs_the_imei_and_a_device_without_one_fails_before_submitting(
    world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    from_inventory, from_read, without = world.devices(3)
    world.seed([from_inventory, without], status="deactivated")
    world.simulator.seed_thingspace_devices(
        account_name=ACCOUNT,
        devices=[{"iccid": from_read.iccid, "state": "preactive", "imei": READ_IMEI}],
    )
    Device.objects.create(
        tenant=world.tenant, integration="THINGSPACE", iccid=from_inventory.iccid, imei=IMEI
    )

    bulk_change = drain(
        world.create([from_inventory, from_read, without], status="active", options=ACTIVATION)
    )

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    for device, imei in ((from_inventory, IMEI), (from_read, READ_IMEI)):
        [request] = world.simulator.thingspace_device(device.iccid)["requests"]
        assert (request["action"], request["fields"]) == (
            "activate",
            {"servicePlan": "M2M-5GB", "mdnZipCode": "10001", "imei": imei},
        )
        assert device_change(bulk_change, device).status == DeviceChange.Status.PROCESSED
    failed = device_change(bulk_change, without)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.last_error == (
        f"ThingSpace activation needs the IMEI (or a SKU number) for ICCID {without.iccid}"
    )
    assert world.calls("submit_action", without.iccid) == 0


def test_two_rejected_logins_stop_every_further_login_for_the_account(
    world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    world.use(secret_2=WRONG_UWS_PASSWORD, max_concurrency=4)
    devices = world.devices(6)
    world.seed(devices)

    first = drain(world.create(devices))
    second = drain(world.create(devices[:3]))

    assert (world.calls("oauth_token"), world.calls("session_login")) == (2, 2)
    errors = list(
        DeviceChange.objects.filter(bulk_change=first).values_list("status", "last_error")
    )
    rejected = (
        DeviceChange.Status.ERROR,
        f"ThingSpace rejected the UWS user {UWS_USER} for ThingSpace account {ACCOUNT} "
        f"(HTTP 401 from ThingSpace: Invalid username or password for {UWS_USER}"
        " (UnauthorizedAccess))",
    )
    assert sorted(errors) == sorted([rejected] * 2 + [(DeviceChange.Status.ERROR, LOCKOUT)] * 4)
    assert set(
        DeviceChange.objects.filter(bulk_change=second).values_list("status", "last_error")
    ) == {(DeviceChange.Status.ERROR, LOCKOUT)}
    assert first.status == second.status == BulkChange.Status.ERROR
    assert world.calls("submit_action") == 0
    assert_no_secret_recorded(first, WRONG_UWS_PASSWORD, ThingSpaceWorld.CLIENT_SECRET)


def test_logins_resume_once_the_credentials_are_fixed_and_the_count_reset(
    world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    [device] = world.devices(1)
    world.seed([device])
    world.use(secret_2=WRONG_UWS_PASSWORD)
    drain(world.create([device]))
    drain(world.create([device]))

    world.use(secret_2=ThingSpaceWorld.UWS_PASSWORD)
    reset_login_failures(token_store, world.credentials.as_credentials())
    bulk_change = drain(world.create([device]))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert world.calls("session_login") == 3


def test_active_restores_suspended_lines_and_activates_the_others_with_plan_and_zip(
    world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    suspended, deactivated = world.devices(2)
    world.seed([suspended], status="suspended")
    world.simulator.seed_thingspace_devices(
        account_name=ACCOUNT,
        devices=[{"iccid": deactivated.iccid, "state": "deactivated", "imei": IMEI}],
    )

    bulk_change = drain(world.create([suspended, deactivated], status="active", options=ACTIVATION))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    restored = world.simulator.thingspace_device(suspended.iccid)
    activated = world.simulator.thingspace_device(deactivated.iccid)
    assert (restored["state"], activated["state"]) == ("active", "active")
    assert [(r["action"], r["fields"]) for r in restored["requests"]] == [("restore", {})]
    assert [(r["action"], r["fields"]) for r in activated["requests"]] == [
        ("activate", {"servicePlan": "M2M-5GB", "mdnZipCode": "10001", "imei": IMEI})
    ]
    assert Device.objects.filter(status__code="active").count() == 2
    assert descriptions(bulk_change, device_change(bulk_change, deactivated)) == [
        ThingSpaceWorld.read_row,
        SUBMIT,
        CHECK,
        OUTCOME,
    ]
