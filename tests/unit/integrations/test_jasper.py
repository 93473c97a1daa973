"""Jasper client and processor against docs/carriers/jasper.md: the echo check, Jasper's error
bodies, the status table and read_status. The exact requests are test_clients.py; the HTTP
mechanism (timeouts, Retry-After, audit records, …) is test_http.py."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
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
from integrations.jasper import JasperClient, JasperProcessor
from tests.unit.integrations.support import assert_fails_as, sent, sent_json

API_KEY = "jasper-key-Q7w2e9Lk"
USERNAME = "ops-api"
BASE_URL = "https://jasper.example.test"
ICCID = "89011704278000000001"
OTHER_ICCID = "89011704278000000002"
DEVICE_URL = f"{BASE_URL}/rws/api/v1/devices/{ICCID}"
SETTABLE = ["ACTIVATED", "DEACTIVATED", "ACTIVATION_READY", "TEST_READY", "INVENTORY", "RETIRED"]
CREDENTIALS = Credentials(
    integration_authentication_id=3,
    integration="JASPER",
    base_url=BASE_URL,
    username=USERNAME,
    secret=API_KEY,
)
BASIC = "Basic " + base64.b64encode(f"{USERNAME}:{API_KEY}".encode()).decode()


def jasper_error(code: str, message: str) -> dict[str, str]:
    """Jasper's error body."""
    return {"errorCode": code, "errorMessage": message}


def device_body(status: str, iccid: str = ICCID) -> dict[str, str]:
    return {
        "iccid": iccid,
        "imsi": "310170000000001",
        "msisdn": "15550000001",
        "status": status,
        "ratePlan": "IoT Basic 1MB",
        "communicationPlan": "Data Only",
        "dateUpdated": "2026-11-20 10:11:12.000+0000",
    }


@pytest.fixture
def client(audit: list[CallRecord]) -> JasperClient:
    return JasperClient(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))


@pytest.fixture
def processor(audit: list[CallRecord]) -> JasperProcessor:
    return JasperProcessor(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))


def context(target: str, **overrides: Any) -> UpdateContext:
    values: dict[str, Any] = {
        "device_change_id": 77,
        "bulk_change_id": 5,
        "iccid": ICCID,
        "target_status": target,
        "request_id": "req-abc",
    }
    values.update(overrides)
    return UpdateContext(**values)


# --- Client: the echo check ------------------------------------------------------------------


def test_an_echo_naming_another_iccid_is_a_permanent_error_naming_both(
    client: JasperClient, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.put(DEVICE_URL, json={"iccid": OTHER_ICCID})

    with pytest.raises(PermanentError) as raised:
        client.set_status(iccid=ICCID, status="DEACTIVATED", idempotency_key="k")

    assert type(raised.value) is PermanentError
    assert raised.value.message == (
        f"HTTP 200 from Jasper: the answer echoed ICCID {OTHER_ICCID}, not {ICCID}; "
        "the status change is not confirmed"
    )
    assert raised.value.call is audit[0]


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param({"json": {}}, id="no-iccid"),
        pytest.param({"json": {"iccid": None}}, id="null-iccid"),
        pytest.param({"json": {"iccid": " "}}, id="blank-iccid"),
        pytest.param({"json": [ICCID]}, id="not-an-object"),
        pytest.param({"body": ""}, id="empty-body"),
    ],
)
def test_an_answer_without_the_echo_is_a_permanent_error(
    client: JasperClient, mocked: responses.RequestsMock, reply: dict[str, Any]
) -> None:
    mocked.put(DEVICE_URL, status=200, **reply)

    with pytest.raises(PermanentError) as raised:
        client.set_status(iccid=ICCID, status="DEACTIVATED", idempotency_key="k")

    assert raised.value.message == (
        f"HTTP 200 from Jasper: the answer did not echo ICCID {ICCID}; "
        "the status change is not confirmed"
    )


def test_an_echo_with_surrounding_spaces_is_still_ours(
    client: JasperClient, mocked: responses.RequestsMock
) -> None:
    mocked.put(DEVICE_URL, json={"iccid": f" {ICCID} "})

    client.set_status(iccid=ICCID, status="ACTIVATED", idempotency_key="k")

    assert len(mocked.calls) == 1


