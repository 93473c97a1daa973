"""POND client and processor against docs/carriers/pond.md: every request a status update can
make (method, path, query, headers, body), what the client reads out of POND's answers and
error bodies, and the two resumable steps. The table of each client's main requests is
test_clients.py; the HTTP mechanism (timeouts, Retry-After forms, audit records, …) is
test_http.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

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
from integrations.pond import (
    PACKAGE_STATUSES,
    Package,
    PondClient,
    PondProcessor,
    SimStatus,
    same_value,
)
from tests.unit.integrations.support import assert_fails_as, sent, sent_json

API_KEY = "pond-key-Zx81q0"
DISTRIBUTOR = "4242"
BASE_URL = "https://pond.example.test/ds/u/distributorPPUService/v1"
ROOT = f"{BASE_URL}/{DISTRIBUTOR}"
ICCID = "89148000000000000001"
SIM_URL = f"{ROOT}/sim/{ICCID}/status"
PACKAGES_URL = f"{ROOT}/sim/{ICCID}/package/infos"
SERVICE_FIELDS = ("sim_data_service_status", "sim_voice_service_status", "sim_sms_service_status")
REFERENCE = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
CREDENTIALS = Credentials(
    integration_authentication_id=1,
    integration="POND",
    base_url=BASE_URL,
    account=DISTRIBUTOR,
    secret=API_KEY,
)


def package_id(n: int) -> str:
    return f"6f1c2e0a-3b1d-4c47-9a55-{n:012d}"


def package_url(package: str) -> str:
    return f"{ROOT}/package/{package}/status"


def page_url(offset: int) -> str:
    return f"{PACKAGES_URL}?offset={offset}&count=100"


def pond_error(status: int, message: str, reference: str | None = REFERENCE) -> dict[str, Any]:
    """Telna's ErrorMessage as the live API sends it (camelCase)."""
    return {
        "status": status,
        "code": 0,
        "message": message,
        "link": "Not Available",
        "developerMessage": f"{message} (developer detail)",
        "referenceId": reference,
    }


def sim_body(value: str, status_of_sim: str = "In-Service") -> dict[str, str]:
    """A SIM read; the deprecated ``status`` contradicts the services on purpose."""
    return {**dict.fromkeys(SERVICE_FIELDS, value), "status_of_sim": status_of_sim, "status": "X"}


def element(n: int, status: str, **extra: Any) -> dict[str, Any]:
    return {"package_id": package_id(n), "sim_iccid": ICCID, "status": status, **extra}


def packages_page(statuses: list[str], *, offset: int = 0, total: int | None = None) -> Any:
    return {
        "total": len(statuses) if total is None else total,
        "offset": offset,
        "count": 100,
        "elements": [element(offset + i, s) for i, s in enumerate(statuses)],
    }


def add_packages(mocked: responses.RequestsMock, statuses: list[str]) -> None:
    mocked.get(page_url(0), json=packages_page(statuses))


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


def assert_pond_headers(
    request: requests.PreparedRequest, *, request_id: str, idempotency_key: str = ""
) -> None:
    """Exactly POND's headers: the key, Accept, RequestId (never ``request_id``), and on a
    write the body's type and the Idempotency-Key."""
    ours = {
        name: value
        for name, value in request.headers.items()
        if name not in ("User-Agent", "Accept-Encoding", "Connection", "Content-Length")
    }
    expected = {"x-api-key": API_KEY, "Accept": "application/json", "RequestId": request_id}
    if idempotency_key:
        expected |= {"Idempotency-Key": idempotency_key, "Content-Type": "application/json"}
    assert ours == expected


# --- Client: the SIM read --------------------------------------------------------------------


