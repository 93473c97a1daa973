"""POND client and processor against docs/carriers/pond.md: what the client reads out of POND's
answers and error bodies, and the two resumable steps. The exact requests are test_clients.py;
the HTTP mechanism (timeouts, Retry-After, audit records, …) is test_http.py."""

from __future__ import annotations

from datetime import UTC, datetime
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
    Progress,
    Step,
    TransientError,
    UpdateContext,
)
from integrations.pond import PACKAGE_STATUSES, Package, PondClient, PondProcessor
from tests.unit.integrations.support import assert_fails_as, sent, sent_json

API_KEY = "pond-key-Zx81q0"
DISTRIBUTOR = "4242"
BASE_URL = "https://pond.example.test/ds/u/distributorPPUService/v1"
ROOT = f"{BASE_URL}/{DISTRIBUTOR}"
ICCID = "89148000000000000001"
SIM_URL = f"{ROOT}/sim/{ICCID}/status"
PACKAGES_URL = f"{ROOT}/sim/{ICCID}/package/infos"
CREDENTIALS = Credentials(
    integration_authentication_id=1,
    integration="POND",
    base_url=BASE_URL,
    account=DISTRIBUTOR,
    secret=API_KEY,
)


def package_url(package_id: int) -> str:
    return f"{ROOT}/package/{package_id}/status"


def pond_error(status: int, message: str) -> dict[str, Any]:
    """POND's ErrorMessage body."""
    return {
        "status": status,
        "code": status * 100 + 1,
        "message": message,
        "developer_message": f"{message} (developer detail)",
        "reference_id": "ref-123",
    }


def sim_body(value: str) -> dict[str, str]:
    return {
        "sim_status": value,
        "sim_data_service_status": value,
        "sim_voice_service_status": value,
        "sim_sms_service_status": value,
    }


@pytest.fixture
def client(audit: list[CallRecord]) -> PondClient:
    return PondClient(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))


@pytest.fixture
def processor(audit: list[CallRecord]) -> PondProcessor:
    return PondProcessor(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))


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


def assert_pond_headers(request: requests.PreparedRequest, *, request_id: str = "") -> None:
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["Accept"] == "application/json"
    if request_id:
        assert request.headers["request_id"] == request_id
    else:
        assert "request_id" not in request.headers
    assert "Authorization" not in request.headers


# --- Client: reading the answers ------------------------------------------------------------


def test_list_packages_parses_the_package_list(
    client: PondClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        PACKAGES_URL,
        json=[
            {"package_id": 7001, "package_status": "Active", "package_type_id": 12},
            {"package_id": 7002, "package_status": "Not Active"},
        ],
    )

    packages = client.list_packages(iccid=ICCID)

    assert packages == [
        Package(package_id=7001, package_status="Active", package_type_id=12),
        Package(package_id=7002, package_status="Not Active", package_type_id=None),
    ]


def test_list_packages_of_a_sim_without_packages_is_empty(
    client: PondClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(PACKAGES_URL, json=[])

    assert client.list_packages(iccid=ICCID) == []


# --- Client: errors --------------------------------------------------------------------------


ERROR_CASES = [
    pytest.param(
        {"status": 404, "json": pond_error(404, "SIM not found")},
        PermanentError,
        "HTTP 404 from POND: SIM not found",
        id="404-unknown-iccid",
    ),
    pytest.param(
        {"status": 409, "json": pond_error(409, "Transition out of Terminated is not allowed")},
        PermanentError,
        "HTTP 409 from POND: Transition out of Terminated is not allowed",
        id="409-out-of-terminated",
    ),
    pytest.param(
        {"status": 400, "json": pond_error(400, "Invalid sim_data_service_status")},
        PermanentError,
        "HTTP 400 from POND: Invalid sim_data_service_status",
        id="400-bad-request",
    ),
    pytest.param(
        {"status": 503, "json": pond_error(503, "Service Unavailable")},
        TransientError,
        "HTTP 503 from POND: Service Unavailable",
        id="503",
    ),
]


@pytest.mark.parametrize(("reply", "error_type", "message"), ERROR_CASES)
def test_error_responses_become_our_error_types_with_readable_messages(
    client: PondClient,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    reply: dict[str, Any],
    error_type: type[IntegrationError],
    message: str,
) -> None:
    mocked.post(SIM_URL, **reply)

    assert_fails_as(
        lambda: client.set_sim_status(iccid=ICCID, value="Inactive", idempotency_key="k"),
        error_type=error_type,
        message=message,
        audit=audit,
        status=reply["status"],
    )


def test_a_rejected_key_is_an_authentication_error_naming_the_distributor(
    client: PondClient, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(SIM_URL, status=401, json=pond_error(401, "Invalid API key"))

    with pytest.raises(AuthenticationError) as raised:
        client.read_sim(iccid=ICCID)

    assert raised.value.message == (
        "POND rejected the API key for distributor 4242 (HTTP 401 from POND: Invalid API key)"
    )
    assert API_KEY not in str(raised.value)
    assert raised.value.call is audit[0]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"packages": []}, id="object-not-list"),
        pytest.param([{"package_status": "Active"}], id="no-package-id"),
        pytest.param([{"package_id": "x", "package_status": "Active"}], id="bad-id"),
        pytest.param(["7001"], id="not-objects"),
    ],
)
def test_a_package_list_of_the_wrong_shape_is_a_permanent_error(
    client: PondClient, mocked: responses.RequestsMock, body: Any
) -> None:
    mocked.get(PACKAGES_URL, json=body)

    with pytest.raises(PermanentError) as raised:
        client.list_packages(iccid=ICCID)

    assert raised.value.message.startswith("HTTP 200 from POND: expected")
    assert raised.value.call is not None


