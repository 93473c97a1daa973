"""The ThingSpace pipeline in one process: a real SQS endpoint (moto server), real HTTP to the
ThingSpace simulator, the real database and token store, and the real consumer — with
django-q2 in sync mode so each hand-off runs inline.

Beyond the common cases: tokens refused mid-run are renewed once for the whole bulk change, a
request still pending past the confirm budget is confirmed again (never re-submitted), a
Failed request ends the device in ERROR with ThingSpace's text, and two rejected logins stop
every further login for the account."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

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
from bulkchanges.tokens import token_store
from bulkchanges.types import DeviceRef
from integrations.simulators.control import SimulatorControl
from integrations.thingspace_tokens import reset_login_failures
from tests.conftest import Queue, descriptions, drain, iccids, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNT = "0000123456-00001"
CLIENT_KEY = "ts-pipeline-key"
CLIENT_SECRET = "ts-pipeline-secret-9d41"
UWS_USER = "pondops-uws"
UWS_PASSWORD = "uws-pipeline-password-3e7b"
ACTIVATION = {"service_plan": "M2M-5GB", "mdn_zip_code": "10001"}
LOCKOUT = f"ThingSpace login failing for {ACCOUNT}; check the credentials"
LOGIN = ["Get ThingSpace OAuth token", "Start ThingSpace session"]
SUBMIT = "Submit ThingSpace status change"
CHECK = "Check ThingSpace request status"
OUTCOME = "Device status change result"


@dataclass
class ThingSpaceWorld:
    tenant: Tenant
    credentials: IntegrationAuthentication
    simulator: SimulatorControl

    def seed(self, numbers: list[str], state: str = "active") -> None:
        self.simulator.seed_thingspace_devices(
            account_name=ACCOUNT, devices=[{"iccid": iccid, "state": state} for iccid in numbers]
        )

    def use(self, **fields: Any) -> None:
        """Change the credentials row (a wrong secret, more concurrency)."""
        IntegrationAuthentication.objects.filter(pk=self.credentials.pk).update(**fields)
        self.credentials.refresh_from_db()

    def calls(self, op: str, key: str | None = None) -> int:
        return self.simulator.call_count("thingspace", op, key)


@pytest.fixture
def thingspace_world(simulator: SimulatorControl, device_statuses: None) -> ThingSpaceWorld:
    """A tenant with ThingSpace credentials pointing at the simulator (one device at a time,
    so the device that logs in is the first one)."""
    tenant = Tenant.objects.create(name="Acme IoT")
    simulator.add_thingspace_account(
        account_name=ACCOUNT,
        client_key=CLIENT_KEY,
        client_secret=CLIENT_SECRET,
        username=UWS_USER,
        password=UWS_PASSWORD,
        rate_limit=0,
    )
    credentials = IntegrationAuthentication.objects.create(
        tenant=tenant,
        integration="THINGSPACE",
        base_url=simulator.thingspace_base_url,
        account=ACCOUNT,
        client_id=CLIENT_KEY,
        secret=CLIENT_SECRET,
        username=UWS_USER,
        secret_2=UWS_PASSWORD,
        rate_limit=0,
        max_concurrency=1,
    )
    # The token store outlives a test's database rows: start from nothing cached.
    reset_login_failures(token_store, credentials.as_credentials())
    return ThingSpaceWorld(tenant, credentials, simulator)


def create_bulk_change(
    world: ThingSpaceWorld,
    numbers: list[str],
    *,
    status: str = "suspended",
    options: Mapping[str, str] | None = None,
    ignore_current: bool = True,
) -> BulkChange:
    """A bulk change created through the same services every entry point uses."""
    validated = status_update_request_validate(
        tenant=world.tenant,
        integration="THINGSPACE",
        update_status=status,
        is_ignore_current_status=ignore_current,
        options=options,
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


def wait_until_retry_scheduled(bulk_change: BulkChange) -> DeviceChange:
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
    return DeviceChange.objects.get(
        bulk_change=bulk_change, status=DeviceChange.Status.RETRY_SCHEDULED
    )


def assert_no_secret_recorded(bulk_change: BulkChange, *secrets: str) -> None:
    rows = BulkChangeLog.objects.filter(bulk_change=bulk_change)
    assert rows.exists()
    for row in rows:
        for text in (
            row.log_entry_description,
            row.request_text,
            row.response_text,
            row.error_text,
            row.process_by,
            row.request_id,
        ):
            for secret in secrets:
                assert secret not in text
    for last_error in DeviceChange.objects.filter(bulk_change=bulk_change).values_list(
        "last_error", flat=True
    ):
        for secret in secrets:
            assert secret not in last_error


# --- The common cases ------------------------------------------------------------------------


def test_mixed_bulk_change_ends_processed_with_errors_with_one_retry_and_audit_rows(
    thingspace_world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    world = thingspace_world
    numbers = iccids(4)
    world.seed(numbers)
    unknown = iccids(1, start=9000)[0]
    world.simulator.set_thingspace_completion_delay(0)
    world.simulator.add_fault("thingspace", "submit_action", key=numbers[2], status=503)

    bulk_change = drain(create_bulk_change(world, [*numbers, unknown]))

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    for iccid in numbers:
        processed = device_change(bulk_change, iccid)
        assert processed.status == DeviceChange.Status.PROCESSED
        assert processed.attempts == (1 if iccid == numbers[2] else 0)
        assert processed.carrier_request_id and processed.carrier_status_at
        assert world.simulator.thingspace_device(iccid)["state"] == "suspended"
        assert world.calls("submit_action", iccid) == (2 if iccid == numbers[2] else 1)
    assert Device.objects.filter(iccid__in=numbers, status__code="suspended").count() == 4
    failed = device_change(bulk_change, unknown)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == (
        f"HTTP 404 from ThingSpace: Device {unknown} not found in account {ACCOUNT}"
        " (REQUEST_FAILED.NotFound)"
    )
    # One device at a time: the first logs in for everyone, the others reuse its tokens.
    assert descriptions(bulk_change, device_change(bulk_change, numbers[0])) == [
        *LOGIN,
        SUBMIT,
        CHECK,
        OUTCOME,
    ]
    assert descriptions(bulk_change, device_change(bulk_change, numbers[2])) == [
        SUBMIT,
        "Retry scheduled",
        SUBMIT,
        CHECK,
        OUTCOME,
    ]
    assert descriptions(bulk_change, failed) == [SUBMIT, OUTCOME]
    assert descriptions(bulk_change).count("Bulk change completed") == 1
    assert (world.calls("oauth_token"), world.calls("session_login")) == (1, 1)


def test_429_with_retry_after_delays_the_retry_at_least_that_long(
    thingspace_world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    world = thingspace_world
    [iccid] = iccids(1)
    world.seed([iccid])
    world.simulator.add_fault("thingspace", "submit_action", key=iccid, status=429, retry_after="7")
    before = timezone.now()

    retried = wait_until_retry_scheduled(create_bulk_change(world, [iccid]))

    assert retried.next_attempt_at is not None
    assert retried.next_attempt_at >= before + timedelta(seconds=7)
    assert retried.last_error.startswith("HTTP 429 from ThingSpace: Simulated fault: 429")
    assert retried.carrier_request_id == ""  # nothing was submitted yet
    assert world.calls("submit_action", iccid) == 1


@pytest.mark.parametrize(
    ("field", "wrong", "message"),
    [
        pytest.param(
            "secret",
            "wrong-client-secret-5a",
            "ThingSpace rejected the OAuth client key and secret for ThingSpace account "
            f"{ACCOUNT} (HTTP 401 from ThingSpace: Invalid client key or secret"
            " (UnauthorizedAccess))",
            id="oauth-secret",
        ),
        pytest.param(
            "secret_2",
            "wrong-uws-password-6b",
            f"ThingSpace rejected the UWS user {UWS_USER} for ThingSpace account {ACCOUNT} "
            f"(HTTP 401 from ThingSpace: Invalid username or password for {UWS_USER}"
            " (UnauthorizedAccess))",
            id="uws-password",
        ),
    ],
)
def test_rejected_credentials_fail_the_device_naming_the_account_never_the_secret(
    thingspace_world: ThingSpaceWorld,
    sqs_queue: Queue,
    inline_workers: None,
    field: str,
    wrong: str,
    message: str,
) -> None:
    world = thingspace_world
    [iccid] = iccids(1)
    world.seed([iccid])
    world.use(**{field: wrong})

    bulk_change = drain(create_bulk_change(world, [iccid]))

    assert bulk_change.status == BulkChange.Status.ERROR
    failed = device_change(bulk_change, iccid)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == message
    assert_no_secret_recorded(bulk_change, wrong, CLIENT_SECRET, UWS_PASSWORD)
    assert world.calls("submit_action") == 0


# --- ThingSpace's own cases ------------------------------------------------------------------


def test_tokens_refused_mid_run_are_renewed_once_for_the_whole_bulk_change(
    thingspace_world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    world = thingspace_world
    world.use(max_concurrency=4)
    numbers = iccids(8)
    world.seed(numbers)
    world.simulator.set_thingspace_completion_delay(0)
    # ThingSpace drops every token after three device calls: the rest of the run sees 401s.
    world.simulator.expire_thingspace_tokens(after_requests=3)

    bulk_change = drain(create_bulk_change(world, numbers))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert (world.calls("oauth_token"), world.calls("session_login")) == (2, 2)
    for iccid in numbers:
        shown = world.simulator.thingspace_device(iccid)
        assert shown["state"] == "suspended"
        assert len(shown["requests"]) == 1  # a submit refused with 401 was repeated, not doubled
    statuses = BulkChangeLog.objects.filter(bulk_change=bulk_change).values_list(
        "response_status", flat=True
    )
    assert 401 in statuses  # the refusal is on the audit trail
    assert DeviceChange.objects.filter(bulk_change=bulk_change, attempts=0).count() == 8


def test_a_request_pending_past_the_confirm_budget_is_confirmed_again_never_resubmitted(
    thingspace_world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None, settings: Any
) -> None:
    settings.BULKCHANGE_CONFIRM_SECONDS = 1
    world = thingspace_world
    [iccid] = iccids(1)
    world.seed([iccid])
    world.simulator.set_thingspace_completion_delay(None)
    bulk_change = create_bulk_change(world, [iccid])

    waiting = wait_until_retry_scheduled(bulk_change)

    request_id = waiting.carrier_request_id
    assert request_id and waiting.carrier_submitted_at and waiting.carrier_status_at is None
    assert waiting.last_error == f"ThingSpace request {request_id} still pending after 1s"
    world.simulator.set_thingspace_completion_delay(0)  # ThingSpace finishes the request
    bulk_change = drain(bulk_change)

    assert bulk_change.status == BulkChange.Status.PROCESSED
    done = device_change(bulk_change, iccid)
    assert (done.status, done.attempts, done.carrier_request_id) == (
        DeviceChange.Status.PROCESSED,
        1,
        request_id,
    )
    assert world.calls("submit_action", iccid) == 1
    assert world.calls("request_status", iccid) >= 3
    rows = descriptions(bulk_change, done)
    assert rows[:3] == [*LOGIN, SUBMIT]
    assert rows[rows.index("Retry scheduled") :] == ["Retry scheduled", CHECK, OUTCOME]
    shown = world.simulator.thingspace_device(iccid)
    assert shown["state"] == "suspended"
    assert [request["requestId"] for request in shown["requests"]] == [request_id]


def test_a_failed_request_ends_the_device_in_error_with_thingspaces_text(
    thingspace_world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    world = thingspace_world
    active, deactivated = iccids(2)
    world.seed([active])
    world.seed([deactivated], state="deactivated")
    world.simulator.set_thingspace_completion_delay(0)

    bulk_change = drain(create_bulk_change(world, [active, deactivated]))

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    failed = device_change(bulk_change, deactivated)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == (
        f"ThingSpace request {failed.carrier_request_id} failed: "
        f"Device {deactivated} is deactivated; suspend is not allowed"
    )
    row = BulkChangeLog.objects.filter(device_change=failed, log_entry_description=CHECK).last()
    assert row is not None and row.has_errors and "is deactivated" in row.error_text
    assert device_change(bulk_change, active).status == DeviceChange.Status.PROCESSED


def test_two_rejected_logins_stop_every_further_login_for_the_account(
    thingspace_world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    world = thingspace_world
    world.use(secret_2="wrong-uws-password-6b", max_concurrency=4)
    numbers = iccids(6)
    world.seed(numbers)

    first = drain(create_bulk_change(world, numbers))
    second = drain(create_bulk_change(world, numbers[:3]))

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
    assert_no_secret_recorded(first, "wrong-uws-password-6b", CLIENT_SECRET)


def test_logins_resume_once_the_credentials_are_fixed_and_the_count_reset(
    thingspace_world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    world = thingspace_world
    [iccid] = iccids(1)
    world.seed([iccid])
    world.simulator.set_thingspace_completion_delay(0)
    world.use(secret_2="wrong-uws-password-6b")
    drain(create_bulk_change(world, [iccid]))
    drain(create_bulk_change(world, [iccid]))

    world.use(secret_2=UWS_PASSWORD)
    reset_login_failures(token_store, world.credentials.as_credentials())
    bulk_change = drain(create_bulk_change(world, [iccid]))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    assert world.calls("session_login") == 3


def test_active_restores_suspended_lines_and_activates_the_others_with_plan_and_zip(
    thingspace_world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    world = thingspace_world
    suspended, deactivated = iccids(2)
    world.seed([suspended], state="suspended")
    world.seed([deactivated], state="deactivated")
    world.simulator.set_thingspace_completion_delay(0)

    bulk_change = drain(
        create_bulk_change(world, [suspended, deactivated], status="active", options=ACTIVATION)
    )

    assert bulk_change.status == BulkChange.Status.PROCESSED
    restored = world.simulator.thingspace_device(suspended)
    activated = world.simulator.thingspace_device(deactivated)
    assert (restored["state"], activated["state"]) == ("active", "active")
    assert [(r["action"], r["fields"]) for r in restored["requests"]] == [("restore", {})]
    assert [(r["action"], r["fields"]) for r in activated["requests"]] == [
        ("activate", {"servicePlan": "M2M-5GB", "mdnZipCode": "10001"})
    ]
    assert Device.objects.filter(status__code="active").count() == 2
    assert descriptions(bulk_change, device_change(bulk_change, deactivated)) == [
        "Read ThingSpace device",
        SUBMIT,
        CHECK,
        OUTCOME,
    ]


def test_active_without_plan_and_zip_is_refused_at_creation_per_field(
    thingspace_world: ThingSpaceWorld,
) -> None:
    with pytest.raises(ApplicationError) as raised:
        create_bulk_change(thingspace_world, iccids(1), status="active")

    assert raised.value.fields == {
        "options": [
            "service_plan is required to activate ThingSpace lines",
            "mdn_zip_code is required to activate ThingSpace lines",
        ]
    }


def test_a_line_already_in_the_target_at_thingspace_is_skipped_without_a_submit(
    thingspace_world: ThingSpaceWorld, sqs_queue: Queue, inline_workers: None
) -> None:
    world = thingspace_world
    [iccid] = iccids(1)
    world.seed([iccid], state="suspended")

    bulk_change = drain(create_bulk_change(world, [iccid], ignore_current=False))

    skipped = device_change(bulk_change, iccid)
    assert skipped.status == DeviceChange.Status.SKIPPED
    assert world.calls("list_devices", iccid) == 1
    assert world.calls("submit_action") == 0