def test_read_sim_reads_the_services_and_status_of_sim_and_ignores_the_deprecated_status(
    client: PondClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(SIM_URL, json=sim_body("ENABLED", "Pre-Service"))

    assert client.read_sim(iccid=ICCID) == SimStatus("ENABLED", "ENABLED", "ENABLED", "Pre-Service")
    assert "RequestId" not in sent(mocked, 0).headers  # optional: left out when there is none


def test_read_sim_with_missing_fields_reads_them_as_empty(
    client: PondClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(SIM_URL, json={"sim_data_service_status": "DISABLED", "status": "ACTIVE"})

    assert client.read_sim(iccid=ICCID) == SimStatus("DISABLED", "", "", "")


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param({"json": ["ENABLED"]}, id="not-an-object"),
        pytest.param({"body": "<html><title>Maintenance</title></html>"}, id="html-200"),
    ],
)
def test_a_sim_read_that_is_not_a_json_object_is_a_readable_permanent_error(
    client: PondClient, mocked: responses.RequestsMock, reply: dict[str, Any]
) -> None:
    mocked.get(SIM_URL, content_type="text/html", **reply)

    with pytest.raises(PermanentError, match=r"^HTTP 200 from POND: expected") as raised:
        client.read_sim(iccid=ICCID)

    assert raised.value.call is not None


# --- Client: the package list ----------------------------------------------------------------


def test_list_packages_reads_every_page_advancing_offset_by_the_packages_received(
    client: PondClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(page_url(0), json=packages_page(["ACTIVE", "TERMINATED"], total=5))
    mocked.get(page_url(2), json=packages_page(["NOT_ACTIVE", "ACTIVE"], offset=2, total=5))
    mocked.get(page_url(4), json=packages_page(["ACTIVE"], offset=4, total=5))

    packages = client.list_packages(iccid=ICCID, request_id="req-1")

    assert [p.package_id for p in packages] == [package_id(n) for n in range(5)]
    assert [p.status for p in packages] == [
        "ACTIVE",
        "TERMINATED",
        "NOT_ACTIVE",
        "ACTIVE",
        "ACTIVE",
    ]
    for index, offset in enumerate((0, 2, 4)):
        request = sent(mocked, index)
        url = urlsplit(str(request.url))
        assert (request.method, url.path) == ("GET", urlsplit(PACKAGES_URL).path)
        assert parse_qsl(url.query) == [("offset", str(offset)), ("count", "100")]
        assert_pond_headers(request, request_id="req-1")


def test_list_packages_keeps_string_ids_and_the_optional_package_type(
    client: PondClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        page_url(0),
        json={
            "total": 2,
            "offset": 0,
            "count": 100,
            "elements": [
                {"package_id": "0001", "status": "ACTIVE", "package_type_id": 12},
                {"package_id": package_id(2), "status": "Not Active", "package_type_id": None},
            ],
        },
    )

    assert client.list_packages(iccid=ICCID) == [
        Package("0001", "ACTIVE", 12),  # a string, never an integer
        Package(package_id(2), "Not Active", None),
    ]


def test_list_packages_of_a_sim_without_packages_is_one_call_and_empty(
    client: PondClient, mocked: responses.RequestsMock
) -> None:
    add_packages(mocked, [])

    assert client.list_packages(iccid=ICCID) == []
    assert len(mocked.calls) == 1


def test_a_page_without_packages_before_the_total_is_a_permanent_error(
    client: PondClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(page_url(0), json=packages_page(["ACTIVE"], total=3))
    mocked.get(page_url(1), json=packages_page([], offset=1, total=3))

    with pytest.raises(PermanentError, match=f"package list of SIM {ICCID} ended after 1 of 3"):
        client.list_packages(iccid=ICCID)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([element(0, "ACTIVE")], id="bare-list"),
        pytest.param({"elements": [element(0, "ACTIVE")]}, id="no-total"),
        pytest.param({"total": "1", "elements": []}, id="text-total"),
        pytest.param({"total": 1, "packages": [element(0, "ACTIVE")]}, id="no-elements"),
        pytest.param({"total": 1, "elements": [{"status": "ACTIVE"}]}, id="no-package-id"),
        pytest.param(
            {"total": 1, "elements": [{"package_id": 7001, "status": "ACTIVE"}]}, id="int-id"
        ),
        pytest.param(
            {"total": 1, "elements": [{"package_id": "p", "package_status": "ACTIVE"}]},
            id="no-status",
        ),
        pytest.param({"total": 1, "elements": ["p"]}, id="not-objects"),
    ],
)
def test_a_package_list_of_the_wrong_shape_is_a_permanent_error(
    client: PondClient, mocked: responses.RequestsMock, body: Any
) -> None:
    mocked.get(page_url(0), json=body)

    with pytest.raises(PermanentError) as raised:
        client.list_packages(iccid=ICCID)

    assert raised.value.message.startswith("HTTP 200 from POND: expected a package list")
    assert raised.value.call is not None