# --- Client: error shapes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "error_type", "message"),
    [
        pytest.param(
            {"status": 400, "json": jasper_error("10000024", "Invalid status change")},
            PermanentError,
            "HTTP 400 from Jasper: Invalid status change (10000024)",
            id="400-refused-transition",
        ),
        pytest.param(
            {"status": 404, "json": jasper_error("20000001", "Resource not found - Invalid ICCID")},
            PermanentError,
            "HTTP 404 from Jasper: Resource not found - Invalid ICCID (20000001)",
            id="404-unknown-iccid",
        ),
        pytest.param(
            {"status": 409, "json": {"errorMessage": "Device is locked"}},
            PermanentError,
            "HTTP 409 from Jasper: Device is locked",
            id="409-without-code",
        ),
        pytest.param(
            {"status": 503, "json": jasper_error("50000001", "Service unavailable")},
            TransientError,
            "HTTP 503 from Jasper: Service unavailable (50000001)",
            id="503-json",
        ),
    ],
)
def test_error_responses_become_readable_errors_of_the_right_kind(
    client: JasperClient,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    reply: dict[str, Any],
    error_type: type[IntegrationError],
    message: str,
) -> None:
    mocked.put(DEVICE_URL, **reply)

    assert_fails_as(
        lambda: client.set_status(iccid=ICCID, status="DEACTIVATED", idempotency_key="k"),
        error_type=error_type,
        message=message,
        audit=audit,
        status=reply["status"],
    )


def test_rejected_credentials_are_an_authentication_error_naming_the_account(
    client: JasperClient, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(DEVICE_URL, status=401, json=jasper_error("10000001", "Invalid credentials"))

    with pytest.raises(AuthenticationError) as raised:
        client.get_device(iccid=ICCID)

    assert raised.value.message == (
        "Jasper rejected the credentials of Jasper account ops-api "
        "(HTTP 401 from Jasper: Invalid credentials (10000001))"
    )
    assert API_KEY not in str(raised.value)
    assert raised.value.call is audit[0]


def test_a_device_read_that_is_not_an_object_is_a_permanent_error(
    client: JasperClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(DEVICE_URL, json=["ACTIVATED"])

    with pytest.raises(PermanentError) as raised:
        client.get_device(iccid=ICCID)

    assert (
        raised.value.message == "HTTP 200 from Jasper: expected a JSON object, got something else"
    )


# --- Processor: declarations -----------------------------------------------------------------


def test_processor_declares_its_step_statuses_and_description() -> None:
    assert JasperProcessor.steps == (Step.CARRIER_STATUS,)
    assert JasperProcessor.descriptions == {Step.CARRIER_STATUS: "Update Jasper device status"}
    assert {
        name: (mapping.target, mapping.carrier_value, mapping.post_update_status)
        for name, mapping in JasperProcessor.statuses.items()
    } == {name: (name, name, name) for name in SETTABLE}


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("ACTIVATED", "ACTIVATED"),
        ("deactivated", "DEACTIVATED"),
        (" Activation_Ready ", "ACTIVATION_READY"),
        ("test_ready", "TEST_READY"),
        ("Inventory", "INVENTORY"),
        ("retired", "RETIRED"),
    ],
)
def test_canonical_status_accepts_every_settable_status_in_any_case(
    value: str, canonical: str
) -> None:
    assert JasperProcessor.canonical_status(value) == canonical


@pytest.mark.parametrize("value", ["PURGED", "REPLACED", "ACTIVE", "SUSPENDED", ""])
def test_canonical_status_refuses_read_only_and_unknown_statuses_listing_the_allowed(
    value: str,
) -> None:
    with pytest.raises(ValueError) as raised:
        JasperProcessor.canonical_status(value)

    assert str(raised.value) == (
        f"Jasper cannot set status {value!r}; allowed: ACTIVATED, DEACTIVATED, "
        "ACTIVATION_READY, TEST_READY, INVENTORY, RETIRED"
    )


@pytest.mark.parametrize(
    ("account", "username", "label"),
    [
        ("", "ops-api", "Jasper account ops-api"),
        ("ops-api", "ops-api", "Jasper account ops-api"),
        ("Acme US", "ops-api", "Jasper account ops-api (Acme US)"),
        ("Acme US", "", "Jasper account Acme US"),
    ],
)
def test_account_label_names_the_username_and_the_account_label(
    account: str, username: str, label: str
) -> None:
    credentials = Credentials(
        integration_authentication_id=3,
        integration="JASPER",
        base_url=BASE_URL,
        account=account,
        username=username,
        secret=API_KEY,
    )

    assert JasperProcessor.account_label(credentials) == label