def test_a_sim_read_that_is_not_an_object_is_a_permanent_error(
    client: PondClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(SIM_URL, json=["Active"])

    with pytest.raises(PermanentError):
        client.read_sim(iccid=ICCID)


# --- Processor -------------------------------------------------------------------------------


def test_processor_declares_its_steps_statuses_and_descriptions() -> None:
    assert PondProcessor.steps == (Step.CARRIER_STATUS, Step.SERVICE_STATUS)
    assert PondProcessor.descriptions == {
        Step.CARRIER_STATUS: "Update POND SIM status",
        Step.SERVICE_STATUS: "Update POND package status",
    }
    assert {
        name: (m.carrier_value, PACKAGE_STATUSES[name], m.post_update_status)
        for name, m in PondProcessor.statuses.items()
    } == {
        "ACTIVE": ("Active", "Active", "ACTIVE"),
        "SUSPENDED": ("Inactive", "Not Active", "SUSPENDED"),
        "TERMINATED": ("Inactive", "Terminated", "TERMINATED"),
    }
    assert PondProcessor.account_label(CREDENTIALS) == "POND distributor 4242"
    assert PondProcessor.canonical_status("suspended") == "SUSPENDED"


@pytest.mark.parametrize(
    ("target", "value"),
    [("ACTIVE", "Active"), ("SUSPENDED", "Inactive"), ("TERMINATED", "Inactive")],
)
def test_carrier_status_step_sets_the_sim_services_for_the_target(
    processor: PondProcessor, mocked: responses.RequestsMock, target: str, value: str
) -> None:
    mocked.post(SIM_URL, status=204)
    before = datetime.now(UTC)

    result = processor.perform(Step.CARRIER_STATUS, context(target))

    assert result.step is Step.CARRIER_STATUS
    assert set(result.updates) == {"carrier_status_at"}
    stamp = result.updates["carrier_status_at"]
    assert stamp.tzinfo is not None
    assert before <= stamp <= datetime.now(UTC)
    request = sent(mocked, 0)
    assert sent_json(request) == {
        "sim_data_service_status": value,
        "sim_voice_service_status": value,
        "sim_sms_service_status": value,
    }
    assert request.headers["Idempotency-Key"] == "pondops-77-carrier_status"
    assert_pond_headers(request, request_id="req-abc")


def test_an_unknown_target_is_refused_without_a_call(
    processor: PondProcessor, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(PermanentError, match="POND cannot set status 'DELETED'"):
        processor.perform(Step.CARRIER_STATUS, context("DELETED"))

    assert len(mocked.calls) == 0


def test_service_status_step_changes_only_packages_not_yet_in_the_target(
    processor: PondProcessor, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(
        PACKAGES_URL,
        json=[
            {"package_id": 7001, "package_status": "Active", "package_type_id": 12},
            {"package_id": 7002, "package_status": "Not Active", "package_type_id": 12},
            {"package_id": 7003, "package_status": "Active", "package_type_id": 13},
        ],
    )
    mocked.post(package_url(7001), status=204)
    mocked.post(package_url(7003), status=204)

    result = processor.perform(Step.SERVICE_STATUS, context("SUSPENDED"))

    assert set(result.updates) == {"service_status_at"}
    assert result.updates["service_status_at"].tzinfo is not None
    assert result.note == "2 of 3 packages changed"
    posts = [sent(mocked, index) for index in (1, 2)]
    assert [(r.method, r.url) for r in posts] == [
        ("POST", package_url(7001)),
        ("POST", package_url(7003)),
    ]
    assert [sent_json(r) for r in posts] == [{"package_status": "Not Active"}] * 2
    assert [r.headers["Idempotency-Key"] for r in posts] == [
        "pondops-77-service_status-7001",
        "pondops-77-service_status-7003",
    ]
    assert [call.description for call in audit] == [
        "List POND SIM packages",
        "Update POND package status",
        "Update POND package status",
    ]


@pytest.mark.parametrize(
    ("target", "package_value"),
    [("ACTIVE", "Active"), ("SUSPENDED", "Not Active"), ("TERMINATED", "Terminated")],
)
def test_service_status_step_sends_the_package_value_for_the_target(
    processor: PondProcessor, mocked: responses.RequestsMock, target: str, package_value: str
) -> None:
    current = "Not Active" if target == "ACTIVE" else "Active"
    mocked.get(PACKAGES_URL, json=[{"package_id": 7001, "package_status": current}])
    mocked.post(package_url(7001), status=204)

    result = processor.perform(Step.SERVICE_STATUS, context(target))

    assert result.note == "1 of 1 packages changed"
    assert sent_json(sent(mocked, 1)) == {"package_status": package_value}


def test_service_status_step_with_every_package_in_the_target_changes_nothing(
    processor: PondProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        PACKAGES_URL,
        json=[
            {"package_id": 7001, "package_status": "Terminated"},
            {"package_id": 7002, "package_status": "terminated"},
        ],
    )

    result = processor.perform(Step.SERVICE_STATUS, context("TERMINATED"))

    assert result.note == "0 of 2 packages changed"
    assert len(mocked.calls) == 1


def test_service_status_step_of_a_sim_without_packages_has_nothing_to_do(
    processor: PondProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(PACKAGES_URL, json=[])

    result = processor.perform(Step.SERVICE_STATUS, context("ACTIVE"))

    assert set(result.updates) == {"service_status_at"}
    assert result.note == "no packages to change"
    assert len(mocked.calls) == 1


def test_a_refused_package_change_fails_the_step(
    processor: PondProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(PACKAGES_URL, json=[{"package_id": 7001, "package_status": "Terminated"}])
    mocked.post(package_url(7001), status=409, json=pond_error(409, "Package 7001 is Terminated"))

    with pytest.raises(PermanentError, match="HTTP 409 from POND: Package 7001 is Terminated"):
        processor.perform(Step.SERVICE_STATUS, context("ACTIVE"))


def test_steps_pond_does_not_have_are_refused(processor: PondProcessor) -> None:
    with pytest.raises(PermanentError, match="POND has no step"):
        processor.perform(Step.REV_SERVICE, context("ACTIVE", progress=Progress()))


@pytest.mark.parametrize(
    ("services", "packages", "expected"),
    [
        pytest.param("Active", ["Active"], "ACTIVE", id="active"),
        pytest.param("Active", [], "ACTIVE", id="active-no-packages"),
        pytest.param("Inactive", ["Not Active", "Not Active"], "SUSPENDED", id="suspended"),
        pytest.param("Inactive", [], "SUSPENDED", id="inactive-no-packages"),
        pytest.param("Inactive", ["Terminated"], "TERMINATED", id="terminated"),
        pytest.param("Inactive", ["Not Active", "Terminated"], "TERMINATED", id="any-terminated"),
        pytest.param("Active", ["Not Active"], None, id="active-sim-inactive-package"),
        pytest.param("Inactive", ["Active"], None, id="inactive-sim-active-package"),
        pytest.param("Pending", ["Active"], None, id="unknown-sim-value"),
    ],
)
def test_read_status_maps_services_and_packages_to_a_target(
    processor: PondProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    services: str,
    packages: list[str],
    expected: str | None,
) -> None:
    mocked.get(SIM_URL, json=sim_body(services))
    mocked.get(
        PACKAGES_URL,
        json=[{"package_id": 7000 + i, "package_status": s} for i, s in enumerate(packages)],
    )

    assert processor.read_status(context("ACTIVE")) == expected
    assert [call.description for call in audit] == [
        "Read POND SIM status",
        "List POND SIM packages",
    ]
    assert all(sent(mocked, i).headers["request_id"] == "req-abc" for i in (0, 1))


def test_read_status_with_mixed_services_is_unknown(
    processor: PondProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(SIM_URL, json={**sim_body("Active"), "sim_sms_service_status": "Inactive"})
    mocked.get(PACKAGES_URL, json=[])

    assert processor.read_status(context("ACTIVE")) is None