def test_an_empty_package_list_answer_is_a_permanent_error(
    client: PondClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(page_url(0), body="")

    with pytest.raises(PermanentError, match="expected a package list"):
        client.list_packages(iccid=ICCID)


# --- Client: errors --------------------------------------------------------------------------


ERROR_CASES = [
    pytest.param(
        {"status": 400, "json": pond_error(400, "iccid should be exactly 19 digits", None)},
        PermanentError,
        "HTTP 400 from POND: iccid should be exactly 19 digits",
        id="400-validation-no-reference",
    ),
    pytest.param(
        {"status": 404, "json": pond_error(404, "SIM not found")},
        PermanentError,
        f"HTTP 404 from POND: SIM not found (reference {REFERENCE})",
        id="404-unknown-iccid",
    ),
    pytest.param(
        {"status": 409, "json": pond_error(409, "SIM is terminated")},
        PermanentError,
        f"HTTP 409 from POND: SIM is terminated (reference {REFERENCE})",
        id="409-refused-transition",
    ),
    pytest.param(
        {
            "status": 404,
            "json": {
                "status": 404,
                "message": "Package not found",
                "developer_message": "d",
                "reference_id": "ref-9",
            },
        },
        PermanentError,
        "HTTP 404 from POND: Package not found (reference ref-9)",
        id="404-swagger-snake-case",
    ),
    pytest.param(
        {"status": 400, "json": {"status": 400, "message": "", "developerMessage": "bad body"}},
        PermanentError,
        "HTTP 400 from POND: bad body",
        id="400-developer-message-only",
    ),
    pytest.param(
        {
            "status": 429,
            "json": pond_error(429, "Too many requests"),
            "headers": {"Retry-After": "7"},
        },
        TransientError,
        f"HTTP 429 from POND: Too many requests (reference {REFERENCE})",
        id="429",
    ),
    pytest.param(
        {"status": 408, "json": pond_error(408, "Request Timeout")},
        TransientError,
        f"HTTP 408 from POND: Request Timeout (reference {REFERENCE})",
        id="408",
    ),
    pytest.param(
        {"status": 500, "body": ""},
        TransientError,
        "HTTP 500 from POND (empty body)",
        id="500-empty",
    ),
    pytest.param(
        {
            "status": 502,
            "body": "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            "content_type": "text/html",
        },
        TransientError,
        "HTTP 502 from POND: 502 Bad Gateway",
        id="502-html-page",
    ),
    pytest.param(
        {"status": 503, "json": pond_error(503, "Service Unavailable")},
        TransientError,
        f"HTTP 503 from POND: Service Unavailable (reference {REFERENCE})",
        id="503",
    ),
    pytest.param(
        {"status": 504, "body": "upstream timed out"},
        TransientError,
        "HTTP 504 from POND: upstream timed out",
        id="504-text",
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

    error = assert_fails_as(
        lambda: client.set_sim_services(iccid=ICCID, value="DISABLED", idempotency_key="k"),
        error_type=error_type,
        message=message,
        audit=audit,
        status=reply["status"],
    )
    if reply["status"] == 429:
        assert isinstance(error, TransientError) and error.retry_after == 7


@pytest.mark.parametrize("status", [401, 403])
def test_a_rejected_key_is_a_permanent_authentication_error_naming_the_distributor(
    client: PondClient, mocked: responses.RequestsMock, audit: list[CallRecord], status: int
) -> None:
    mocked.get(SIM_URL, status=status, json=pond_error(status, "Invalid API key", None))

    with pytest.raises(AuthenticationError) as raised:
        client.read_sim(iccid=ICCID)

    assert raised.value.message == (
        f"POND rejected the API key for distributor 4242 (HTTP {status} from POND: Invalid API key)"
    )
    assert API_KEY not in str(raised.value)
    assert raised.value.call is audit[0]
    assert len(mocked.calls) == 1  # never repeated


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (requests.ConnectTimeout("slow"), "POND timed out: ConnectTimeout"),
        (requests.ConnectionError("refused"), "POND connection failed: ConnectionError"),
    ],
)
def test_timeouts_and_connection_errors_are_transient(
    client: PondClient, mocked: responses.RequestsMock, failure: Exception, message: str
) -> None:
    mocked.post(package_url(package_id(1)), body=failure)

    with pytest.raises(TransientError, match=f"^{message}$"):
        client.set_package_status(package_id=package_id(1), value="ACTIVE", idempotency_key="k")


# --- Value matching --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        ("NOT_ACTIVE", "Not Active", True),
        ("not-active", "NOT_ACTIVE", True),
        ("Not  active ", "not_active", True),
        ("In-Service", "IN_SERVICE", True),
        ("in service", "In-Service", True),
        ("ENABLED", "enabled", True),
        ("NOT_ACTIVE", "ACTIVE", False),
        ("NOTACTIVE", "NOT_ACTIVE", False),
        ("", "ACTIVE", False),
    ],
)
def test_values_match_without_regard_to_case_with_underscores_hyphens_and_spaces_alike(
    left: str, right: str, same: bool
) -> None:
    assert same_value(left, right) is same


