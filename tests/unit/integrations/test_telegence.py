"""Telegence client and processor against docs/carriers/telegence.md: Telegence's error codes,
the status table, and the MSISDN rule. The exact requests are test_clients.py; the HTTP
mechanism (timeouts, Retry-After, audit records, …) is test_http.py."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
import requests
import responses

from integrations.base import (
    AuthenticationError,
    CallRecord,
    Credentials,
    IntegrationError,
    PermanentError,
    Step,
    TransientError,
    UpdateContext,
)
from integrations.telegence import TelegenceClient, TelegenceProcessor
from tests.unit.integrations.support import assert_fails_as, sent, sent_json

APP_ID = "pondops-app-7"
APP_SECRET = "tg-secret-Qw81zz"
BILLING_ACCOUNT = "287654321"
BASE_URL = "https://telegence.example.test/att"
MSISDN = "2145550100"
ICCID = "89011703278100000001"
SUBSCRIBER_URL = f"{BASE_URL}/sp/mobility/v1/subscribers/{MSISDN}"
CREDENTIALS = Credentials(
    integration_authentication_id=3,
    integration="TELEGENCE",
    base_url=BASE_URL,
    account=BILLING_ACCOUNT,
    username=APP_ID,
    secret=APP_SECRET,
)
AUTH_FAILURE = (
    f"Telegence rejected the app id and secret for Telegence billing account {BILLING_ACCOUNT}"
)


def telegence_error(code: str, description: str) -> dict[str, Any]:
    """Telegence's error body."""
    return {"errors": [{"code": code, "description": description}]}


def changed_body(status: str, transaction_id: str = "T-77812") -> dict[str, str]:
    return {"subscriberNumber": MSISDN, "serviceStatus": status, "transactionId": transaction_id}


@pytest.fixture
def client(audit: list[CallRecord]) -> TelegenceClient:
    return TelegenceClient(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))


@pytest.fixture
def processor(audit: list[CallRecord]) -> TelegenceProcessor:
    return TelegenceProcessor(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))


def context(target: str, **overrides: Any) -> UpdateContext:
    values: dict[str, Any] = {
        "device_change_id": 77,
        "bulk_change_id": 5,
        "iccid": ICCID,
        "msisdn": MSISDN,
        "target_status": target,
        "request_id": "req-abc",
    }
    values.update(overrides)
    return UpdateContext(**values)


def assert_telegence_headers(request: requests.PreparedRequest) -> None:
    assert request.headers["app-id"] == APP_ID
    assert request.headers["app-secret"] == APP_SECRET
    assert request.headers["Accept"] == "application/json"
    assert "Authorization" not in request.headers


def change(client: TelegenceClient, status: str = "Suspended", **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "msisdn": MSISDN,
        "service_status": status,
        "reason_code": "CR",
        "effective_date": date(2026, 11, 22),
        "idempotency_key": "pondops-77-carrier_status",
    }
    values.update(overrides)
    return client.change_status(**values)


# --- Client: the path -----------------------------------------------------------------------


