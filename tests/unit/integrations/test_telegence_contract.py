"""Telegence against its wire contract (docs/carriers/telegence.md), call by call: the exact
method, path, query, headers and body of every request the client and processor send, and the
handling of every answer the contract documents. ``responses`` plays the APEX gateway."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests
import responses

from integrations.base import (
    AuthenticationError,
    CallbackRejected,
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
from integrations.base.protocol import CallbackAuth
from integrations.telegence import TelegenceClient, TelegenceProcessor, subscriber_number
from tests.unit.integrations.support import FakeTime, sent, sent_json

APP_ID = "pondops-app-7"
APP_SECRET = "tg-secret-Qw81zz"
BILLING_ACCOUNT = "287654321"
BASE_URL = "https://apsapi.att.example.test:8082"
MSISDN = "2145550100"
ICCID = "89014104178003620000"
PATH = f"/sp/mobility/lineconfig/api/v1/service/{MSISDN}"
LINE_URL = BASE_URL + PATH
CREDENTIALS = Credentials(
    integration_authentication_id=3,
    integration="TELEGENCE",
    base_url=BASE_URL + "/",  # one trailing slash is trimmed
    account=BILLING_ACCOUNT,
    username=APP_ID,
    secret=APP_SECRET,
)
AUTH_FAILURE = (
    f"Telegence rejected the app id and secret for Telegence billing account {BILLING_ACCOUNT}"
)
SESSION_HEADERS = {"User-Agent", "Accept-Encoding", "Connection"}
AUTH = {"app-id": APP_ID, "app-secret": APP_SECRET, "Accept": "application/json"}
ERROR_ID = "306760c0-4c63-11f0-8b71-06c879028863"


def record(
    code: str | None = "A", *, status: str | None = "Active", sim: str = ICCID
) -> dict[str, Any]:
    """The gateway's service record of the line."""
    characteristics = [
        {"name": "statusEffectiveDate", "value": "2026-01-19Z"},
        {"name": "statusReasonCode", "value": "CR"},
        {"name": "sim", "value": sim},
        {"name": "singleUserCode", "value": "40100"},
        {"name": "billingAccountNumber", "value": BILLING_ACCOUNT},
    ]
    if code is not None:
        characteristics.insert(0, {"name": "subscriberStatus", "value": code})
    body: dict[str, Any] = {"subscriberNumber": MSISDN, "serviceCharacteristic": characteristics}
    if status is not None:
        body["status"] = status
    return body


def change_body(code: str, reason: str, effective: str) -> dict[str, Any]:
    return {
        "effectiveDate": effective,
        "serviceCharacteristic": [
            {"name": "subscriberStatus", "value": code},
            {"name": "reasonCode", "value": reason},
        ],
    }


def own_headers(request: requests.PreparedRequest) -> dict[str, str]:
    return {k: v for k, v in request.headers.items() if k not in SESSION_HEADERS}


def assert_read_sent(request: requests.PreparedRequest) -> None:
    """Exactly the contract's read: GET on the line path, no query, no body, the app headers."""
    assert request.method == "GET"
    assert request.path_url == PATH  # no query string
    assert own_headers(request) == AUTH
    assert request.body is None


def assert_patch_sent(request: requests.PreparedRequest, body: dict[str, Any]) -> None:
    """Exactly the contract's PATCH: the line path, no query, the app headers, the JSON body."""
    assert request.method == "PATCH"
    assert request.path_url == PATH
    headers = own_headers(request)
    assert headers == {
        **AUTH,
        "Idempotency-Key": "pondops-77-submit",
        "Content-Type": "application/json",
        "Content-Length": headers["Content-Length"],
    }
    assert sent_json(request) == body


def context(target: str = "Suspended", **overrides: Any) -> UpdateContext:
    values: dict[str, Any] = {
        "device_change_id": 77,
        "bulk_change_id": 5,
        "iccid": ICCID,
        "msisdn": MSISDN,
        "target_status": target,
        "today": date(2026, 11, 22),
    }
    values.update(overrides)
    return UpdateContext(**values)