# --- Processor: declarations -----------------------------------------------------------------


def test_processor_declares_its_steps_statuses_descriptions_and_limits() -> None:
    assert PondProcessor.steps == (Step.CARRIER_STATUS, Step.SERVICE_STATUS)
    assert PondProcessor.descriptions == {
        Step.CARRIER_STATUS: "Update POND SIM status",
        Step.SERVICE_STATUS: "Update POND package status",
    }
    assert {
        name: (m.carrier_value, PACKAGE_STATUSES[name], m.post_update_status)
        for name, m in PondProcessor.statuses.items()
    } == {
        "ACTIVE": ("ENABLED", "ACTIVE", "ACTIVE"),
        "SUSPENDED": ("DISABLED", "NOT_ACTIVE", "SUSPENDED"),
        "TERMINATED": ("DISABLED", "TERMINATED", "TERMINATED"),
    }
    assert PondProcessor.account_label(CREDENTIALS) == "POND distributor 4242"
    assert PondProcessor.canonical_status("suspended") == "SUSPENDED"
    # POND publishes no limit: a new row starts at the base defaults.
    assert (PondProcessor.default_rate_limit, PondProcessor.default_max_concurrency) == (10.0, 4)


# --- Processor: step 1 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "value"),
    [("ACTIVE", "ENABLED"), ("SUSPENDED", "DISABLED"), ("TERMINATED", "DISABLED")],
)
def test_carrier_status_step_sets_all_three_sim_services_for_the_target(
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
    assert (request.method, request.url) == ("POST", SIM_URL)
    assert sent_json(request) == dict.fromkeys(SERVICE_FIELDS, value)
    assert_pond_headers(request, request_id="req-abc", idempotency_key="pondops-77-carrier_status")


def test_a_2xx_with_a_body_is_also_success(
    processor: PondProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.post(SIM_URL, status=200, json={"result": "ok"})

    assert processor.perform(Step.CARRIER_STATUS, context("ACTIVE")).updates


def test_without_a_run_request_id_the_device_change_is_the_correlation_id(
    processor: PondProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.post(SIM_URL, status=204)

    processor.perform(Step.CARRIER_STATUS, context("ACTIVE", request_id=""))

    assert sent(mocked, 0).headers["RequestId"] == "pondops-77"


def test_an_unknown_target_is_refused_without_a_call(
    processor: PondProcessor, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(PermanentError, match="POND cannot set status 'DELETED'"):
        processor.perform(Step.CARRIER_STATUS, context("DELETED"))

    assert len(mocked.calls) == 0


def test_a_terminated_sim_refusing_services_fails_step_1_permanently(
    processor: PondProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.post(SIM_URL, status=400, json=pond_error(400, "SIM is Terminated", None))

    with pytest.raises(PermanentError, match="HTTP 400 from POND: SIM is Terminated"):
        processor.perform(Step.CARRIER_STATUS, context("ACTIVE"))


# --- Processor: step 2 -----------------------------------------------------------------------


def test_service_status_step_changes_only_live_packages_not_yet_in_the_target(
    processor: PondProcessor, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    add_packages(mocked, ["ACTIVE", "NOT_ACTIVE", "TERMINATED", "Active"])
    mocked.post(package_url(package_id(0)), status=204)
    mocked.post(package_url(package_id(3)), status=204)

    result = processor.perform(Step.SERVICE_STATUS, context("SUSPENDED"))

    assert set(result.updates) == {"service_status_at"}
    assert result.updates["service_status_at"].tzinfo is not None
    assert result.note == "2 of 3 live packages changed, 1 terminated skipped"
    assert_pond_headers(sent(mocked, 0), request_id="req-abc")
    posts = [sent(mocked, index) for index in (1, 2)]
    assert [(r.method, r.url) for r in posts] == [
        ("POST", package_url(package_id(0))),
        ("POST", package_url(package_id(3))),
    ]
    assert [sent_json(r) for r in posts] == [{"package_status": "NOT_ACTIVE"}] * 2
    for request, n in zip(posts, (0, 3), strict=True):
        assert_pond_headers(
            request,
            request_id="req-abc",
            idempotency_key=f"pondops-77-service_status-{package_id(n)}",
        )
    assert [call.description for call in audit] == [
        "List POND SIM packages",
        "Update POND package status",
        "Update POND package status",
    ]


@pytest.mark.parametrize(
    ("target", "current", "package_value"),
    [
        ("ACTIVE", "NOT_ACTIVE", "ACTIVE"),
        ("SUSPENDED", "ACTIVE", "NOT_ACTIVE"),
        ("TERMINATED", "ACTIVE", "TERMINATED"),
        ("TERMINATED", "NOT_ACTIVE", "TERMINATED"),
    ],
)
def test_service_status_step_sends_the_package_value_for_the_target(
    processor: PondProcessor,
    mocked: responses.RequestsMock,
    target: str,
    current: str,
    package_value: str,
) -> None:
    add_packages(mocked, [current])
    mocked.post(package_url(package_id(0)), status=204)

    result = processor.perform(Step.SERVICE_STATUS, context(target))

    assert result.note == "1 of 1 live packages changed"
    assert sent_json(sent(mocked, 1)) == {"package_status": package_value}


@pytest.mark.parametrize("target", ["ACTIVE", "SUSPENDED", "TERMINATED"])
def test_terminated_packages_are_never_sent_a_change(
    processor: PondProcessor, mocked: responses.RequestsMock, target: str
) -> None:
    add_packages(mocked, ["TERMINATED", "terminated"])

    result = processor.perform(Step.SERVICE_STATUS, context(target))

    assert result.note == "no live packages to change, 2 terminated skipped"
    assert len(mocked.calls) == 1


@pytest.mark.parametrize("spelling", ["NOT_ACTIVE", "Not Active", "not-active"])
def test_packages_already_in_the_target_in_any_spelling_are_skipped(
    processor: PondProcessor, mocked: responses.RequestsMock, spelling: str
) -> None:
    add_packages(mocked, [spelling])

    result = processor.perform(Step.SERVICE_STATUS, context("SUSPENDED"))

    assert result.note == "0 of 1 live packages changed"
    assert len(mocked.calls) == 1


def test_service_status_step_reads_every_page_before_changing_packages(
    processor: PondProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(page_url(0), json=packages_page(["NOT_ACTIVE"], total=2))
    mocked.get(page_url(1), json=packages_page(["ACTIVE"], offset=1, total=2))
    mocked.post(package_url(package_id(1)), status=204)

    result = processor.perform(Step.SERVICE_STATUS, context("SUSPENDED"))

    assert result.note == "1 of 2 live packages changed"
    assert [sent(mocked, i).method for i in range(3)] == ["GET", "GET", "POST"]


def test_service_status_step_of_a_sim_without_packages_has_nothing_to_do(
    processor: PondProcessor, mocked: responses.RequestsMock
) -> None:
    add_packages(mocked, [])

    result = processor.perform(Step.SERVICE_STATUS, context("ACTIVE"))

    assert set(result.updates) == {"service_status_at"}
    assert result.note == "no packages to change"
    assert len(mocked.calls) == 1


def test_a_refused_package_change_fails_the_step(
    processor: PondProcessor, mocked: responses.RequestsMock
) -> None:
    add_packages(mocked, ["NOT_ACTIVE"])
    mocked.post(
        package_url(package_id(0)), status=409, json=pond_error(409, "Package cannot change")
    )

    with pytest.raises(PermanentError, match="HTTP 409 from POND: Package cannot change"):
        processor.perform(Step.SERVICE_STATUS, context("ACTIVE"))


def test_steps_pond_does_not_have_are_refused(processor: PondProcessor) -> None:
    with pytest.raises(PermanentError, match="POND has no step"):
        processor.perform(Step.REV_SERVICE, context("ACTIVE", progress=Progress()))


# --- Processor: reading the current status ---------------------------------------------------


@pytest.mark.parametrize(
    ("services", "status_of_sim", "packages", "expected"),
    [
        pytest.param("ENABLED", "In-Service", ["ACTIVE"], "ACTIVE", id="active"),
        pytest.param("enabled", "IN_SERVICE", ["Active"], "ACTIVE", id="active-other-spelling"),
        pytest.param("ENABLED", "In-Service", [], "ACTIVE", id="active-no-packages"),
        pytest.param(
            "ENABLED", "In-Service", ["TERMINATED", "ACTIVE"], "ACTIVE", id="active-old-terminated"
        ),
        pytest.param(
            "DISABLED", "In-Service", ["NOT_ACTIVE", "NOT_ACTIVE"], "SUSPENDED", id="suspended"
        ),
        pytest.param("DISABLED", "In-Service", [], "SUSPENDED", id="suspended-no-packages"),
        pytest.param(
            "DISABLED",
            "In-Service",
            ["Not Active", "TERMINATED"],
            "SUSPENDED",
            id="suspended-old-terminated",
        ),
        pytest.param(
            "DISABLED", "In-Service", ["TERMINATED"], "TERMINATED", id="all-packages-terminated"
        ),
        pytest.param(
            "ENABLED",
            "In-Service",
            ["TERMINATED", "terminated"],
            "TERMINATED",
            id="all-terminated-enabled",
        ),
        pytest.param("DISABLED", "Terminated", ["NOT_ACTIVE"], "TERMINATED", id="sim-terminated"),
        pytest.param("DISABLED", "Terminated", [], "TERMINATED", id="sim-terminated-no-packages"),
        pytest.param("ENABLED", "Pre-Service", ["ACTIVE"], None, id="pre-service"),
        pytest.param("ENABLED", "", ["ACTIVE"], None, id="no-status-of-sim"),
        pytest.param(
            "ENABLED", "In-Service", ["NOT_ACTIVE"], None, id="enabled-sim-inactive-package"
        ),
        pytest.param("DISABLED", "In-Service", ["ACTIVE"], None, id="disabled-sim-active-package"),
        pytest.param("ENABLED", "In-Service", ["ACTIVE", "NOT_ACTIVE"], None, id="mixed-packages"),
        pytest.param("Active", "In-Service", ["ACTIVE"], None, id="legacy-service-value"),
    ],
)
def test_read_status_follows_the_contract_rules(
    processor: PondProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    services: str,
    status_of_sim: str,
    packages: list[str],
    expected: str | None,
) -> None:
    mocked.get(SIM_URL, json=sim_body(services, status_of_sim))
    add_packages(mocked, packages)

    assert processor.read_status(context("ACTIVE")) == expected
    assert [call.description for call in audit] == [
        "Read POND SIM status",
        "List POND SIM packages",
    ]
    for index in (0, 1):
        assert_pond_headers(sent(mocked, index), request_id="req-abc")


def test_read_status_with_mixed_services_is_unknown(
    processor: PondProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(SIM_URL, json={**sim_body("ENABLED"), "sim_sms_service_status": "DISABLED"})
    add_packages(mocked, [])

    assert processor.read_status(context("ACTIVE")) is None


def test_read_status_with_a_missing_service_field_is_unknown(
    processor: PondProcessor, mocked: responses.RequestsMock
) -> None:
    body = sim_body("ENABLED")
    del body["sim_voice_service_status"]
    mocked.get(SIM_URL, json=body)
    add_packages(mocked, ["ACTIVE"])

    assert processor.read_status(context("ACTIVE")) is None