def test_the_msisdn_is_one_escaped_path_segment(
    client: TelegenceClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(f"{BASE_URL}/sp/mobility/v1/subscribers/%2B1214%2F555", json={})

    client.read_subscriber(msisdn="+1214/555")

    assert sent(mocked, 0).path_url == "/att/sp/mobility/v1/subscribers/%2B1214%2F555"


# --- Client: errors --------------------------------------------------------------------------


ERROR_CASES = [
    pytest.param(
        {"status": 404, "json": telegence_error("SUB_404", "Subscriber not found")},
        PermanentError,
        "HTTP 404 from Telegence: Subscriber not found (SUB_404)",
        id="404-unknown-subscriber",
    ),
    pytest.param(
        {
            "status": 409,
            "json": telegence_error(
                "STATUS_CHANGE_NOT_ALLOWED", "Subscriber 2145550100 is Cancelled"
            ),
        },
        PermanentError,
        "HTTP 409 from Telegence: Subscriber 2145550100 is Cancelled (STATUS_CHANGE_NOT_ALLOWED)",
        id="409-out-of-cancelled",
    ),
    pytest.param(
        {"status": 400, "json": telegence_error("INVALID_STATUS", "Unknown serviceStatus")},
        PermanentError,
        "HTTP 400 from Telegence: Unknown serviceStatus (INVALID_STATUS)",
        id="400-invalid-status",
    ),
    pytest.param(
        {"status": 400, "json": telegence_error("INVALID_REASON", "Unknown reasonCode ZZ")},
        PermanentError,
        "HTTP 400 from Telegence: Unknown reasonCode ZZ (INVALID_REASON)",
        id="400-invalid-reason",
    ),
    pytest.param(
        {
            "status": 400,
            "json": {
                "errors": [
                    {"code": "INVALID_STATUS", "description": "Unknown serviceStatus"},
                    {"code": "INVALID_REASON", "description": "Unknown reasonCode"},
                ]
            },
        },
        PermanentError,
        "HTTP 400 from Telegence: Unknown serviceStatus (INVALID_STATUS); "
        "Unknown reasonCode (INVALID_REASON)",
        id="400-two-errors",
    ),
    pytest.param(
        {"status": 422, "json": {"message": "Unprocessable"}},
        PermanentError,
        "HTTP 422 from Telegence: Unprocessable",
        id="422-other-json",
    ),
    pytest.param(
        {"status": 503, "json": telegence_error("SERVICE_UNAVAILABLE", "Try again later")},
        TransientError,
        "HTTP 503 from Telegence: Try again later (SERVICE_UNAVAILABLE)",
        id="503",
    ),
]


@pytest.mark.parametrize(("reply", "error_type", "message"), ERROR_CASES)
def test_error_responses_become_our_error_types_with_telegence_codes_in_the_message(
    client: TelegenceClient,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    reply: dict[str, Any],
    error_type: type[IntegrationError],
    message: str,
) -> None:
    mocked.patch(SUBSCRIBER_URL, **reply)

    assert_fails_as(
        lambda: change(client),
        error_type=error_type,
        message=message,
        audit=audit,
        status=reply["status"],
    )


def test_rejected_app_credentials_are_an_authentication_error_naming_the_account(
    client: TelegenceClient, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(
        SUBSCRIBER_URL, status=401, json=telegence_error("UNAUTHORIZED", "Invalid app-secret")
    )

    with pytest.raises(AuthenticationError) as raised:
        client.read_subscriber(msisdn=MSISDN)

    assert raised.value.message == (
        f"{AUTH_FAILURE} (HTTP 401 from Telegence: Invalid app-secret (UNAUTHORIZED))"
    )
    assert APP_SECRET not in str(raised.value)
    assert raised.value.call is audit[0]


def test_without_a_billing_account_the_app_id_names_the_account(
    mocked: responses.RequestsMock,
) -> None:
    credentials = Credentials(
        integration_authentication_id=3,
        integration="TELEGENCE",
        base_url=BASE_URL,
        username=APP_ID,
        secret=APP_SECRET,
    )
    client = TelegenceClient(credentials=credentials, timeouts=(1, 1))
    mocked.get(SUBSCRIBER_URL, status=401, json=telegence_error("UNAUTHORIZED", "Denied"))

    with pytest.raises(AuthenticationError) as raised:
        client.read_subscriber(msisdn=MSISDN)

    assert raised.value.message.startswith(
        f"Telegence rejected the app id and secret for Telegence app {APP_ID} ("
    )
    assert TelegenceProcessor.account_label(credentials) == f"Telegence app {APP_ID}"


@pytest.mark.parametrize("method", ["GET", "PATCH"])
def test_a_200_that_is_not_an_object_is_a_permanent_error(
    client: TelegenceClient, mocked: responses.RequestsMock, method: str
) -> None:
    mocked.add(method, SUBSCRIBER_URL, json=["Active"])

    with pytest.raises(PermanentError) as raised:
        if method == "GET":
            client.read_subscriber(msisdn=MSISDN)
        else:
            change(client)

    assert raised.value.message == (
        "HTTP 200 from Telegence: expected a JSON object, got something else"
    )
    assert raised.value.call is not None


# --- Processor -------------------------------------------------------------------------------


def test_processor_declares_its_step_statuses_and_description() -> None:
    assert TelegenceProcessor.steps == (Step.CARRIER_STATUS,)
    assert TelegenceProcessor.descriptions == {
        Step.CARRIER_STATUS: "Update Telegence subscriber status"
    }
    assert {
        name: (m.target, m.carrier_value, m.post_update_status)
        for name, m in TelegenceProcessor.statuses.items()
    } == {
        "Active": ("Active", "Active", "Active"),
        "Suspended": ("Suspended", "Suspended", "Suspended"),
        "Cancelled": ("Cancelled", "Cancelled", "Cancelled"),
    }
    assert TelegenceProcessor.account_label(CREDENTIALS) == "Telegence billing account 287654321"


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("active", "Active"), ("SUSPENDED", "Suspended"), (" Cancelled ", "Cancelled")],
)
def test_canonical_status_is_case_insensitive(value: str, canonical: str) -> None:
    assert TelegenceProcessor.canonical_status(value) == canonical