def test_validate_options_accepts_none_and_refuses_any_given() -> None:
    assert JasperProcessor.validate_options(target_status="ACTIVATED", options={}) == []
    assert (
        JasperProcessor.validate_options(
            target_status="ACTIVATED", options={"service_plan": "", "reason_code": ""}
        )
        == []
    )
    assert JasperProcessor.validate_options(
        target_status="DEACTIVATED", options={"service_plan": "IoT 1GB", "reason_code": "FF"}
    ) == [
        "Jasper takes no reason_code; leave it empty",
        "Jasper takes no service_plan; leave it empty",
    ]


def test_check_identifiers_needs_only_an_iccid(processor: JasperProcessor) -> None:
    processor.check_identifiers(context("ACTIVATED", msisdn="", eid=""))

    with pytest.raises(PermanentError, match="Jasper needs the device's ICCID"):
        processor.check_identifiers(context("ACTIVATED", iccid="  "))


# --- Processor: the step ---------------------------------------------------------------------


@pytest.mark.parametrize("target", SETTABLE)
def test_carrier_status_step_puts_the_target_status_and_records_when(
    processor: JasperProcessor, mocked: responses.RequestsMock, target: str
) -> None:
    mocked.put(DEVICE_URL, json={"iccid": ICCID})
    before = datetime.now(UTC)

    result = processor.perform(Step.CARRIER_STATUS, context(target.lower()))

    assert result.step is Step.CARRIER_STATUS
    assert set(result.updates) == {"carrier_status_at"}
    stamp = result.updates["carrier_status_at"]
    assert stamp.tzinfo is not None
    assert before <= stamp <= datetime.now(UTC)
    request = sent(mocked, 0)
    assert sent_json(request) == {"status": target}
    assert request.headers["Idempotency-Key"] == "pondops-77-carrier_status"
    assert request.headers["Authorization"] == BASIC


def test_a_wrong_echo_fails_the_step_permanently(
    processor: JasperProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.put(DEVICE_URL, json={"iccid": OTHER_ICCID})

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.CARRIER_STATUS, context("DEACTIVATED"))

    assert ICCID in raised.value.message and OTHER_ICCID in raised.value.message


def test_an_unknown_target_is_refused_without_a_call(
    processor: JasperProcessor, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(PermanentError, match="Jasper cannot set status 'PURGED'"):
        processor.perform(Step.CARRIER_STATUS, context("PURGED"))

    assert len(mocked.calls) == 0


@pytest.mark.parametrize("step", [Step.SERVICE_STATUS, Step.SUBMIT, Step.REV_SERVICE])
def test_steps_jasper_does_not_have_are_refused(
    processor: JasperProcessor, mocked: responses.RequestsMock, step: Step
) -> None:
    with pytest.raises(PermanentError, match="Jasper has no step"):
        processor.perform(step, context("ACTIVATED"))

    assert len(mocked.calls) == 0


# --- Processor: read_status ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        *[pytest.param(device_body(name), name, id=name) for name in SETTABLE],
        pytest.param(device_body("activated"), "ACTIVATED", id="lower-case"),
        pytest.param(device_body("PURGED"), None, id="purged"),
        pytest.param(device_body("REPLACED"), None, id="replaced"),
        pytest.param(device_body("SOMETHING_NEW"), None, id="unknown"),
        pytest.param({"iccid": ICCID}, None, id="missing"),
        pytest.param({"iccid": ICCID, "status": 3}, None, id="not-a-string"),
    ],
)
def test_read_status_maps_the_devices_status_to_a_target(
    processor: JasperProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    body: dict[str, Any],
    expected: str | None,
) -> None:
    mocked.get(DEVICE_URL, json=body)

    assert processor.read_status(context("ACTIVATED")) == expected
    assert [call.description for call in audit] == ["Read Jasper device"]


def test_read_status_of_an_unknown_iccid_is_a_permanent_error(
    processor: JasperProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        DEVICE_URL, status=404, json=jasper_error("20000001", "Resource not found - Invalid ICCID")
    )

    with pytest.raises(PermanentError, match="Resource not found - Invalid ICCID"):
        processor.read_status(context("ACTIVATED"))
