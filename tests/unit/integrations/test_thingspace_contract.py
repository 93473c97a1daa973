"""ThingSpace against its wire contract (docs/carriers/thingspace.md), call by call: the exact
method, path, headers and body of every call, and the handling of every documented answer —
the two-token refusals (401, 400 SessionToken.*), the sliding session, errors by errorCode,
SUBMIT per action (IMEI/SKU activations, DeviceAlreadyActive, repeat safety), CONFIRM
(callbacks first, the status call, the wait for a failure's reason, the reconciling read),
the activation limit and the CarrierService callback parser."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses

from integrations.base import (
    AuthenticationError,
    CallbackEvent,
    CallbackOutcome,
    CallbackRejected,
    CallRecord,
    CarrierPending,
    Credentials,
    PermanentError,
    Progress,
    Step,
    TransientError,
)
from integrations.base.protocol import CallbackAuth
from integrations.thingspace import (
    SUBMIT_AGAIN,
    ThingSpaceClient,
    ThingSpaceProcessor,
    iccid_id,
)
from tests.unit.integrations.support import sent, sent_json
from tests.unit.integrations.test_thingspace import (
    ACCESS_KEY,
    ACCOUNT,
    BASE_URL,
    CREDENTIALS,
    ICCID,
    LIST_URL,
    LOGIN_URL,
    REQUEST_ID,
    SESSION_KEY,
    STATUS_URL,
    TOKEN_URL,
    RecordingStore,
    action_url,
    context,
    expect_login,
    seed_tokens,
    ts_error,
)

IMEI = "990013907835573"
M2M = f"{BASE_URL}/api/m2m/v1"
CALLBACKS_URL = f"{M2M}/callbacks/{ACCOUNT}"
EXPIRED = "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"
CALLBACK_USER = "pondops-cb-user"
CALLBACK_PASSWORD = "cb-password-0123456789abcdefghijklmnopqrstuv"
WITH_CALLBACKS = Credentials(
    **{
        **CREDENTIALS.__dict__,
        "callback_username": CALLBACK_USER,
        "callback_password": CALLBACK_PASSWORD,
    }
)
ACTIVATION = {"service_plan": "M2M-5GB", "mdn_zip_code": "10001"}


def listed(state: str, *, imei: str = "") -> dict[str, Any]:
    ids = [{"kind": "iccid", "id": ICCID}] + ([{"kind": "IMEI", "id": imei}] if imei else [])
    return {
        "hasMoreData": False,
        "devices": [
            {
                "accountName": ACCOUNT,
                "deviceIds": ids,
                "carrierInformations": [{"carrierName": "Verizon Wireless", "state": state}],
            }
        ],
    }


def status_body(status: str) -> dict[str, str]:
    return {"requestId": REQUEST_ID, "status": status}


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def client(audit: list[CallRecord], store: RecordingStore) -> ThingSpaceClient:
    seed_tokens(store)
    return ThingSpaceClient(
        credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1), token_store=store
    )


@dataclass
class FakeClock:
    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def processor(audit: list[CallRecord], store: RecordingStore, settings: Any) -> ThingSpaceProcessor:
    settings.BULKCHANGE_CONFIRM_SECONDS = 1
    settings.BULKCHANGE_CARRIER_TIME_SCALE = 1.0
    seed_tokens(store)
    processor = ThingSpaceProcessor(
        credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1), token_store=store
    )
    clock = FakeClock()
    processor.clock = clock.monotonic  # type: ignore[method-assign]
    processor.sleep = clock.sleep  # type: ignore[method-assign]
    return processor


def submitted(*, hours: float = 2, ago: float = 0, **fields: Any) -> Progress:
    at = datetime.now(UTC) - timedelta(seconds=ago)
    return Progress(
        carrier_request_id=REQUEST_ID,
        carrier_submitted_at=at,
        confirm_deadline_at=at + timedelta(hours=hours),
        write_started_at=at,
        **fields,
    )


def headers_of(mocked: responses.RequestsMock, index: int) -> dict[str, str]:
    return dict(sent(mocked, index).headers)


# --- Every call: method, path, headers, body ----------------------------------------------


def test_every_data_call_sends_both_tokens_accept_and_content_type(
    client: ThingSpaceClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(STATUS_URL, json=status_body("Pending"))

    client.request_status(request_id=REQUEST_ID)

    headers = headers_of(mocked, 0)
    assert headers["Authorization"] == "Bearer access-0"
    assert headers["VZ-M2M-Token"] == "session-0"
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"


def test_read_sends_the_account_and_iccid_and_takes_the_state_and_imei(
    client: ThingSpaceClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(LIST_URL, json=listed("Suspend", imei=IMEI))

    device = client.read_device(iccid=ICCID)

    assert sent_json(sent(mocked, 0)) == {
        "accountName": ACCOUNT,
        "deviceId": {"kind": "iccid", "id": ICCID},
    }
    assert device is not None
    assert (device.state, device.target, device.imei) == ("Suspend", "suspended", IMEI)


def test_an_empty_device_list_means_not_on_the_account(
    client: ThingSpaceClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(LIST_URL, json={"hasMoreData": False, "devices": []})

    assert client.read_device(iccid=ICCID) is None


def test_the_status_call_is_a_get_of_the_accounts_request(
    client: ThingSpaceClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(STATUS_URL, json=status_body("Failure"))

    status = client.request_status(request_id=REQUEST_ID)

    assert sent(mocked, 0).method == "GET"
    assert sent(mocked, 0).url == STATUS_URL
    assert (status.status, status.failed, status.succeeded) == ("Failure", True, False)


@pytest.mark.parametrize(
    ("status", "succeeded", "failed"),
    [
        ("Success", True, False),
        ("SUCCESS", True, False),
        ("Failed", False, True),
        ("failure", False, True),
        ("Pending", False, False),
    ],
)
def test_status_values_are_compared_without_case(
    client: ThingSpaceClient,
    mocked: responses.RequestsMock,
    status: str,
    succeeded: bool,
    failed: bool,
) -> None:
    mocked.get(STATUS_URL, json=status_body(status))

    answer = client.request_status(request_id=REQUEST_ID)

    assert (answer.succeeded, answer.failed) == (succeeded, failed)


def test_callbacks_are_listed_registered_and_deregistered_at_their_paths(
    client: ThingSpaceClient, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    url = "https://pondops.example.com/carriers/thingspace/callbacks/9/"
    mocked.get(
        CALLBACKS_URL, json=[{"accountName": ACCOUNT, "serviceName": "CarrierService", "url": url}]
    )
    mocked.post(CALLBACKS_URL, json={"accountName": ACCOUNT, "serviceName": "CarrierService"})
    mocked.delete(
        f"{CALLBACKS_URL}/name/CarrierService",
        json={"accountName": ACCOUNT, "serviceName": "CarrierService"},
    )

    assert client.callbacks() == [
        {"accountName": ACCOUNT, "serviceName": "CarrierService", "url": url}
    ]
    client.register_callback(url=url, username=CALLBACK_USER, password=CALLBACK_PASSWORD)
    client.deregister_callback()

    assert sent_json(sent(mocked, 1)) == {
        "name": "CarrierService",
        "url": url,
        "username": CALLBACK_USER,
        "password": CALLBACK_PASSWORD,
    }
    assert sent(mocked, 2).method == "DELETE"
    assert CALLBACK_PASSWORD not in audit[1].request_text


# --- Two tokens: refusals, the sliding session ---------------------------------------------


def test_a_401_drops_both_tokens_logs_in_again_and_repeats_once(
    client: ThingSpaceClient, mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    mocked.get(STATUS_URL, status=401, json=ts_error("Invalid Credentials", "UnauthorizedAccess"))
    expect_login(mocked, number=1)
    mocked.get(STATUS_URL, json=status_body("Pending"))

    client.request_status(request_id=REQUEST_ID)

    assert [c.request.url for c in mocked.calls] == [STATUS_URL, TOKEN_URL, LOGIN_URL, STATUS_URL]
    assert store.get(ACCESS_KEY) == "access-1"


@pytest.mark.parametrize("specific", ["Expired", "Format", "Invalid"])
def test_a_400_naming_the_session_token_opens_a_new_session_only_and_repeats_once(
    client: ThingSpaceClient, mocked: responses.RequestsMock, store: RecordingStore, specific: str
) -> None:
    code = f"UnifiedWebService.REQUEST_FAILED.SessionToken.{specific}"
    mocked.get(STATUS_URL, status=400, json=ts_error("Session token problem", code))
    mocked.post(LOGIN_URL, json={"sessionToken": "session-new"})
    mocked.get(STATUS_URL, json=status_body("Success"))

    assert client.request_status(request_id=REQUEST_ID).succeeded

    assert [c.request.url for c in mocked.calls] == [STATUS_URL, LOGIN_URL, STATUS_URL]
    assert sent(mocked, 1).headers["Authorization"] == "Bearer access-0"  # access token kept
    assert sent(mocked, 2).headers["VZ-M2M-Token"] == "session-new"
    assert store.get(ACCESS_KEY) == "access-0"


def test_the_same_session_refusal_again_is_permanent_naming_the_account(
    client: ThingSpaceClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(STATUS_URL, status=400, json=ts_error("Session expired", EXPIRED))
    mocked.post(LOGIN_URL, json={"sessionToken": "session-new"})
    mocked.get(STATUS_URL, status=400, json=ts_error("Session expired", EXPIRED))

    with pytest.raises(AuthenticationError) as raised:
        client.request_status(request_id=REQUEST_ID)

    assert raised.value.message.startswith(
        f"ThingSpace rejected the session for ThingSpace account {ACCOUNT} (HTTP 400"
    )


def test_each_successful_call_renews_the_sessions_twenty_minutes(
    client: ThingSpaceClient, mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    mocked.get(STATUS_URL, json=status_body("Pending"))
    store.ttls.clear()

    client.request_status(request_id=REQUEST_ID)

    assert store.ttls == {SESSION_KEY: 20 * 60 - 60}


@pytest.mark.parametrize(
    ("status", "code", "error_type", "retry_after"),
    [
        pytest.param(429, "REQUEST_FAILED.TooManyRequests", TransientError, 7.0, id="429"),
        pytest.param(500, "REQUEST_FAILED.UnexpectedError", TransientError, None, id="500"),
        pytest.param(501, "REQUEST_FAILED.UnexpectedError", TransientError, None, id="501"),
        pytest.param(403, "REQUEST_FAILED.Forbidden", AuthenticationError, None, id="403"),
        pytest.param(404, "REQUEST_FAILED.NotFound", PermanentError, None, id="404"),
        pytest.param(
            400,
            "UnifiedWebService.REQUEST_FAILED.DeviceNotFound",
            PermanentError,
            None,
            id="device-not-found",
        ),
    ],
)
def test_errors_are_classified_by_status_and_code(
    client: ThingSpaceClient,
    mocked: responses.RequestsMock,
    status: int,
    code: str,
    error_type: type[Exception],
    retry_after: float | None,
) -> None:
    headers = {"Retry-After": "7"} if retry_after else {}
    mocked.post(action_url("suspend"), status=status, json=ts_error("No", code), headers=headers)

    with pytest.raises(error_type) as raised:
        client.submit_action(action="suspend", device_ids=[iccid_id(ICCID)], idempotency_key="")

    assert type(raised.value) is error_type
    assert code in raised.value.message  # type: ignore[attr-defined]
    if retry_after:
        assert raised.value.retry_after == retry_after  # type: ignore[attr-defined]


def test_activations_are_held_to_100_a_minute_per_account(
    client: ThingSpaceClient, mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    now = [6000.0 + 30]
    sleeps: list[float] = []
    client.wall_clock = lambda: now[0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    client.sleep = sleep
    store.set("thingspace:9:activations", (100, 100), ttl=120)  # minute 100: all 100 used
    mocked.post(action_url("activate"), json={"requestId": REQUEST_ID})

    client.submit_action(action="activate", device_ids=[iccid_id(ICCID)], idempotency_key="")

    assert sleeps == [30.0]  # until the next minute
    assert store.get("thingspace:9:activations") == (101, 1)


# --- SUBMIT -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "options", "action", "extra"),
    [
        pytest.param("suspended", {}, "suspend", {}, id="suspend"),
        pytest.param(
            "deactivated",
            {},
            "deactivate",
            {"reasonCode": "FF", "etfWaiver": True},
            id="deactivate-etf-waived-by-default",
        ),
        pytest.param(
            "deactivated",
            {"etf_waiver": "false"},
            "deactivate",
            {"reasonCode": "FF", "etfWaiver": False},
            id="deactivate-etf-option",
        ),
    ],
)
def test_submit_posts_one_device_per_request(
    processor: ThingSpaceProcessor,
    mocked: responses.RequestsMock,
    target: str,
    options: dict[str, str],
    action: str,
    extra: dict[str, Any],
) -> None:
    mocked.post(action_url(action), status=202, json={"requestId": REQUEST_ID})

    result = processor.perform(Step.SUBMIT, context(target, options=options))

    assert sent_json(sent(mocked, 0)) == {
        "accountName": ACCOUNT,
        "devices": [{"deviceIds": [{"kind": "iccid", "id": ICCID}]}],
        **extra,
    }
    assert sent(mocked, 0).headers["Idempotency-Key"] == "pondops-77-submit"
    assert result.updates["carrier_request_id"] == REQUEST_ID
    assert result.note == f"{action} request {REQUEST_ID}"
    assert processor.confirm_deadline(context(target)) == timedelta(hours=2)


def test_active_restores_a_suspended_line(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.post(LIST_URL, json=listed("suspended"))
    mocked.post(action_url("restore"), json={"requestId": REQUEST_ID})

    processor.perform(Step.SUBMIT, context("active", options=ACTIVATION))

    assert sent_json(sent(mocked, 1))["devices"] == [{"deviceIds": [iccid_id(ICCID)]}]
    assert processor.confirm_deadline(context("active")) == timedelta(hours=2)


@pytest.mark.parametrize(
    ("inventory_imei", "read_imei", "expected"),
    [
        pytest.param(IMEI, "", IMEI, id="imei-from-inventory"),
        pytest.param("", IMEI, IMEI, id="imei-from-the-read"),
    ],
)
def test_activate_pairs_the_imei_with_the_iccid(
    processor: ThingSpaceProcessor,
    mocked: responses.RequestsMock,
    inventory_imei: str,
    read_imei: str,
    expected: str,
) -> None:
    mocked.post(LIST_URL, json=listed("deactive", imei=read_imei))
    mocked.post(action_url("activate"), json={"requestId": REQUEST_ID})

    processor.perform(Step.SUBMIT, context("active", options=ACTIVATION, imei=inventory_imei))

    assert sent_json(sent(mocked, 1)) == {
        "accountName": ACCOUNT,
        "devices": [{"deviceIds": [{"kind": "imei", "id": expected}, iccid_id(ICCID)]}],
        "servicePlan": "M2M-5GB",
        "mdnZipCode": "10001",
    }
    assert processor.confirm_deadline(context("active")) == timedelta(hours=12)


def test_activate_without_an_imei_sends_the_sku_number(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.post(LIST_URL, json=listed("pre-active"))
    mocked.post(action_url("activate"), json={"requestId": REQUEST_ID})

    processor.perform(
        Step.SUBMIT, context("active", options={**ACTIVATION, "sku_number": "SKU-4G"})
    )

    body = sent_json(sent(mocked, 1))
    assert body["devices"] == [{"deviceIds": [iccid_id(ICCID)]}]
    assert body["skuNumber"] == "SKU-4G"


def test_activate_without_imei_or_sku_fails_before_submitting(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.post(LIST_URL, json=listed("deactive"))

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.SUBMIT, context("active", options=ACTIVATION))

    assert raised.value.message == (
        f"ThingSpace activation needs the IMEI (or a SKU number) for ICCID {ICCID}"
    )
    assert len(mocked.calls) == 1  # the read only


def test_an_already_active_line_gets_nothing_submitted(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.post(LIST_URL, json=listed("active"))

    result = processor.perform(Step.SUBMIT, context("active", options=ACTIVATION))

    assert set(result.updates) == {"carrier_submitted_at", "carrier_status_at"}
    assert result.note == "already active at ThingSpace; nothing submitted"


def test_device_already_active_on_activate_is_done(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.post(LIST_URL, json=listed("deactive", imei=IMEI))
    mocked.post(
        action_url("activate"),
        status=400,
        json=ts_error("Device is active", "UnifiedWebService.REQUEST_FAILED.DeviceAlreadyActive"),
    )

    result = processor.perform(Step.SUBMIT, context("active", options=ACTIVATION))

    assert set(result.updates) == {"carrier_submitted_at", "carrier_status_at"}


def test_a_submit_whose_answer_may_be_lost_reads_first_and_is_done_when_in_the_target(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.post(LIST_URL, json=listed("suspended"))
    progress = Progress(write_started_at=datetime.now(UTC))

    result = processor.perform(Step.SUBMIT, context("suspended", progress=progress))

    assert len(mocked.calls) == 1
    assert "carrier_status_at" in result.updates
    assert "nothing submitted again" in result.note


def test_a_submit_whose_answer_may_be_lost_submits_again_noting_the_repeat(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.post(LIST_URL, json=listed("active"))
    mocked.post(action_url("suspend"), json={"requestId": REQUEST_ID})
    progress = Progress(write_started_at=datetime.now(UTC))

    result = processor.perform(Step.SUBMIT, context("suspended", progress=progress))

    assert [call.description for call in audit] == ["Read ThingSpace device", SUBMIT_AGAIN]
    assert result.note.endswith("(submitted again: an earlier answer was lost)")


# --- CONFIRM ------------------------------------------------------------------------------


def callback(outcome: CallbackOutcome, **fields: Any) -> CallbackEvent:
    values = {"request_id": REQUEST_ID, "device_id": ICCID, "device_kind": "iccid", **fields}
    return CallbackEvent(outcome=outcome, **values)


def test_a_stored_failure_callback_decides_without_a_call(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock
) -> None:
    failed = callback(CallbackOutcome.FAILED, reason="UnifiedWebService.X.DeviceNotFound: gone")

    with pytest.raises(PermanentError) as raised:
        processor.perform(
            Step.CONFIRM, context("suspended", progress=submitted(), callbacks=(failed,))
        )

    assert raised.value.message == (
        f"ThingSpace request {REQUEST_ID} failed: UnifiedWebService.X.DeviceNotFound: gone"
    )
    assert len(mocked.calls) == 0


def test_a_stored_success_callback_decides_even_by_another_kind(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock
) -> None:
    done = callback(CallbackOutcome.SUCCEEDED, device_kind="imei", device_id=IMEI)

    result = processor.perform(
        Step.CONFIRM, context("suspended", progress=submitted(), callbacks=(done,))
    )

    assert "carrier_status_at" in result.updates
    assert len(mocked.calls) == 0


def test_a_callback_for_another_iccid_is_ignored_and_the_status_call_decides(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock
) -> None:
    other = callback(CallbackOutcome.FAILED, device_id="89148000000000000999", reason="x")
    mocked.get(STATUS_URL, json=status_body("Success"))

    result = processor.perform(
        Step.CONFIRM, context("suspended", progress=submitted(), callbacks=(other,))
    )

    assert "carrier_status_at" in result.updates


def test_pending_after_the_budget_waits_without_failing(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(STATUS_URL, json=status_body("Pending"))

    with pytest.raises(CarrierPending) as raised:
        processor.perform(Step.CONFIRM, context("suspended", progress=submitted()))

    assert raised.value.message == f"waiting for ThingSpace: request {REQUEST_ID} Pending"


def test_failed_waits_for_the_reason_then_errors_without_one(
    processor: ThingSpaceProcessor,
    mocked: responses.RequestsMock,
    settings: Any,
    store: RecordingStore,
) -> None:
    mocked.get(STATUS_URL, json=status_body("Failed"))

    with pytest.raises(CarrierPending, match="waiting for the CarrierService callback"):
        processor.perform(Step.CONFIRM, context("suspended", progress=submitted()))
    store.set(f"thingspace:9:failed:{REQUEST_ID}", 0.0, ttl=60)  # first seen long ago
    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.CONFIRM, context("suspended", progress=submitted()))

    assert raised.value.message == (
        f"ThingSpace request {REQUEST_ID} failed; no CarrierService callback gave the reason"
    )
    assert len(mocked.calls) == 1  # the second attempt needed no call


def test_the_reason_callback_arriving_during_the_wait_gives_the_message(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock, store: RecordingStore
) -> None:
    store.set(f"thingspace:9:failed:{REQUEST_ID}", 0.0, ttl=60)
    failed = callback(CallbackOutcome.FAILED, reason="Code: text")

    with pytest.raises(PermanentError, match="failed: Code: text"):
        processor.perform(
            Step.CONFIRM, context("suspended", progress=submitted(), callbacks=(failed,))
        )


@pytest.mark.parametrize(("state", "reconciled"), [("suspended", True), ("active", False)])
def test_a_400_from_the_status_call_is_reconciled_by_the_read(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock, state: str, reconciled: bool
) -> None:
    mocked.get(STATUS_URL, status=400, json=ts_error("Unknown request", "REQUEST_FAILED.X"))
    mocked.post(LIST_URL, json=listed(state))

    if reconciled:
        result = processor.perform(Step.CONFIRM, context("suspended", progress=submitted()))
        assert result.note == "reconciled by read"
    else:
        with pytest.raises(PermanentError) as raised:
            processor.perform(Step.CONFIRM, context("suspended", progress=submitted()))
        assert raised.value.message.startswith(
            f"ThingSpace did not confirm request {REQUEST_ID} within 2 hours; check the "
            "carrier before retrying"
        )


@pytest.mark.parametrize(("hours", "named"), [(2, "2 hours"), (12, "12 hours")])
def test_past_the_deadline_the_read_decides_without_a_status_call(
    processor: ThingSpaceProcessor, mocked: responses.RequestsMock, hours: float, named: str
) -> None:
    mocked.post(LIST_URL, json=listed("active"))
    progress = submitted(hours=hours, ago=hours * 3600 + 1)

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.CONFIRM, context("suspended", progress=progress))

    assert f"within {named}; check the carrier before retrying" in raised.value.message
    assert [c.request.url for c in mocked.calls] == [LIST_URL]


# --- The CarrierService callback ----------------------------------------------------------


def parse(body: Any) -> list[CallbackEvent]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return ThingSpaceProcessor.parse_callback(
        credentials=WITH_CALLBACKS, method="POST", query={}, body=raw
    )


def carrier_service(**fields: Any) -> dict[str, Any]:
    return {
        "username": CALLBACK_USER,
        "password": CALLBACK_PASSWORD,
        "requestId": REQUEST_ID,
        "deviceIds": [{"id": ICCID, "kind": "ICCID"}],
        "callbackCount": 1,
        "maxCallbackThreshold": 4,
        **fields,
    }


def test_the_processor_declares_body_credentials_and_post() -> None:
    assert ThingSpaceProcessor.callback_auth is CallbackAuth.BODY_CREDENTIALS
    assert ThingSpaceProcessor.callback_methods == frozenset({"POST"})


def test_a_success_callback_parses_to_succeeded_for_the_iccid() -> None:
    [event] = parse(carrier_service(status="Success", deviceResponse={"suspendResponse": {}}))

    assert event == CallbackEvent(
        request_id=REQUEST_ID,
        outcome=CallbackOutcome.SUCCEEDED,
        device_id=ICCID,
        device_kind="iccid",
    )


def test_a_fault_callback_parses_to_failed_with_code_and_text() -> None:
    fault = {"faultcode": "UnifiedWebService.REQUEST_FAILED.DeviceNotFound", "faultstring": "No"}

    [event] = parse(carrier_service(status="Failed", faultResponse=fault))

    assert (event.outcome, event.reason) == (
        CallbackOutcome.FAILED,
        "UnifiedWebService.REQUEST_FAILED.DeviceNotFound: No",
    )


def test_a_callback_naming_the_device_by_another_kind_keeps_that_kind() -> None:
    [event] = parse(carrier_service(status="Success", deviceIds=[{"id": IMEI, "kind": "IMEI"}]))

    assert (event.device_kind, event.device_id) == ("imei", IMEI)


@pytest.mark.parametrize(
    "fields",
    [{"password": "wrong"}, {"username": "someone"}, {"password": None}],
    ids=["password", "username", "missing"],
)
def test_wrong_callback_credentials_are_401(fields: dict[str, Any]) -> None:
    with pytest.raises(CallbackRejected) as raised:
        parse(carrier_service(status="Success", **fields))

    assert raised.value.status == 401
    assert CALLBACK_PASSWORD not in raised.value.message


@pytest.mark.parametrize(
    "body",
    [b"<html>", b"[1, 2]", json.dumps({"username": CALLBACK_USER}).encode()],
    ids=["not-json", "not-an-object", "no-credentials-no-request"],
)
def test_an_unparseable_callback_is_400_or_401(body: bytes) -> None:
    with pytest.raises(CallbackRejected) as raised:
        parse(body)

    assert raised.value.status in (400, 401)
    if body != json.dumps({"username": CALLBACK_USER}).encode():
        assert raised.value.status == 400


def test_an_authenticated_callback_without_a_request_id_is_400() -> None:
    with pytest.raises(CallbackRejected) as raised:
        parse(carrier_service(requestId="", status="Success"))

    assert raised.value.status == 400


# --- Creation-time checks -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "problems"),
    [
        ("https://thingspace.verizon.com", 0),
        ("https://thingspace.verizon.com/", 0),
        ("http://127.0.0.1:8080/thingspace", 0),
        ("https://thingspace.verizon.com/api", 1),
        ("https://thingspace.verizon.com/api/m2m/v1", 1),
    ],
)
def test_a_base_url_holding_the_api_prefix_is_refused(base_url: str, problems: int) -> None:
    assert len(ThingSpaceProcessor.validate_base_url(base_url)) == problems


def test_only_reason_code_ff_is_accepted() -> None:
    assert ThingSpaceProcessor.validate_options(
        target_status="deactivated", options={"reason_code": "XX"}
    ) == ["reason_code must be FF, not 'XX'"]


def test_the_contracts_limits_are_the_defaults() -> None:
    assert ThingSpaceProcessor.limits_daily_actions is True
    assert (
        ThingSpaceProcessor.default_rate_limit,
        ThingSpaceProcessor.default_max_concurrency,
    ) == (10.0, 4)