@pytest.mark.parametrize("value", ["Deactivated", "Restore", "ACTIVATED", ""])
def test_statuses_telegence_cannot_set_are_refused_listing_the_allowed_ones(value: str) -> None:
    with pytest.raises(ValueError) as raised:
        TelegenceProcessor.canonical_status(value)

    assert str(raised.value) == (
        f"Telegence cannot set status {value!r}; allowed: Active, Suspended, Cancelled"
    )


@pytest.mark.parametrize("options", [{}, {"reason_code": "CR"}, {"reason_code": "NP"}])
def test_validate_options_accepts_no_reason_or_a_reason_code(options: dict[str, str]) -> None:
    assert TelegenceProcessor.validate_options(target_status="Suspended", options=options) == []


@pytest.mark.parametrize("reason_code", ["C R", "CR;DROP", "ABCDEFGHIJK"])
def test_validate_options_refuses_a_malformed_reason_code(reason_code: str) -> None:
    problems = TelegenceProcessor.validate_options(
        target_status="Suspended", options={"reason_code": reason_code}
    )

    assert problems == [
        f"reason_code {reason_code!r} is not a Telegence reason code "
        "(up to 10 letters or digits, e.g. CR)"
    ]


@pytest.mark.parametrize("msisdn", ["", "   "])
def test_check_identifiers_refuses_a_device_without_msisdn(
    processor: TelegenceProcessor, mocked: responses.RequestsMock, msisdn: str
) -> None:
    with pytest.raises(PermanentError) as raised:
        processor.check_identifiers(context("Suspended", msisdn=msisdn))

    assert raised.value.message == (
        f"Telegence needs the subscriber number (MSISDN) for ICCID {ICCID}"
    )
    assert len(mocked.calls) == 0


def test_check_identifiers_accepts_a_device_with_msisdn(
    processor: TelegenceProcessor, mocked: responses.RequestsMock
) -> None:
    processor.check_identifiers(context("Suspended"))  # raises nothing

    assert len(mocked.calls) == 0


@pytest.mark.parametrize("target", ["Active", "Suspended", "Cancelled"])
def test_carrier_status_step_patches_the_target_with_reason_cr_and_today(
    processor: TelegenceProcessor, mocked: responses.RequestsMock, target: str
) -> None:
    mocked.patch(SUBSCRIBER_URL, json=changed_body(target, "T-90001"))
    before = datetime.now(UTC)

    result = processor.perform(Step.CARRIER_STATUS, context(target))

    after = datetime.now(UTC)
    assert result.step is Step.CARRIER_STATUS
    assert set(result.updates) == {"carrier_status_at", "carrier_request_id"}
    assert result.updates["carrier_request_id"] == "T-90001"
    stamp = result.updates["carrier_status_at"]
    assert stamp.tzinfo is not None
    assert before <= stamp <= after
    assert result.note == "transaction T-90001"
    request = sent(mocked, 0)
    body = sent_json(request)
    assert body["effectiveDate"] in {before.date().isoformat(), after.date().isoformat()}
    assert body == {
        "serviceStatus": target,
        "reasonCode": "CR",
        "effectiveDate": body["effectiveDate"],
    }
    assert request.headers["Idempotency-Key"] == "pondops-77-carrier_status"
    assert_telegence_headers(request)


