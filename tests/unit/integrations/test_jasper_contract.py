"""Jasper's client and processor against docs/carriers/jasper.md, call by call and answer by
answer: the exact method, path, query, headers and body of the device read and the status PUT;
SUBMIT and its echo check (a 200 echoing our ICCID confirms at once; a 202 or a missing echo
leaves the change to CONFIRM); CONFIRM reading the device within the budget, waiting, and
reconciling past the deadline; every error code and status the contract classifies; repeat
safety and the limits."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import responses

from integrations.base import (
    AuthenticationError,
    CallRecord,
    CarrierPending,
    Credentials,
    IntegrationError,
    PermanentError,
    Progress,
    Step,
    TransientError,
    UpdateContext,
)
from integrations.jasper import JasperClient, JasperProcessor
from tests.unit.integrations.support import FakeTime, RecordingThrottle, sent

API_KEY = "jasper-key-Q7w2e9Lk"
USERNAME = "ops-api"
BASE_URL = "https://restapi3.jasper.example.test"
ICCID = "89011704278000000001"
OTHER_ICCID = "89011704278000000002"
DEVICE_URL = f"{BASE_URL}/rws/api/v1/devices/{ICCID}"
CREDENTIALS = Credentials(
    integration_authentication_id=3,
    integration="JASPER",
    base_url=BASE_URL,
    account="Acme US",
    username=USERNAME,
    secret=API_KEY,
)
ACCOUNT = "Jasper account ops-api (Acme US)"
BASIC = "Basic " + base64.b64encode(f"{USERNAME}:{API_KEY}".encode()).decode()
SETTABLE = ["ACTIVATED", "DEACTIVATED", "ACTIVATION_READY", "TEST_READY", "INVENTORY", "RETIRED"]
SESSION_HEADERS = {"User-Agent", "Accept-Encoding", "Connection"}  # the session's own


def jasper_error(code: str, message: str) -> dict[str, str]:
    return {"errorCode": code, "errorMessage": message}


def device(status: str) -> dict[str, str]:
    return {"iccid": ICCID, "imsi": "310170000000001", "status": status}


@pytest.fixture
def processor(
    audit: list[CallRecord],
    throttle: RecordingThrottle,
    fake_time: FakeTime,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> JasperProcessor:
    settings.BULKCHANGE_CONFIRM_SECONDS = 3
    processor = JasperProcessor(
        credentials=CREDENTIALS, on_call=audit.append, throttle=throttle, timeouts=(1, 1)
    )
    monkeypatch.setattr(processor, "clock", fake_time.clock)
    monkeypatch.setattr(processor, "sleep", fake_time.sleep)
    return processor


def context(target: str = "DEACTIVATED", **progress: Any) -> UpdateContext:
    return UpdateContext(
        device_change_id=77,
        bulk_change_id=5,
        iccid=ICCID,
        target_status=target,
        progress=Progress(**progress),
    )


def submitted(*, deadline_in: timedelta = timedelta(minutes=10)) -> dict[str, Any]:
    """The progress of a device whose PUT was accepted and not confirmed."""
    now = datetime.now(UTC)
    return {
        "write_started_at": now,
        "carrier_submitted_at": now,
        "confirm_deadline_at": now + deadline_in,
    }


def headers_of(request: requests.PreparedRequest) -> dict[str, str]:
    return {name: value for name, value in request.headers.items() if name not in SESSION_HEADERS}


# --- The calls, exactly ---------------------------------------------------------------------


def test_submit_sends_exactly_the_contracts_put(
    processor: JasperProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.put(DEVICE_URL, json={"iccid": ICCID})

    processor.perform(Step.SUBMIT, context("DEACTIVATED"))

    request = sent(mocked, 0)
    assert request.method == "PUT"
    assert request.url == DEVICE_URL  # no query: no effectiveDate, no fields
    assert headers_of(request) == {
        "Accept": "application/json",
        "Idempotency-Key": "pondops-77-submit",
        "Content-Type": "application/json",
        "Content-Length": str(len(b'{"status": "DEACTIVATED"}')),
        "Authorization": BASIC,
    }
    assert request.body == b'{"status": "DEACTIVATED"}'


def test_confirm_sends_exactly_the_contracts_read(
    processor: JasperProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(DEVICE_URL, json=device("DEACTIVATED"))

    processor.perform(Step.CONFIRM, context("DEACTIVATED", **submitted()))

    request = sent(mocked, 0)
    assert request.method == "GET"
    assert request.url == DEVICE_URL  # the whole device, no ?fields=
    assert headers_of(request) == {"Accept": "application/json", "Authorization": BASIC}
    assert request.body is None


@pytest.mark.parametrize("base_url", [BASE_URL, BASE_URL + "/"])
def test_the_client_appends_rws_api_v1_to_the_origin_trimming_one_slash(
    mocked: responses.RequestsMock, base_url: str
) -> None:
    mocked.get(DEVICE_URL, json=device("ACTIVATED"))
    credentials = Credentials(
        integration_authentication_id=3,
        integration="JASPER",
        base_url=base_url,
        username=USERNAME,
        secret=API_KEY,
    )

    JasperClient(credentials=credentials, timeouts=(1, 1)).get_device(iccid=ICCID)

    assert sent(mocked, 0).url == DEVICE_URL


@pytest.mark.parametrize(
    "base_url",
    ["https://restapi3.jasper.com/rws/api/v1", "https://rws-jpotest.jasper.com/rws/api/v1/"],
)
def test_a_base_url_holding_the_api_root_is_refused_when_the_row_is_saved(base_url: str) -> None:
    assert JasperProcessor.validate_base_url(base_url) == [
        "Jasper's base_url is the REST host's origin (e.g. https://restapi3.jasper.com); "
        "leave out /rws/api/v1, which PondOps appends"
    ]


@pytest.mark.parametrize(
    "base_url", ["https://restapi3.jasper.com", "https://rws-jpotest.jasper.com/", BASE_URL]
)
def test_an_origin_is_a_valid_base_url(base_url: str) -> None:
    assert JasperProcessor.validate_base_url(base_url) == []


@pytest.mark.parametrize("target", SETTABLE)
def test_every_settable_status_is_sent_by_its_own_name(
    processor: JasperProcessor, mocked: responses.RequestsMock, target: str
) -> None:
    mocked.put(DEVICE_URL, json={"iccid": ICCID})

    processor.perform(Step.SUBMIT, context(target.lower()))

    assert json.loads(sent(mocked, 0).body or b"") == {"status": target}


def test_the_api_key_is_in_no_audit_text(
    processor: JasperProcessor, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.put(DEVICE_URL, json={"iccid": ICCID})

    processor.perform(Step.SUBMIT, context())

    assert [call.description for call in audit] == ["Update Jasper device status"]
    assert API_KEY not in str(audit) and "Authorization" not in audit[0].request_text


# --- SUBMIT: the answers --------------------------------------------------------------------


@pytest.mark.parametrize("echo", [ICCID, f" {ICCID} "])
def test_a_200_echoing_our_iccid_confirms_at_once(
    processor: JasperProcessor, mocked: responses.RequestsMock, echo: str
) -> None:
    mocked.put(DEVICE_URL, json={"iccid": echo})
    before = datetime.now(UTC)

    result = processor.perform(Step.SUBMIT, context())

    assert result.step is Step.SUBMIT
    assert set(result.updates) == {"carrier_submitted_at", "carrier_status_at"}
    stamp = result.updates["carrier_submitted_at"]
    assert before <= stamp <= datetime.now(UTC)
    assert result.updates["carrier_status_at"] == stamp
    assert Progress(**result.updates).is_done(Step.CONFIRM)  # no read follows
    assert result.note == "confirmed by the ICCID echo"


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        pytest.param({"status": 202, "json": {"iccid": ICCID}}, 202, id="202-with-echo"),
        pytest.param({"status": 202, "body": ""}, 202, id="202-empty"),
        pytest.param({"status": 202, "json": {}}, 202, id="202-no-iccid"),
        pytest.param({"status": 200, "json": {}}, 200, id="200-no-iccid"),
        pytest.param({"status": 200, "json": {"iccid": None}}, 200, id="200-null-iccid"),
        pytest.param({"status": 200, "json": {"iccid": " "}}, 200, id="200-blank-iccid"),
        pytest.param({"status": 200, "json": [ICCID]}, 200, id="200-not-an-object"),
        pytest.param({"status": 200, "body": ""}, 200, id="200-empty-body"),
        pytest.param({"status": 204, "body": ""}, 204, id="204"),
    ],
)
def test_a_202_or_a_2xx_without_the_echo_is_accepted_and_left_to_confirm(
    processor: JasperProcessor, mocked: responses.RequestsMock, reply: dict[str, Any], status: int
) -> None:
    mocked.put(DEVICE_URL, **reply)

    result = processor.perform(Step.SUBMIT, context())

    assert set(result.updates) == {"carrier_submitted_at"}
    assert not Progress(**result.updates).is_done(Step.CONFIRM)
    assert result.note == f"HTTP {status} without confirmation; confirming by read"


@pytest.mark.parametrize("status", [200, 202])
def test_an_echo_naming_another_iccid_is_permanent_naming_both(
    processor: JasperProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    status: int,
) -> None:
    mocked.put(DEVICE_URL, status=status, json={"iccid": OTHER_ICCID})

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.SUBMIT, context())

    assert type(raised.value) is PermanentError
    assert raised.value.message == (
        f"HTTP {status} from Jasper: the answer echoed ICCID {OTHER_ICCID}, not {ICCID}; "
        "the status change is not confirmed"
    )
    assert raised.value.call is audit[0]
    assert len(mocked.calls) == 1


def test_activating_an_activated_sim_counts_as_done(
    processor: JasperProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.put(
        DEVICE_URL,
        status=400,
        json=jasper_error("10030000", "Cannot activate a SIM which is already activated"),
    )

    result = processor.perform(Step.SUBMIT, context("ACTIVATED"))

    assert set(result.updates) == {"carrier_submitted_at", "carrier_status_at"}
    assert result.note == "already ACTIVATED at Jasper (10030000)"


def test_10030000_for_another_target_is_permanent(
    processor: JasperProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.put(
        DEVICE_URL,
        status=400,
        json=jasper_error("10030000", "Cannot activate a SIM which is already activated"),
    )

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.SUBMIT, context("INVENTORY"))

    assert raised.value.message == (
        "HTTP 400 from Jasper: Cannot activate a SIM which is already activated (10030000)"
    )


# --- Errors, on the PUT and on the read -------------------------------------------------------

ERRORS = [
    pytest.param(
        400,
        jasper_error("10000029", "This SIM may not be moved back to a Pre Activation status"),
        PermanentError,
        "HTTP 400 from Jasper: This SIM may not be moved back to a Pre Activation status "
        "(10000029)",
        id="400-10000029-back-to-pre-activation",
    ),
    pytest.param(
        400,
        jasper_error("10000024", "Invalid status change"),
        PermanentError,
        "HTTP 400 from Jasper: Invalid status change (10000024)",
        id="400-invalid-status-change",
    ),
    pytest.param(
        404,
        jasper_error("20000001", "Resource not found - Invalid ICCID"),
        PermanentError,
        "HTTP 404 from Jasper: Resource not found - Invalid ICCID (20000001)",
        id="404-unknown-iccid",
    ),
    pytest.param(
        403,
        jasper_error("10000003", "Forbidden"),
        PermanentError,
        f"Jasper refused the call for {ACCOUNT}: the API user's role may not do this "
        "(HTTP 403 from Jasper: Forbidden (10000003))",
        id="403-role",
    ),
    *[
        pytest.param(
            status,
            jasper_error("50000001", "Server error"),
            TransientError,
            f"HTTP {status} from Jasper: Server error (50000001)",
            id=f"{status}-transient",
        )
        for status in (408, 429, 500, 501, 502, 503, 504, 505)
    ],
]


def _fail(processor: JasperProcessor, step: Step) -> Any:
    progress = submitted() if step is Step.CONFIRM else {}
    return lambda: processor.perform(step, context("DEACTIVATED", **progress))


def _register(mocked: responses.RequestsMock, step: Step, **reply: Any) -> None:
    method = responses.PUT if step is Step.SUBMIT else responses.GET
    mocked.add(method, DEVICE_URL, **reply)


@pytest.mark.parametrize("step", [Step.SUBMIT, Step.CONFIRM])
@pytest.mark.parametrize(("status", "body", "error_type", "message"), ERRORS)
def test_error_answers_are_classified_as_the_contract_says(
    processor: JasperProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    step: Step,
    status: int,
    body: dict[str, str],
    error_type: type[Exception],
    message: str,
) -> None:
    _register(mocked, step, status=status, json=body)

    with pytest.raises(error_type) as raised:
        _fail(processor, step)()

    assert type(raised.value) is error_type
    assert isinstance(raised.value, IntegrationError)
    assert raised.value.message == message
    assert raised.value.call is audit[0]


@pytest.mark.parametrize("step", [Step.SUBMIT, Step.CONFIRM])
def test_a_401_names_the_account_and_the_expired_key_never_the_key(
    processor: JasperProcessor, mocked: responses.RequestsMock, step: Step
) -> None:
    _register(mocked, step, status=401, json=jasper_error("10000001", "Invalid credentials"))

    with pytest.raises(AuthenticationError) as raised:
        _fail(processor, step)()

    assert raised.value.message == (
        f"Jasper rejected the credentials of {ACCOUNT} (the API key may have expired) "
        "(HTTP 401 from Jasper: Invalid credentials (10000001))"
    )
    assert API_KEY not in str(raised.value)


@pytest.mark.parametrize("step", [Step.SUBMIT, Step.CONFIRM])
@pytest.mark.parametrize(
    ("status", "retry_after", "wait"),
    [
        pytest.param(400, None, 1.0, id="400"),
        pytest.param(429, None, 1.0, id="429"),
        pytest.param(400, "7", 7.0, id="400-retry-after"),
        pytest.param(429, "0", 1.0, id="429-retry-after-below-a-second"),
    ],
)
def test_40000029_is_transient_whatever_the_status_and_slows_the_limiter(
    processor: JasperProcessor,
    mocked: responses.RequestsMock,
    throttle: RecordingThrottle,
    step: Step,
    status: int,
    retry_after: str | None,
    wait: float,
) -> None:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    body = jasper_error("40000029", "Exceeding Tariff limits")
    _register(mocked, step, status=status, json=body, headers=headers)

    with pytest.raises(TransientError) as raised:
        _fail(processor, step)()

    assert raised.value.message == f"HTTP {status} from Jasper: Exceeding Tariff limits (40000029)"
    assert raised.value.retry_after == wait
    assert throttle.penalties == [wait]


def test_a_non_json_error_page_is_classified_by_its_status(
    processor: JasperProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.put(DEVICE_URL, status=502, body="<html><title>502 Bad Gateway</title></html>")

    with pytest.raises(TransientError, match="HTTP 502 from Jasper: 502 Bad Gateway"):
        processor.perform(Step.SUBMIT, context())


# --- Repeat safety --------------------------------------------------------------------------


def test_a_submit_whose_answer_was_lost_is_sent_again_without_a_read(
    processor: JasperProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.put(DEVICE_URL, json={"iccid": ICCID})
    lost = context(write_started_at=datetime.now(UTC))
    assert lost.progress.write_may_have_reached_carrier

    result = processor.perform(Step.SUBMIT, lost)

    assert [call.request.method for call in mocked.calls] == ["PUT"]
    assert "carrier_status_at" in result.updates


def test_a_repeated_activation_jasper_already_applied_is_done(
    processor: JasperProcessor, mocked: responses.RequestsMock
) -> None:
    body = jasper_error("10030000", "Cannot activate a SIM which is already activated")
    mocked.put(DEVICE_URL, status=400, json=body)

    result = processor.perform(
        Step.SUBMIT, context("ACTIVATED", write_started_at=datetime.now(UTC))
    )

    assert "carrier_status_at" in result.updates


# --- CONFIRM --------------------------------------------------------------------------------


def test_confirm_is_done_when_the_first_read_shows_the_target(
    processor: JasperProcessor, mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.get(DEVICE_URL, json=device("DEACTIVATED"))

    result = processor.perform(Step.CONFIRM, context("DEACTIVATED", **submitted()))

    assert result.step is Step.CONFIRM
    assert set(result.updates) == {"carrier_status_at"}
    assert result.note == "device shows DEACTIVATED"
    assert fake_time.sleeps == []


def test_confirm_reads_again_with_back_off_until_the_device_shows_the_target(
    processor: JasperProcessor, mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    for status in ("ACTIVATED", "ACTIVATED", "DEACTIVATED"):
        mocked.get(DEVICE_URL, json=device(status))

    result = processor.perform(Step.CONFIRM, context("DEACTIVATED", **submitted()))

    assert set(result.updates) == {"carrier_status_at"}
    assert len(mocked.calls) == 3
    first, second = fake_time.sleeps
    assert 0.2 <= first <= 0.25 and second == pytest.approx(first * 2)


@pytest.mark.parametrize("shown", ["ACTIVATED", "PURGED", "deactivatedish"])
def test_confirm_still_not_showing_the_target_after_the_budget_is_pending(
    processor: JasperProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    fake_time: FakeTime,
    shown: str,
) -> None:
    mocked.get(DEVICE_URL, json=device(shown))

    with pytest.raises(CarrierPending) as raised:
        processor.perform(Step.CONFIRM, context("DEACTIVATED", **submitted()))

    assert raised.value.message == (
        f"waiting for Jasper: ICCID {ICCID} still shows {shown}, not DEACTIVATED"
    )
    assert raised.value.call is audit[-1]
    assert sum(fake_time.sleeps) == pytest.approx(3)  # BULKCHANGE_CONFIRM_SECONDS
    assert len(mocked.calls) == len(fake_time.sleeps) + 1


def test_a_read_without_a_status_is_pending_too(
    processor: JasperProcessor, mocked: responses.RequestsMock, settings: Any
) -> None:
    settings.BULKCHANGE_CONFIRM_SECONDS = 0
    mocked.get(DEVICE_URL, json={"iccid": ICCID})

    with pytest.raises(CarrierPending, match="still shows no status, not DEACTIVATED"):
        processor.perform(Step.CONFIRM, context("DEACTIVATED", **submitted()))


def test_the_confirm_deadline_is_ten_minutes() -> None:
    processor = JasperProcessor(credentials=CREDENTIALS)

    assert processor.confirm_deadline(context()) == timedelta(minutes=10)


def test_past_the_deadline_one_read_showing_the_target_reconciles(
    processor: JasperProcessor, mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.get(DEVICE_URL, json=device("DEACTIVATED"))
    late = submitted(deadline_in=-timedelta(seconds=1))

    result = processor.perform(Step.CONFIRM, context("DEACTIVATED", **late))

    assert set(result.updates) == {"carrier_status_at"}
    assert result.note == "reconciled by read"
    assert len(mocked.calls) == 1 and fake_time.sleeps == []


def test_past_the_deadline_a_read_not_showing_the_target_is_permanent(
    processor: JasperProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    fake_time: FakeTime,
) -> None:
    mocked.get(DEVICE_URL, json=device("ACTIVATED"))
    late = submitted(deadline_in=-timedelta(seconds=1))

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.CONFIRM, context("DEACTIVATED", **late))

    assert raised.value.message == (
        f"Jasper did not confirm the status change of ICCID {ICCID} within 10 minutes; check "
        "the carrier before retrying: Jasper accepted the change but the device still shows "
        "ACTIVATED"
    )
    assert raised.value.call is audit[0]
    assert len(mocked.calls) == 1 and fake_time.sleeps == []


# --- Declarations and limits ----------------------------------------------------------------


def test_processor_declares_submit_then_confirm_and_the_fair_use_limits() -> None:
    assert JasperProcessor.steps == (Step.SUBMIT, Step.CONFIRM)
    assert JasperProcessor.descriptions == {
        Step.SUBMIT: "Update Jasper device status",
        Step.CONFIRM: "Read Jasper device",
    }
    assert JasperProcessor.default_max_concurrency == 1
    assert JasperProcessor.default_rate_limit == 5.0


@pytest.mark.parametrize("step", [Step.PREPARE, Step.CARRIER_STATUS, Step.SERVICE_STATUS])
def test_steps_jasper_does_not_have_are_refused_without_a_call(
    processor: JasperProcessor, mocked: responses.RequestsMock, step: Step
) -> None:
    with pytest.raises(PermanentError, match="Jasper has no step"):
        processor.perform(step, context())

    assert len(mocked.calls) == 0


@pytest.mark.parametrize("step", [Step.SUBMIT, Step.CONFIRM])
def test_an_unsettable_target_is_refused_without_a_call(
    processor: JasperProcessor, mocked: responses.RequestsMock, step: Step
) -> None:
    with pytest.raises(PermanentError, match="Jasper cannot set status 'PURGED'"):
        processor.perform(step, context("PURGED", **submitted()))

    assert len(mocked.calls) == 0