def submitted(target: str = "Suspended", **progress: Any) -> UpdateContext:
    """A context after SUBMIT: submitted now, deadline in four hours unless told."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "carrier_submitted_at": now,
        "confirm_deadline_at": now + timedelta(hours=4),
        "write_started_at": now,
    }
    values.update(progress)
    return context(target, progress=Progress(**values))


@pytest.fixture
def client(audit: list[CallRecord]) -> TelegenceClient:
    return TelegenceClient(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))


@pytest.fixture
def processor(audit: list[CallRecord], fake_time: FakeTime, settings: Any) -> TelegenceProcessor:
    settings.BULKCHANGE_CONFIRM_SECONDS = 3
    processor = TelegenceProcessor(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))
    processor.clock = fake_time.clock  # type: ignore[method-assign]
    processor.sleep = fake_time.sleep  # type: ignore[method-assign]
    return processor


# --- The processor's shape -------------------------------------------------------------------


def test_steps_statuses_deadline_limits_and_callbacks_follow_the_contract() -> None:
    assert TelegenceProcessor.steps == (Step.SUBMIT, Step.CONFIRM)
    assert TelegenceProcessor.descriptions == {
        Step.SUBMIT: "Change Telegence line status",
        Step.CONFIRM: "Read Telegence line",
    }
    assert {
        name: (m.carrier_value, m.post_update_status)
        for name, m in TelegenceProcessor.statuses.items()
    } == {
        "Active": ("A", "Active"),
        "Suspended": ("S", "Suspended"),
        "Cancelled": ("C", "Cancelled"),
    }
    processor = TelegenceProcessor(credentials=CREDENTIALS)
    assert processor.confirm_deadline(context()) == timedelta(hours=4)
    assert (TelegenceProcessor.default_rate_limit, TelegenceProcessor.default_max_concurrency) == (
        10.0,
        4,
    )
    assert TelegenceProcessor.callback_auth is CallbackAuth.NONE
    with pytest.raises(CallbackRejected) as refused:
        TelegenceProcessor.parse_callback(
            credentials=CREDENTIALS, method="POST", query={}, body=b""
        )
    assert refused.value.status == 404


# --- The subscriber number --------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [
        "2145550100",
        "+12145550100",
        "+1 214-555-0100",
        "1-214-555-0100",
        "12145550100",
        "214 555 0100",
    ],
)
def test_the_msisdn_is_sent_as_ten_digits(
    processor: TelegenceProcessor, mocked: responses.RequestsMock, given: str
) -> None:
    mocked.get(LINE_URL, json=record())

    assert processor.read_status(context(msisdn=given)) == "Active"

    assert_read_sent(sent(mocked, 0))


@pytest.mark.parametrize("given", ["555-0100", "+44 20 7946 0958", "21455501OO", "(214) 555-0100"])
def test_an_msisdn_that_is_not_ten_digits_fails_before_any_call(
    processor: TelegenceProcessor, mocked: responses.RequestsMock, given: str
) -> None:
    for call in (
        lambda: processor.check_identifiers(context(msisdn=given)),
        lambda: processor.perform(Step.SUBMIT, context(msisdn=given)),
    ):
        with pytest.raises(PermanentError) as raised:
            call()
        assert raised.value.message == (
            f"Telegence needs a 10-digit subscriber number (MSISDN) for ICCID {ICCID}, "
            f"not {given!r}"
        )
    assert subscriber_number(given) is None
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("msisdn", ["", "   "])
@pytest.mark.parametrize("step", [Step.SUBMIT, Step.CONFIRM, None])
def test_without_an_msisdn_every_step_and_the_read_fail_before_any_call(
    processor: TelegenceProcessor, mocked: responses.RequestsMock, msisdn: str, step: Step | None
) -> None:
    with pytest.raises(PermanentError) as raised:
        if step is None:
            processor.read_status(context(msisdn=msisdn))
        else:
            processor.perform(step, replace(submitted(), msisdn=msisdn))

    assert raised.value.message == (
        f"Telegence needs the subscriber number (MSISDN) for ICCID {ICCID}"
    )
    assert len(mocked.calls) == 0


# --- SUBMIT: the PATCH -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "code", "reason"),
    [("Active", "A", "CR"), ("suspended", "S", "CR"), ("Cancelled", "C", "CAN")],
)
def test_submit_patches_subscriber_status_with_the_default_reason_and_the_date(
    processor: TelegenceProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    target: str,
    code: str,
    reason: str,
) -> None:
    mocked.patch(LINE_URL, json=record("A"))  # the answer may still show the old status
    before = datetime.now(UTC)

    result = processor.perform(Step.SUBMIT, context(target))

    assert result.step is Step.SUBMIT
    assert set(result.updates) == {"carrier_submitted_at"}  # CONFIRM still re-reads the line
    assert before <= result.updates["carrier_submitted_at"] <= datetime.now(UTC)
    assert result.note == "accepted (no request id)"
    assert_patch_sent(sent(mocked, 0), change_body(code, reason, "2026-11-22"))
    assert [call.description for call in audit] == ["Change Telegence line status"]
    assert APP_SECRET not in audit[0].request_text
    assert "app-secret: [REDACTED]" in audit[0].request_text


def test_submit_sends_the_requested_reason_code_and_today_in_utc_by_default(
    processor: TelegenceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.patch(LINE_URL, json=record("S"))
    before = datetime.now(UTC).date().isoformat()

    processor.perform(
        Step.SUBMIT, context("Suspended", options={"reason_code": " NP "}, today=None)
    )

    body = sent_json(sent(mocked, 0))
    assert body["effectiveDate"] in {before, datetime.now(UTC).date().isoformat()}
    assert body == change_body("S", "NP", body["effectiveDate"])


@pytest.mark.parametrize(
    ("answer", "request_id"),
    [
        pytest.param({"json": {**record("S"), "id": "ord-77"}}, "ord-77", id="id"),
        pytest.param({"json": {**record("S"), "requestId": "rq-9"}}, "rq-9", id="requestId"),
        pytest.param({"json": {"id": "x" * 150}}, "x" * 100, id="truncated-to-100"),
        pytest.param({"status": 202, "json": record("A")}, "", id="202-old-status"),
        pytest.param({"status": 202, "body": b""}, "", id="202-no-body"),
        pytest.param({"status": 204}, "", id="204"),
    ],
)
def test_a_2xx_answer_is_accepted_and_its_id_stored_when_present(
    processor: TelegenceProcessor,
    mocked: responses.RequestsMock,
    answer: dict[str, Any],
    request_id: str,
) -> None:
    mocked.patch(LINE_URL, **answer)

    result = processor.perform(Step.SUBMIT, context("Suspended"))

    assert "carrier_submitted_at" in result.updates
    assert "carrier_status_at" not in result.updates
    assert result.updates.get("carrier_request_id", "") == request_id


def test_a_2xx_that_is_not_a_json_object_is_permanent(
    processor: TelegenceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.patch(LINE_URL, json=["accepted"])

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.SUBMIT, context())

    assert (
        raised.value.message
        == "HTTP 200 from Telegence: expected a JSON object, got something else"
    )


# --- Repeat safety ----------------------------------------------------------------------------


def repeated(target: str = "Suspended") -> UpdateContext:
    """SUBMIT again after a write was started and its answer lost."""
    return context(target, progress=Progress(write_started_at=datetime.now(UTC)))


def test_a_lost_patch_is_not_sent_again_when_the_line_already_shows_the_target(
    processor: TelegenceProcessor, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    assert repeated().progress.write_may_have_reached_carrier
    mocked.get(LINE_URL, json=record("S", status="Suspended"))

    result = processor.perform(Step.SUBMIT, repeated())

    assert set(result.updates) == {"carrier_submitted_at", "carrier_status_at"}
    assert result.note == f"line {MSISDN} already Suspended; the earlier change was not sent again"
    assert [call.description for call in audit] == ["Read Telegence line"]
    assert_read_sent(sent(mocked, 0))


def test_a_lost_patch_is_sent_again_after_the_read_shows_the_line_not_in_the_target(
    processor: TelegenceProcessor, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(LINE_URL, json=record("A"))
    mocked.patch(LINE_URL, json=record("A"))

    result = processor.perform(Step.SUBMIT, repeated())

    assert set(result.updates) == {"carrier_submitted_at"}
    assert [call.description for call in audit] == [
        "Read Telegence line",
        "Change Telegence line status",
    ]
    assert_read_sent(sent(mocked, 0))
    assert_patch_sent(sent(mocked, 1), change_body("S", "CR", "2026-11-22"))


def test_a_first_submit_patches_without_reading(
    processor: TelegenceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.patch(LINE_URL, json=record("A"))

    processor.perform(Step.SUBMIT, context())

    assert [call.request.method for call in mocked.calls] == ["PATCH"]


# --- CONFIRM: re-reading the line --------------------------------------------------------------


def test_confirm_reads_the_line_until_it_shows_the_target(
    processor: TelegenceProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    fake_time: FakeTime,
) -> None:
    mocked.get(LINE_URL, json=record("A"))
    mocked.get(LINE_URL, json=record("A"))
    mocked.get(LINE_URL, json=record("S", status="Suspended"))

    result = processor.perform(Step.CONFIRM, submitted("Suspended"))

    assert set(result.updates) == {"carrier_status_at"}
    assert result.note == f"line {MSISDN} Suspended"
    assert [call.description for call in audit] == ["Read Telegence line"] * 3
    for index in range(3):
        assert_read_sent(sent(mocked, index))
    assert len(fake_time.sleeps) == 2
    assert 0.2 <= fake_time.sleeps[0] <= 0.25
    assert fake_time.sleeps[1] == pytest.approx(fake_time.sleeps[0] * 2)


def test_confirm_still_pending_when_the_budget_is_spent_waits_for_the_carrier(
    processor: TelegenceProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    fake_time: FakeTime,
) -> None:
    mocked.get(LINE_URL, json=record("A"))  # every read shows the old status

    with pytest.raises(CarrierPending) as raised:
        processor.perform(Step.CONFIRM, submitted("Suspended"))

    assert raised.value.message == f"waiting for Telegence: line {MSISDN} still shows Active"
    assert raised.value.call is audit[-1]
    assert fake_time.now == pytest.approx(1003)  # BULKCHANGE_CONFIRM_SECONDS
    assert len(audit) == len(fake_time.sleeps) + 1
    assert all(call.request.method == "GET" for call in mocked.calls)  # never re-submits


def test_a_pending_line_carrying_another_sim_says_so(
    processor: TelegenceProcessor, mocked: responses.RequestsMock, settings: Any
) -> None:
    settings.BULKCHANGE_CONFIRM_SECONDS = 0
    mocked.get(LINE_URL, json=record("A", sim="89014104178003629999"))

    with pytest.raises(CarrierPending) as raised:
        processor.perform(Step.CONFIRM, submitted("Suspended"))

    assert raised.value.message == (
        f"waiting for Telegence: line {MSISDN} still shows Active; line {MSISDN} carries SIM "
        f"89014104178003629999, not {ICCID}"
    )


def test_a_confirmed_line_carrying_another_sim_notes_it(
    processor: TelegenceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(LINE_URL, json=record("S", sim="89014104178003629999"))

    result = processor.perform(Step.CONFIRM, submitted("Suspended"))

    assert result.note == (
        f"line {MSISDN} Suspended; line {MSISDN} carries SIM 89014104178003629999, not {ICCID}"
    )


def test_a_line_that_became_cancelled_cannot_reach_another_target(
    processor: TelegenceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(LINE_URL, json=record("C", status="Cancelled"))

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.CONFIRM, submitted("Active"))

    assert raised.value.message == f"line {MSISDN} is Cancelled (final); it cannot become Active"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(record("A"), "Active", id="A"),
        pytest.param(record("S", status="Active"), "Suspended", id="characteristic-wins"),
        pytest.param(record("C"), "Cancelled", id="C"),
        pytest.param(record("P", status="Active"), None, id="other-value-matches-nothing"),
        pytest.param(record("a"), None, id="lower-case-value-matches-nothing"),
        pytest.param(record(None, status="SUSPENDED"), "Suspended", id="top-level-any-case"),
        pytest.param(record(None, status="cancelled"), "Cancelled", id="top-level-lower"),
        pytest.param(record(None, status="Pending"), None, id="top-level-other"),
        pytest.param(record(None, status=None), None, id="neither"),
        pytest.param(
            {"subscriberNumber": MSISDN, "serviceCharacteristic": "A"}, None, id="bad-list"
        ),
    ],
)
def test_the_line_status_is_subscriber_status_else_the_top_level_status(
    processor: TelegenceProcessor,
    mocked: responses.RequestsMock,
    line: dict[str, Any],
    expected: str | None,
) -> None:
    mocked.get(LINE_URL, json=line)

    assert processor.read_status(context()) == expected
    assert_read_sent(sent(mocked, 0))


# --- Past the confirm deadline ------------------------------------------------------------------


def past_deadline(target: str) -> UpdateContext:
    then = datetime.now(UTC) - timedelta(hours=5)
    return submitted(
        target, carrier_submitted_at=then, confirm_deadline_at=then + timedelta(hours=4)
    )


def test_past_the_deadline_a_read_showing_the_target_reconciles(
    processor: TelegenceProcessor, mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.get(LINE_URL, json=record("S"))

    result = processor.perform(Step.CONFIRM, past_deadline("Suspended"))

    assert set(result.updates) == {"carrier_status_at"}
    assert result.note == "reconciled by read"
    assert len(mocked.calls) == 1 and fake_time.sleeps == []  # one read, no polling


def test_past_the_deadline_a_line_still_in_the_old_status_ends_in_error(
    processor: TelegenceProcessor, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(LINE_URL, json=record("A"))

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.CONFIRM, past_deadline("Suspended"))

    assert raised.value.message == (
        f"Telegence accepted the change but line {MSISDN} still shows Active"
    )
    assert raised.value.call is audit[0]
    assert len(mocked.calls) == 1


def test_past_the_deadline_an_unknown_value_is_named_as_read(
    processor: TelegenceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(LINE_URL, json=record("P"))

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.CONFIRM, past_deadline("Suspended"))

    assert raised.value.message == (
        f"Telegence accepted the change but line {MSISDN} still shows subscriberStatus 'P'"
    )


# --- Errors -----------------------------------------------------------------------------------


ERRORS = [
    pytest.param(
        {"status": 404, "json": {"id": ERROR_ID, "description": "/service/"}},
        PermanentError,
        "HTTP 404 from Telegence: unknown line, or a change the line does not allow "
        f"(/service/) (id {ERROR_ID})",
        id="404-documented",
    ),
    pytest.param(
        {"status": 400, "json": {"id": ERROR_ID, "errorDescription": "Invalid reasonCode ZZ"}},
        PermanentError,
        f"HTTP 400 from Telegence: Invalid reasonCode ZZ (id {ERROR_ID})",
        id="400-errorDescription-with-id",
    ),
    pytest.param(
        {"status": 409, "json": {"errorDescription": "Line is cancelled", "description": "x"}},
        PermanentError,
        "HTTP 409 from Telegence: Line is cancelled",
        id="409-errorDescription-first",
    ),
    pytest.param(
        {"status": 400, "json": {"description": "Bad effectiveDate", "message": "m"}},
        PermanentError,
        "HTTP 400 from Telegence: Bad effectiveDate",
        id="400-description-before-message",
    ),
    pytest.param(
        {"status": 422, "json": {"message": "Unprocessable", "id": "e-1"}},
        PermanentError,
        "HTTP 422 from Telegence: Unprocessable (id e-1)",
        id="422-message",
    ),
    pytest.param(
        {"status": 404, "body": "<html><title>Not Found</title></html>"},
        PermanentError,
        "HTTP 404 from Telegence: Not Found",
        id="404-html",
    ),
    pytest.param(
        {"status": 429, "json": {"errorDescription": "Too many"}, "headers": {"Retry-After": "7"}},
        TransientError,
        "HTTP 429 from Telegence: Too many",
        id="429",
    ),
    *[
        pytest.param(
            {"status": status, "json": {"id": ERROR_ID, "errorDescription": "Backend down"}},
            TransientError,
            f"HTTP {status} from Telegence: Backend down (id {ERROR_ID})",
            id=str(status),
        )
        for status in (500, 502, 503, 504)
    ],
    pytest.param(
        {"status": 503, "body": b""},
        TransientError,
        "HTTP 503 from Telegence (empty body)",
        id="503-empty",
    ),
]


@pytest.mark.parametrize("method", ["GET", "PATCH"])
@pytest.mark.parametrize(("answer", "error_type", "message"), ERRORS)
def test_error_answers_are_classified_with_a_readable_message(
    processor: TelegenceProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    method: str,
    answer: dict[str, Any],
    error_type: type[IntegrationError],
    message: str,
) -> None:
    mocked.add(method, LINE_URL, **answer)

    with pytest.raises(error_type) as raised:
        if method == "GET":
            processor.read_status(context())
        else:
            processor.perform(Step.SUBMIT, context())

    assert type(raised.value) is error_type
    assert raised.value.message == message
    assert raised.value.call is audit[0]
    if answer["status"] == 429:
        assert isinstance(raised.value, TransientError) and raised.value.retry_after == 7


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_app_credentials_are_permanent_and_name_the_account_not_the_secret(
    client: TelegenceClient, mocked: responses.RequestsMock, status: int
) -> None:
    mocked.get(LINE_URL, status=status, json={"id": ERROR_ID, "errorDescription": "Invalid app"})

    with pytest.raises(AuthenticationError) as raised:
        client.read_line(msisdn=MSISDN)

    assert raised.value.message == (
        f"{AUTH_FAILURE} (HTTP {status} from Telegence: Invalid app (id {ERROR_ID}))"
    )
    assert APP_SECRET not in str(raised.value)
    assert len(mocked.calls) == 1  # no second try


def test_without_a_billing_account_the_app_id_names_the_account() -> None:
    credentials = Credentials(
        integration_authentication_id=3, integration="TELEGENCE", base_url=BASE_URL, username=APP_ID
    )
    assert TelegenceProcessor.account_label(credentials) == f"Telegence app {APP_ID}"


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (requests.ConnectTimeout("slow"), "Telegence timed out: ConnectTimeout"),
        (requests.ReadTimeout("slow"), "Telegence timed out: ReadTimeout"),
        (requests.ConnectionError("refused"), "Telegence connection failed: ConnectionError"),
    ],
)
def test_timeouts_and_connection_failures_are_transient(
    processor: TelegenceProcessor,
    mocked: responses.RequestsMock,
    failure: Exception,
    message: str,
) -> None:
    mocked.patch(LINE_URL, body=failure)

    with pytest.raises(TransientError) as raised:
        processor.perform(Step.SUBMIT, context())

    assert raised.value.message == message


@pytest.fixture
def no_calls(mocked: responses.RequestsMock) -> Iterator[responses.RequestsMock]:
    yield mocked
    assert len(mocked.calls) == 0


def test_an_unknown_target_or_step_is_refused_without_a_call(
    processor: TelegenceProcessor, no_calls: responses.RequestsMock
) -> None:
    with pytest.raises(PermanentError, match="Telegence cannot set status 'Deactivated'"):
        processor.perform(Step.SUBMIT, context("Deactivated"))
    with pytest.raises(PermanentError, match="Telegence has no step"):
        processor.perform(Step.CARRIER_STATUS, context())


# --- What creation checks ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("active", "Active"), ("SUSPENDED", "Suspended"), (" Cancelled ", "Cancelled")],
)
def test_targets_match_in_any_case(value: str, canonical: str) -> None:
    assert TelegenceProcessor.canonical_status(value) == canonical


@pytest.mark.parametrize("value", ["Deactivated", "Restore", "A", ""])
def test_statuses_telegence_cannot_set_are_refused_listing_the_allowed_ones(value: str) -> None:
    with pytest.raises(ValueError) as raised:
        TelegenceProcessor.canonical_status(value)

    assert str(raised.value) == (
        f"Telegence cannot set status {value!r}; allowed: Active, Suspended, Cancelled"
    )


@pytest.mark.parametrize("options", [{}, {"reason_code": "CR"}, {"reason_code": "CAN"}])
def test_no_reason_or_a_reason_code_is_accepted(options: dict[str, str]) -> None:
    assert TelegenceProcessor.validate_options(target_status="Suspended", options=options) == []


@pytest.mark.parametrize("reason_code", ["C R", "CR;DROP", "ABCDEFGHIJK"])
def test_a_malformed_reason_code_is_refused_at_creation(reason_code: str) -> None:
    assert TelegenceProcessor.validate_options(
        target_status="Suspended", options={"reason_code": reason_code}
    ) == [
        f"reason_code {reason_code!r} is not a Telegence reason code "
        "(up to 10 letters or digits, e.g. CR)"
    ]