def test_a_requested_reason_code_and_the_context_date_are_sent(
    processor: TelegenceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.patch(SUBSCRIBER_URL, json=changed_body("Suspended"))

    processor.perform(
        Step.CARRIER_STATUS,
        context("suspended", options={"reason_code": " NP "}, today=date(2026, 11, 22)),
    )

    assert sent_json(sent(mocked, 0)) == {
        "serviceStatus": "Suspended",
        "reasonCode": "NP",
        "effectiveDate": "2026-11-22",
    }


def test_an_answer_without_transaction_id_records_only_the_time(
    processor: TelegenceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.patch(SUBSCRIBER_URL, json={"subscriberNumber": MSISDN, "serviceStatus": "Active"})

    result = processor.perform(Step.CARRIER_STATUS, context("Active"))

    assert set(result.updates) == {"carrier_status_at"}
    assert result.note == "no transaction id"


def test_a_change_out_of_cancelled_fails_permanently_with_the_carrier_message(
    processor: TelegenceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.patch(
        SUBSCRIBER_URL,
        status=409,
        json=telegence_error("STATUS_CHANGE_NOT_ALLOWED", "Subscriber is Cancelled"),
    )

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.CARRIER_STATUS, context("Active"))

    assert raised.value.message == (
        "HTTP 409 from Telegence: Subscriber is Cancelled (STATUS_CHANGE_NOT_ALLOWED)"
    )


def test_the_step_without_msisdn_fails_before_any_call(
    processor: TelegenceProcessor, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(PermanentError, match=r"needs the subscriber number \(MSISDN\)"):
        processor.perform(Step.CARRIER_STATUS, context("Active", msisdn=""))

    assert len(mocked.calls) == 0


def test_an_unknown_target_is_refused_without_a_call(
    processor: TelegenceProcessor, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(PermanentError, match="Telegence cannot set status 'Deactivated'"):
        processor.perform(Step.CARRIER_STATUS, context("Deactivated"))

    assert len(mocked.calls) == 0


@pytest.mark.parametrize("step", [Step.SERVICE_STATUS, Step.SUBMIT, Step.REV_SERVICE])
def test_steps_telegence_does_not_have_are_refused(
    processor: TelegenceProcessor, step: Step
) -> None:
    with pytest.raises(PermanentError, match="Telegence has no step"):
        processor.perform(step, context("Active"))


@pytest.mark.parametrize(
    ("service_status", "expected"),
    [
        pytest.param("Active", "Active", id="active"),
        pytest.param("suspended", "Suspended", id="lower-case"),
        pytest.param("CANCELLED", "Cancelled", id="upper-case"),
        pytest.param(" Active ", "Active", id="spaces"),
        pytest.param("Pending Activation", None, id="unknown"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_read_status_maps_service_status_to_a_target(
    processor: TelegenceProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    service_status: str | None,
    expected: str | None,
) -> None:
    body: dict[str, Any] = {"subscriberNumber": MSISDN, "iccid": ICCID}
    if service_status is not None:
        body["serviceStatus"] = service_status
    mocked.get(SUBSCRIBER_URL, json=body)

    assert processor.read_status(context("Active")) == expected
    assert [call.description for call in audit] == ["Read Telegence subscriber"]
    assert_telegence_headers(sent(mocked, 0))


def test_read_status_of_an_unknown_subscriber_is_a_permanent_error(
    processor: TelegenceProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(SUBSCRIBER_URL, status=404, json=telegence_error("SUB_404", "Subscriber not found"))

    with pytest.raises(PermanentError, match=r"Subscriber not found \(SUB_404\)"):
        processor.read_status(context("Active"))


def test_read_status_without_msisdn_makes_no_call(
    processor: TelegenceProcessor, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(PermanentError, match="needs the subscriber number"):
        processor.read_status(context("Active", msisdn=""))

    assert len(mocked.calls) == 0
