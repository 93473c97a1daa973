"""The ThingSpace pipeline in one process: a real SQS endpoint (moto server), real HTTP to the
ThingSpace simulator, the real database and token store, and the real consumer — with
django-q2 in sync mode so each hand-off runs inline.

Beyond the cases every carrier shares (in test_carrier_pipeline.py): tokens refused mid-run are
renewed once for the whole bulk change, a request still pending past the confirm budget is
confirmed again (never re-submitted), a Failed request ends the device in ERROR with
ThingSpace's text, and two rejected logins stop every further login for the account."""

from __future__ import annotations

from typing import Any

import pytest

from bulkchanges.models import BulkChange, BulkChangeLog, Device, DeviceChange
from bulkchanges.tokens import token_store
from integrations.simulators.control import SimulatorControl
from integrations.thingspace_tokens import reset_login_failures
from tests.conftest import Queue, descriptions, drain
from tests.fixtures.pipeline import (
    OUTCOME,
    RETRY,
    ThingSpaceWorld,
    assert_no_secret_recorded,
    device_change,
    run_until_retry_scheduled,
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


def test_a_request_pending_past_the_confirm_budget_is_confirmed_again_never_resubmitted(
    world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None, settings: Any
) -> None:
    settings.BULKCHANGE_CONFIRM_SECONDS = 1
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.set_thingspace_completion_delay(None)
    bulk_change = world.create([device])

    waiting = run_until_retry_scheduled(bulk_change)

    request_id = waiting.carrier_request_id
    assert request_id and waiting.carrier_submitted_at and waiting.carrier_status_at is None
    assert waiting.last_error == f"ThingSpace request {request_id} still pending after 1s"
    world.simulator.set_thingspace_completion_delay(0)  # ThingSpace finishes the request
    bulk_change = drain(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    done = device_change(bulk_change, device)
    assert (done.status, done.attempts, done.carrier_request_id) == (
        DeviceChange.Status.PROCESSED,
        1,
        request_id,
    )
    assert world.calls("submit_action", device.iccid) == 1
    assert world.calls("request_status", device.iccid) >= 3
    rows = descriptions(bulk_change, done)
    assert rows[:3] == [*LOGIN, SUBMIT]
    assert rows[rows.index(RETRY) :] == [RETRY, CHECK, OUTCOME]
    shown = world.simulator.thingspace_device(device.iccid)
    assert shown["state"] == "suspended"
    assert [request["requestId"] for request in shown["requests"]] == [request_id]


def test_a_failed_request_ends_the_device_in_error_with_thingspaces_text(
    world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    active, deactivated = world.devices(2)
    world.seed([active])
    world.seed([deactivated], status="deactivated")

    bulk_change = drain(world.create([active, deactivated]))

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    failed = device_change(bulk_change, deactivated)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == (
        f"ThingSpace request {failed.carrier_request_id} failed: "
        f"Device {deactivated.iccid} is deactivated; suspend is not allowed"
    )
    row = BulkChangeLog.objects.filter(device_change=failed, log_entry_description=CHECK).last()
    assert row is not None and row.has_errors and "is deactivated" in row.error_text
    assert device_change(bulk_change, active).status == DeviceChange.Status.PROCESSED


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
    world.seed([deactivated], status="deactivated")

    bulk_change = drain(world.create([suspended, deactivated], status="active", options=ACTIVATION))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    restored = world.simulator.thingspace_device(suspended.iccid)
    activated = world.simulator.thingspace_device(deactivated.iccid)
    assert (restored["state"], activated["state"]) == ("active", "active")
    assert [(r["action"], r["fields"]) for r in restored["requests"]] == [("restore", {})]
    assert [(r["action"], r["fields"]) for r in activated["requests"]] == [
        ("activate", {"servicePlan": "M2M-5GB", "mdnZipCode": "10001"})
    ]
    assert Device.objects.filter(status__code="active").count() == 2
    assert descriptions(bulk_change, device_change(bulk_change, deactivated)) == [
        ThingSpaceWorld.read_row,
        SUBMIT,
        CHECK,
        OUTCOME,
    ]
