"""What every carrier's bulk changes do alike, through the real pipeline: a real SQS endpoint
(moto server), real HTTP to the carrier's simulator, the real database and consumer, django-q2
in sync mode (inline_workers). Each case runs once per carrier; what differs (the carrier's
messages, its audit rows, how many faults) is in the parameter tables. Each carrier's own cases
are in ``test_<carrier>_pipeline.py``; POND's are in test_processing.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from bulkchanges.consumer import SqsConsumer
from bulkchanges.errors import ApplicationError
from bulkchanges.models import BulkChange, BulkChangeLog, Device, DeviceChange
from integrations.base import Step, processor_class
from integrations.simulators.control import SimulatorControl
from tests.conftest import Queue, descriptions, drain
from tests.fixtures.pipeline import (
    COMPLETED,
    OUTCOME,
    RETRY,
    WORLDS,
    CarrierWorld,
    JasperWorld,
    TealWorld,
    TelegenceWorld,
    ThingSpaceWorld,
    assert_no_secret_recorded,
    device_change,
    run_until_retry_scheduled,
)

pytestmark = pytest.mark.django_db(transaction=True)

TS_ACCOUNT = ThingSpaceWorld.ACCOUNT
TS_UWS_USER = ThingSpaceWorld.UWS_USER


@pytest.fixture
def world(
    request: pytest.FixtureRequest, simulator: SimulatorControl, device_statuses: None
) -> CarrierWorld:
    """The world of the carrier the case is parametrised with (``indirect``)."""
    return WORLDS[request.param].arrange(simulator)


@pytest.mark.parametrize(
    ("world", "faults", "unknown_error", "retry_error"),
    [
        pytest.param(
            "jasper",
            1,
            "HTTP 404 from Jasper: Resource not found - Invalid ICCID (20000001)",
            "HTTP 503 from Jasper: Simulated fault: 503 Service Unavailable (50300000)",
            id="jasper",
        ),
        pytest.param(
            "telegence",
            2,
            "HTTP 404 from Telegence: unknown line, or a change the line does not allow "
            "(/service/) (id 306760c0-4c63-11f0-8b71-000000000001)",
            "HTTP 503 from Telegence: Simulated fault: 503 Service Unavailable",
            id="telegence",
        ),
        pytest.param(
            "teal",
            1,
            "HTTP 404 from Teal: eSIM {key} not found (ESIM_NOT_FOUND)",
            "HTTP 503 from Teal: Simulated fault: 503 Service Unavailable (GENERIC_ERROR)",
            id="teal",
        ),
        pytest.param(
            "thingspace",
            1,
            f"HTTP 400 from ThingSpace: Device {{key}} not found in account {TS_ACCOUNT}"
            " (UnifiedWebService.REQUEST_FAILED.DeviceNotFound)",
            "HTTP 503 from ThingSpace: Simulated fault: 503 Service Unavailable"
            " (REQUEST_FAILED.UnexpectedError)",
            id="thingspace",
        ),
    ],
    indirect=["world"],
)
def test_mixed_bulk_change_ends_processed_with_errors_with_the_right_devices_and_rows(
    world: CarrierWorld,
    sqs_queue: Queue,
    inline_workers: None,
    faults: int,
    unknown_error: str,
    retry_error: str,
) -> None:
    known = world.devices(4)
    [unknown] = world.devices(1, start=9000)
    flaky = known[1]
    world.seed(known)
    world.simulator.add_fault(
        world.carrier, world.update_op, key=world.key(flaky), status=503, times=faults
    )

    bulk_change = drain(world.create([*known, unknown]))

    assert bulk_change.status == BulkChange.Status.PROCESSED_WITH_ERRORS
    for device in known:
        done = device_change(bulk_change, device)
        assert done.status == DeviceChange.Status.PROCESSED
        assert done.attempts == (faults if device is flaky else 0)
        assert done.carrier_status_at is not None
        assert bool(done.carrier_request_id) is world.keeps_request_ids
        submits = Step.SUBMIT in processor_class(world.integration).steps
        assert (done.carrier_submitted_at is not None) is submits
        assert world.carrier_status(device) == world.target_state
        assert world.inventory_status(device) == world.target_state
        calls = faults + 1 if device is flaky else 1
        assert world.calls(world.update_op, world.key(device)) == calls
    failed = device_change(bulk_change, unknown)
    assert failed.status == DeviceChange.Status.ERROR
    assert failed.attempts == 0
    assert failed.last_error == unknown_error.format(key=world.key(unknown))
    assert descriptions(bulk_change, failed) == [world.update_row, OUTCOME]
    assert world.calls(world.update_op, world.key(unknown)) == 1
    assert not Device.objects.filter(iccid=unknown.iccid).exists()
    retried = device_change(bulk_change, flaky)
    assert descriptions(bulk_change, retried) == world.retried_change_rows(faults)
    assert retried.last_error == ""
    retry_errors = BulkChangeLog.objects.filter(
        device_change=retried, log_entry_description=RETRY
    ).values_list("error_text", flat=True)
    assert list(retry_errors) == [retry_error] * faults
    first, *_, last = (device_change(bulk_change, device) for device in known)
    assert descriptions(bulk_change, first) == [*world.login_rows, *world.change_rows]
    assert descriptions(bulk_change, last) == world.change_rows  # the first logged in for all
    assert [world.calls(op) for op in world.login_ops] == [1] * len(world.login_ops)
    assert descriptions(bulk_change).count(COMPLETED) == 1
    confirm_reads = len(known) if world.confirms_by_read else 0
    # A carrier whose repeat safety reads before sending a write again reads once per fault.
    repeat_reads = world.retried_change_rows(faults).count(world.read_row) - (
        world.change_rows.count(world.read_row)
    )
    assert world.calls(world.read_op) == confirm_reads + repeat_reads


@pytest.mark.parametrize(
    ("world", "retry_after", "message", "request_id_kept"),
    [
        pytest.param(
            "jasper",
            3,
            "HTTP 429 from Jasper: Exceeding Tariff limits (40000029)",
            False,
            id="jasper",
        ),
        pytest.param(
            "telegence",
            "120",
            "HTTP 429 from Telegence: Simulated fault: 429 Too Many Requests",
            False,
            id="telegence",
        ),
        pytest.param(
            "teal",
            45,
            "HTTP 429 from Teal: Simulated fault: 429 Too Many Requests (GENERIC_ERROR)",
            True,  # Teal's request id is ours, stored before the submit, kept to resubmit
            id="teal",
        ),
        pytest.param(
            "thingspace",
            "7",
            "HTTP 429 from ThingSpace: Simulated fault: 429 Too Many Requests"
            " (REQUEST_FAILED.TooManyRequests)",
            False,  # nothing was submitted yet
            id="thingspace",
        ),
    ],
    indirect=["world"],
)
def test_429_with_retry_after_schedules_the_retry_at_least_that_long_later(
    world: CarrierWorld,
    sqs_queue: Queue,
    inline_workers: None,
    retry_after: int | str,
    message: str,
    request_id_kept: bool,
) -> None:
    [device] = world.devices(1)
    world.seed([device])
    world.simulator.add_fault(
        world.carrier, world.update_op, key=world.key(device), status=429, retry_after=retry_after
    )
    seconds = int(retry_after)
    before = timezone.now()
    bulk_change = world.create([device])

    waiting = run_until_retry_scheduled(bulk_change)

    assert waiting.next_attempt_at is not None
    assert waiting.next_attempt_at >= before + timedelta(seconds=seconds)
    delay = (waiting.next_attempt_at - timezone.now()).total_seconds()
    assert seconds - 5 < delay <= seconds
    assert waiting.last_error == message
    assert bool(waiting.carrier_request_id) is request_id_kept
    assert descriptions(bulk_change, waiting) == [*world.login_rows, world.update_row, RETRY]
    SqsConsumer(wait_seconds=1).poll_once()  # the retry message is delayed: nothing is due yet
    assert world.calls(world.update_op, world.key(device)) == 1
    assert world.carrier_status(device) == world.seeded


@pytest.mark.parametrize(
    ("world", "field", "wrong", "message", "rows", "redacted", "update_calls"),
    [
        pytest.param(
            "jasper",
            "secret",
            "jasper-wrong-key-0d5a93",
            f"Jasper rejected the credentials of {JasperWorld.ACCOUNT_LABEL} (the API key may "
            "have expired) (HTTP 401 from Jasper: Invalid credentials (10000001))",
            [JasperWorld.update_row, OUTCOME],
            set(),  # Basic auth: the request row shows no credentials at all
            1,
            id="jasper",
        ),
        pytest.param(
            "telegence",
            "secret",
            "tg-wrong-secret-8c1f0a",
            "Telegence rejected the app id and secret for Telegence billing account 287654321 "
            "(HTTP 401 from Telegence: Invalid app-id or app-secret for app pondops-app)",
            [TelegenceWorld.update_row, OUTCOME],
            {"app-secret: [REDACTED]"},
            1,
            id="telegence",
        ),
        pytest.param(
            "teal",
            "secret",
            "teal-wrong-secret-77aa",
            "Teal rejected the ApiKey/ApiSecret of Teal account Acme fleet "
            "(HTTP 401 from Teal: Invalid ApiKey or ApiSecret (UNAUTHORIZED))",
            [TealWorld.update_row, OUTCOME],
            {"ApiSecret: [REDACTED]"},
            1,
            id="teal",
        ),
        pytest.param(
            "thingspace",
            "secret",
            "wrong-client-secret-5a",
            "ThingSpace rejected the OAuth client key and secret for ThingSpace account "
            f"{TS_ACCOUNT} (HTTP 401 from ThingSpace: Invalid client key or secret"
            " (UnauthorizedAccess))",
            [ThingSpaceWorld.login_rows[0], OUTCOME],
            {"Authorization: [REDACTED]"},
            0,  # the login fails before any submit
            id="thingspace-oauth-secret",
        ),
        pytest.param(
            "thingspace",
            "secret_2",
            "wrong-uws-password-6b",
            f"ThingSpace rejected the UWS user {TS_UWS_USER} for ThingSpace account {TS_ACCOUNT} "
            f"(HTTP 401 from ThingSpace: Invalid username or password for {TS_UWS_USER}"
            " (UnauthorizedAccess))",
            [*ThingSpaceWorld.login_rows, OUTCOME],
            {"Authorization: [REDACTED]", '{"username": "pondops-uws", "password": "[REDACTED]"}'},
            0,
            id="thingspace-uws-password",
        ),
    ],
    indirect=["world"],
)
def test_rejected_credentials_fail_every_device_naming_the_account_never_the_secret(
    world: CarrierWorld,
    sqs_queue: Queue,
    inline_workers: None,
    field: str,
    wrong: str,
    message: str,
    rows: list[str],
    redacted: set[str],
    update_calls: int,
) -> None:
    devices = world.devices(2)
    world.seed(devices)
    world.use(**{field: wrong})

    bulk_change = drain(world.create(devices))

    assert bulk_change.status == BulkChange.Status.ERROR
    for device in devices:
        failed = device_change(bulk_change, device)
        assert failed.status == DeviceChange.Status.ERROR
        assert failed.attempts == 0
        assert failed.last_error == message
        assert descriptions(bulk_change, failed) == rows
        refused = BulkChangeLog.objects.get(device_change=failed, response_status=401)
        assert refused.log_entry_description == rows[-2]
        # Headers and body (Teal's request line holds the callback token, redacted too).
        lines = refused.request_text.splitlines()[1:]
        shown = {line for line in lines if "[REDACTED]" in line}
        assert shown == redacted
        assert world.calls(world.update_op, world.key(device)) == update_calls
        assert world.carrier_status(device) == world.seeded
    rows_and_completion = len(devices) * len(rows) + 1
    assert BulkChangeLog.objects.filter(bulk_change=bulk_change).count() == rows_and_completion
    callback_token = world.credentials.callback_token
    assert_no_secret_recorded(bulk_change, wrong, *world.secrets, callback_token)


JASPER_SETTABLE = "ACTIVATED, DEACTIVATED, ACTIVATION_READY, TEST_READY, INVENTORY, RETIRED"


@pytest.mark.parametrize(
    ("world", "status", "message"),
    [
        *(
            pytest.param(
                "jasper",
                status,
                f"Jasper cannot set status {status!r}; allowed: {JASPER_SETTABLE}",
                id=f"jasper-{status}",
            )
            for status in ("PURGED", "REPLACED", "SUSPENDED")
        ),
        pytest.param(
            "telegence",
            "Deactivated",
            "Telegence cannot set status 'Deactivated'; allowed: Active, Suspended, Cancelled",
            id="telegence-Deactivated",
        ),
        *(
            pytest.param(
                "teal",
                status,
                f"Teal cannot set status {status!r}; allowed: enabled, disabled",
                id=f"teal-{status}",
            )
            for status in ("online", "stopped", "ACTIVE")
        ),
    ],
    indirect=["world"],
)
def test_a_status_the_carrier_cannot_set_is_refused_at_creation_with_the_allowed_values(
    world: CarrierWorld, status: str, message: str
) -> None:
    with pytest.raises(ApplicationError) as raised:
        world.create(world.devices(1), status=status)

    assert raised.value.fields == {"update_status": [message]}
    assert not BulkChange.objects.exists()


@pytest.mark.parametrize(
    ("world", "status", "options", "errors"),
    [
        pytest.param(
            "jasper",
            "DEACTIVATED",
            {"reason_code": "FF"},
            ["Jasper takes no reason_code; leave it empty"],
            id="jasper-takes-no-reason-code",
        ),
        pytest.param(
            "teal",
            "disabled",
            {"service_plan": "IoT 1GB", "reason_code": "FF"},
            [
                "Teal takes no reason_code; leave it empty",
                "Teal takes no service_plan; leave it empty",
            ],
            id="teal-takes-no-thingspace-options",
        ),
        pytest.param(
            "telegence",
            "Suspended",
            {"reason_code": "C R"},
            [
                "reason_code 'C R' is not a Telegence reason code"
                " (up to 10 letters or digits, e.g. CR)"
            ],
            id="telegence-unknown-reason-code",
        ),
        pytest.param(
            "thingspace",
            "active",
            {},
            [
                "service_plan is required to activate ThingSpace lines",
                "mdn_zip_code is required to activate ThingSpace lines",
            ],
            id="thingspace-active-without-plan-and-zip",
        ),
    ],
    indirect=["world"],
)
def test_options_that_do_not_fit_the_carrier_are_refused_at_creation_per_field(
    world: CarrierWorld, status: str, options: dict[str, str], errors: list[str]
) -> None:
    with pytest.raises(ApplicationError) as raised:
        world.create(world.devices(1), status=status, options=options)

    assert raised.value.fields == {"options": errors}
    assert not BulkChange.objects.exists()


@pytest.mark.parametrize(
    ("world", "already"),
    [
        pytest.param("jasper", "DEACTIVATED", id="jasper"),
        pytest.param("telegence", "Suspended", id="telegence"),
        pytest.param("teal", "waiting", id="teal"),
        pytest.param("thingspace", "suspended", id="thingspace"),
    ],
    indirect=["world"],
)
def test_without_ignore_current_status_a_device_already_there_is_read_and_skipped(
    world: CarrierWorld, sqs_queue: Queue, inline_workers: None, already: str
) -> None:
    there, changing = world.devices(2)
    world.seed([there], status=already)
    world.seed([changing])

    bulk_change = drain(world.create([there, changing], ignore_current=False))

    assert bulk_change.status == BulkChange.Status.PROCESSED
    skipped = device_change(bulk_change, there)
    assert skipped.status == DeviceChange.Status.SKIPPED
    assert descriptions(bulk_change, skipped) == [*world.login_rows, *world.reading_rows, OUTCOME]
    assert world.calls(world.read_op, world.key(there)) == 1
    assert world.calls(world.update_op, world.key(there)) == 0
    assert world.carrier_status(there) == already
    changed = device_change(bulk_change, changing)
    assert changed.status == DeviceChange.Status.PROCESSED
    assert descriptions(bulk_change, changed) == [*world.reading_rows, *world.change_rows]
    assert world.carrier_status(changing) == world.target_state
    assert world.inventory_status(changing) == world.target_state
