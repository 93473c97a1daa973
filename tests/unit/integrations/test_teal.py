"""Teal client and processor against docs/carriers/teal.md: operations and their entries, Teal's
error bodies, and the three resumable steps (prepare our requestId, submit, confirm). The exact
requests are test_clients.py; the HTTP mechanism (timeouts, Retry-After, audit records, …) is
test_http.py."""

from __future__ import annotations

import uuid
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
from integrations.teal import Entry, TealClient, TealProcessor
from tests.unit.integrations.support import assert_fails_as, sent, sent_json

API_KEY = "teal-key-acme"
API_SECRET = "teal-secret-Qv93xk"
LABEL = "Acme fleet"
BASE_URL = "https://teal.example.test"
API = f"{BASE_URL}/api/v1"
EID = "89049032000000000000000000000001"
OTHER_EID = "89049032000000000000000000000002"
ICCID = "89148000000000000001"
REQUEST_ID = "3f0c4a52-52f8-4f6e-9a4b-2d9f1d7e0c11"
ESIM_URL = f"{API}/esims/{EID}"
OPERATION_URL = f"{API}/operations/{REQUEST_ID}"
CREDENTIALS = Credentials(
    integration_authentication_id=1,
    integration="TEAL",
    base_url=BASE_URL,
    account=LABEL,
    username=API_KEY,
    secret=API_SECRET,
)


def submit_url(action: str, request_id: str = REQUEST_ID) -> str:
    return f"{API}/esims/{action}?requestId={request_id}&callbackUrl="


def teal_error(code: str, message: str) -> dict[str, str]:
    """Teal's error body."""
    return {"errorCode": code, "message": message}


def completed(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"requestId": REQUEST_ID, "status": "COMPLETED", "entries": list(entries)}


def entry(eid: str = EID, status: str = "online", error: str | None = None) -> dict[str, Any]:
    return {"eid": eid, "status": status, "error": error}


def running(status: str = "PROCESSING") -> dict[str, str]:
    return {"requestId": REQUEST_ID, "status": status}


class ClosingSession(requests.Session):
    """Records how many requests had been answered each time its connections were dropped."""

    def __init__(self, mocked: responses.RequestsMock) -> None:
        super().__init__()
        self.mocked = mocked
        self.closed_after: list[int] = []

    def close(self) -> None:
        self.closed_after.append(len(self.mocked.calls))
        super().close()


class FakeTime:
    """The processor's clock and sleep: sleeping moves the clock on, instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def client(audit: list[CallRecord]) -> TealClient:
    return TealClient(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def processor(
    audit: list[CallRecord], fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> TealProcessor:
    settings.BULKCHANGE_CONFIRM_SECONDS = 1
    teal = TealProcessor(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))
    monkeypatch.setattr(teal, "clock", fake_time.clock)
    monkeypatch.setattr(teal, "sleep", fake_time.sleep)
    return teal


def context(target: str = "enabled", **overrides: Any) -> UpdateContext:
    values: dict[str, Any] = {
        "device_change_id": 77,
        "bulk_change_id": 5,
        "iccid": ICCID,
        "eid": EID,
        "target_status": target,
        "request_id": "req-abc",
        "progress": Progress(carrier_request_id=REQUEST_ID),
    }
    values.update(overrides)
    return UpdateContext(**values)


def assert_teal_headers(request: requests.PreparedRequest) -> None:
    assert request.headers["ApiKey"] == API_KEY
    assert request.headers["ApiSecret"] == API_SECRET
    assert request.headers["Accept"] == "application/json"
    assert "Authorization" not in request.headers


# --- Client: answers -------------------------------------------------------------------------


def test_change_state_answered_for_another_request_id_is_a_permanent_error(
    client: TealClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(
        submit_url("enable"), status=202, json={"requestId": "someone-else", "status": "QUEUED"}
    )

    with pytest.raises(PermanentError, match="answered requestId someone-else for our request"):
        client.change_state(
            action="enable", eid=EID, carrier_request_id=REQUEST_ID, idempotency_key="k"
        )


def test_read_operation_reads_the_status_and_each_eids_entry(
    client: TealClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(OPERATION_URL, json=completed(entry(), entry(OTHER_EID, "stopped", "locked")))

    operation = client.read_operation(carrier_request_id=REQUEST_ID)

    assert (operation.request_id, operation.status, operation.running) == (
        REQUEST_ID,
        "COMPLETED",
        False,
    )
    assert operation.entries == (
        Entry(eid=EID, status="online", error=None),
        Entry(eid=OTHER_EID, status="stopped", error="locked"),
    )
    assert operation.entry_for(OTHER_EID) == Entry(OTHER_EID, "stopped", "locked")


@pytest.mark.parametrize("status", ["QUEUED", "PROCESSING"])
def test_queued_and_processing_operations_are_running(
    client: TealClient, mocked: responses.RequestsMock, status: str
) -> None:
    mocked.get(OPERATION_URL, json=running(status))

    operation = client.read_operation(carrier_request_id=REQUEST_ID)

    assert operation.running
    assert not operation.interim
    assert operation.entries == ()


def test_a_102_answer_is_running_and_drops_the_sessions_connections(
    mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    session = ClosingSession(mocked)
    client = TealClient(
        credentials=CREDENTIALS, session=session, on_call=audit.append, timeouts=(1, 1)
    )
    mocked.get(OPERATION_URL, status=102, body="")

    operation = client.read_operation(carrier_request_id=REQUEST_ID)

    assert operation.running and operation.interim
    assert operation.status == "PROCESSING"
    assert operation.call is audit[0]
    assert audit[0].response_status == 102
    assert session.closed_after == [1]


def test_a_failed_operation_carries_its_message(
    client: TealClient, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        OPERATION_URL,
        json={"requestId": REQUEST_ID, "status": "FAILED", "message": "Profile server down"},
    )

    operation = client.read_operation(carrier_request_id=REQUEST_ID)

    assert (operation.status, operation.message, operation.running) == (
        "FAILED",
        "Profile server down",
        False,
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"requestId": REQUEST_ID, "status": "DONE"}, id="unknown-status"),
        pytest.param({"requestId": REQUEST_ID}, id="no-status"),
        pytest.param(["COMPLETED"], id="not-an-object"),
        pytest.param(
            {"requestId": REQUEST_ID, "status": "COMPLETED", "entries": [{"status": "online"}]},
            id="entry-without-eid",
        ),
        pytest.param(
            {"requestId": REQUEST_ID, "status": "COMPLETED", "entries": ["8904"]},
            id="entry-not-an-object",
        ),
    ],
)
def test_an_operation_of_the_wrong_shape_is_a_permanent_error(
    client: TealClient, mocked: responses.RequestsMock, body: Any
) -> None:
    mocked.get(OPERATION_URL, json=body)

    with pytest.raises(PermanentError) as raised:
        client.read_operation(carrier_request_id=REQUEST_ID)

    assert raised.value.message.startswith("HTTP 200 from Teal: expected")
    assert raised.value.call is not None


# --- Client: errors --------------------------------------------------------------------------


ERROR_CASES = [
    pytest.param(
        {"status": 404, "json": teal_error("ESIM_NOT_FOUND", f"eSIM {EID} not found")},
        PermanentError,
        f"HTTP 404 from Teal: eSIM {EID} not found (ESIM_NOT_FOUND)",
        id="404-unknown-eid",
    ),
    pytest.param(
        {"status": 400, "json": teal_error("VALIDATION_ERROR", "entries must not be empty")},
        PermanentError,
        "HTTP 400 from Teal: entries must not be empty (VALIDATION_ERROR)",
        id="400-validation",
    ),
    pytest.param(
        {"status": 409, "json": teal_error("FLOW_RESTRICTED_ERROR", "operation in progress")},
        PermanentError,
        "HTTP 409 from Teal: operation in progress (FLOW_RESTRICTED_ERROR)",
        id="409-flow-restricted",
    ),
    pytest.param(
        {"status": 503, "json": teal_error("GENERIC_ERROR", "Service unavailable")},
        TransientError,
        "HTTP 503 from Teal: Service unavailable (GENERIC_ERROR)",
        id="503",
    ),
    pytest.param(
        {"status": 422, "json": {"message": "no code here"}},
        PermanentError,
        "HTTP 422 from Teal: no code here",
        id="422-without-error-code",
    ),
]


@pytest.mark.parametrize(("reply", "error_type", "message"), ERROR_CASES)
def test_error_responses_become_our_error_types_with_readable_messages(
    client: TealClient,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    reply: dict[str, Any],
    error_type: type[IntegrationError],
    message: str,
) -> None:
    mocked.post(submit_url("disable"), **reply)

    assert_fails_as(
        lambda: client.change_state(
            action="disable", eid=EID, carrier_request_id=REQUEST_ID, idempotency_key="k"
        ),
        error_type=error_type,
        message=message,
        audit=audit,
        status=reply["status"],
    )


def test_rejected_credentials_are_an_authentication_error_naming_the_account(
    client: TealClient, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(ESIM_URL, status=401, json=teal_error("UNAUTHORIZED", "Invalid ApiSecret"))

    with pytest.raises(AuthenticationError) as raised:
        client.read_esim(eid=EID)

    assert raised.value.message == (
        "Teal rejected the ApiKey/ApiSecret of Teal account Acme fleet "
        "(HTTP 401 from Teal: Invalid ApiSecret (UNAUTHORIZED))"
    )
    assert API_SECRET not in str(raised.value)
    assert raised.value.call is audit[0]


def test_an_account_without_a_label_is_named_by_its_api_key() -> None:
    unlabelled = Credentials(
        integration_authentication_id=2,
        integration="TEAL",
        base_url=BASE_URL,
        username=API_KEY,
        secret=API_SECRET,
    )

    assert TealProcessor.account_label(unlabelled) == f"Teal account {API_KEY}"
    assert TealProcessor.account_label(CREDENTIALS) == "Teal account Acme fleet"


# --- Processor: declarations -----------------------------------------------------------------


def test_processor_declares_its_steps_statuses_and_descriptions() -> None:
    assert TealProcessor.steps == (Step.PREPARE, Step.SUBMIT, Step.CONFIRM)
    assert TealProcessor.descriptions == {
        Step.PREPARE: "Prepare Teal request id",
        Step.SUBMIT: "Change Teal eSIM state",
        Step.CONFIRM: "Read Teal operation",
    }
    assert {
        name: (m.target, m.carrier_value, m.post_update_status)
        for name, m in TealProcessor.statuses.items()
    } == {
        "enabled": ("enabled", "enable", "online"),
        "disabled": ("disabled", "disable", "stopped"),
    }


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("enabled", "enabled"), ("Disabled", "disabled"), (" ENABLED ", "enabled")],
)
def test_enabled_and_disabled_are_the_targets(value: str, canonical: str) -> None:
    assert TealProcessor.canonical_status(value) == canonical


@pytest.mark.parametrize("value", ["online", "stopped", "waiting", "ACTIVE", "deleted"])
def test_any_other_target_is_refused_at_creation(value: str) -> None:
    with pytest.raises(ValueError, match=f"Teal cannot set status {value!r}; allowed: enabled"):
        TealProcessor.canonical_status(value)


def test_teal_takes_no_options_and_finds_no_problem_with_them() -> None:
    assert TealProcessor.validate_options(target_status="enabled", options={}) == []
    assert (
        TealProcessor.validate_options(target_status="disabled", options={"reason_code": "CR"})
        == []
    )


@pytest.mark.parametrize("eid", ["", "   "])
def test_a_device_without_an_eid_fails_before_any_call(
    processor: TealProcessor, mocked: responses.RequestsMock, eid: str
) -> None:
    with pytest.raises(PermanentError) as raised:
        processor.check_identifiers(context(eid=eid))

    assert raised.value.message == f"Teal needs the EID for ICCID {ICCID}"
    with pytest.raises(PermanentError, match="Teal needs the EID"):
        processor.read_status(context(eid=eid))
    assert len(mocked.calls) == 0


def test_a_device_with_an_eid_passes_the_identifier_check(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    processor.check_identifiers(context())  # raises nothing

    assert len(mocked.calls) == 0


# --- Processor: prepare and submit -----------------------------------------------------------


def test_prepare_draws_a_fresh_uuid4_request_id_without_a_call(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    first = processor.perform(Step.PREPARE, context(progress=Progress()))
    second = processor.perform(Step.PREPARE, context(progress=Progress()))

    assert first.step is Step.PREPARE
    assert set(first.updates) == {"carrier_request_id"}
    request_id = first.updates["carrier_request_id"]
    assert uuid.UUID(request_id).version == 4
    assert second.updates["carrier_request_id"] != request_id
    assert len(mocked.calls) == 0


def test_prepare_keeps_a_request_id_already_recorded(processor: TealProcessor) -> None:
    result = processor.perform(Step.PREPARE, context())

    assert result.updates == {"carrier_request_id": REQUEST_ID}


@pytest.mark.parametrize(("target", "action"), [("enabled", "enable"), ("disabled", "disable")])
def test_submit_sends_the_action_for_the_target_under_the_stored_request_id(
    processor: TealProcessor, mocked: responses.RequestsMock, target: str, action: str
) -> None:
    mocked.post(submit_url(action), status=202, json=running("QUEUED"))
    before = datetime.now(UTC)

    result = processor.perform(Step.SUBMIT, context(target))

    assert result.step is Step.SUBMIT
    assert set(result.updates) == {"carrier_submitted_at"}
    stamp = result.updates["carrier_submitted_at"]
    assert stamp.tzinfo is not None
    assert before <= stamp <= datetime.now(UTC)
    assert result.note == f"Teal request {REQUEST_ID} QUEUED"
    request = sent(mocked, 0)
    assert request.url == submit_url(action)
    assert sent_json(request) == {"entries": [EID]}
    assert request.headers["Idempotency-Key"] == "pondops-77-submit"
    assert_teal_headers(request)


def test_a_resubmission_after_a_transient_failure_reuses_the_request_id(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.post(submit_url("enable"), status=503, json=teal_error("GENERIC_ERROR", "busy"))
    mocked.post(submit_url("enable"), status=202, json=running("QUEUED"))

    with pytest.raises(TransientError):
        processor.perform(Step.SUBMIT, context())
    processor.perform(Step.SUBMIT, context())

    assert [sent(mocked, i).url for i in (0, 1)] == [submit_url("enable")] * 2
    assert [sent(mocked, i).headers["Idempotency-Key"] for i in (0, 1)] == ["pondops-77-submit"] * 2


def test_submit_without_a_prepared_request_id_is_refused_without_a_call(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(PermanentError, match="needs the prepared requestId"):
        processor.perform(Step.SUBMIT, context(progress=Progress()))

    assert len(mocked.calls) == 0


def test_an_unknown_target_is_refused_without_a_call(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(PermanentError, match="Teal cannot set status 'online'"):
        processor.perform(Step.SUBMIT, context("online"))

    assert len(mocked.calls) == 0


def test_steps_teal_does_not_have_are_refused(processor: TealProcessor) -> None:
    with pytest.raises(PermanentError, match="Teal has no step"):
        processor.perform(Step.CARRIER_STATUS, context())


# --- Processor: confirm ----------------------------------------------------------------------


def test_confirm_of_a_completed_operation_records_the_carrier_status(
    processor: TealProcessor, mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.get(OPERATION_URL, json=completed(entry(OTHER_EID, "online"), entry(EID, "online")))

    result = processor.perform(Step.CONFIRM, context())

    assert result.step is Step.CONFIRM
    assert set(result.updates) == {"carrier_status_at"}
    assert result.updates["carrier_status_at"].tzinfo is not None
    assert result.note == f"eSIM {EID} online"
    assert fake_time.sleeps == []
    assert sent(mocked, 0).method == "GET"


def test_confirm_polls_through_queued_102_and_processing_with_a_growing_back_off(
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    fake_time: FakeTime,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    settings.BULKCHANGE_CONFIRM_SECONDS = 30
    session = ClosingSession(mocked)
    teal = TealProcessor(
        credentials=CREDENTIALS, session=session, on_call=audit.append, timeouts=(1, 1)
    )
    monkeypatch.setattr(teal, "clock", fake_time.clock)
    monkeypatch.setattr(teal, "sleep", fake_time.sleep)
    mocked.get(OPERATION_URL, json=running("QUEUED"))
    mocked.get(OPERATION_URL, status=102, body="")
    mocked.get(OPERATION_URL, json=running("PROCESSING"))
    mocked.get(OPERATION_URL, json=completed(entry(EID, "stopped")))

    result = teal.perform(Step.CONFIRM, context("disabled"))

    assert result.note == f"eSIM {EID} stopped"
    assert fake_time.sleeps == [0.25, 0.5, 1.0]
    assert [call.response_status for call in audit] == [200, 102, 200, 200]
    assert session.closed_after == [2]  # right after the 102, before the next poll


def test_confirm_still_running_when_the_budget_is_spent_is_transient(
    processor: TealProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    fake_time: FakeTime,
) -> None:
    for _ in range(4):
        mocked.get(OPERATION_URL, json=running())

    with pytest.raises(TransientError) as raised:
        processor.perform(Step.CONFIRM, context())

    assert raised.value.message == (
        f"Teal request {REQUEST_ID} still running (PROCESSING) after 1 s; "
        "the retry confirms it again"
    )
    assert raised.value.retry_after is None
    assert raised.value.call is audit[-1]
    assert fake_time.sleeps == [0.25, 0.5, 0.25]  # the last one cut to the budget
    assert len(mocked.calls) == 4
    assert all(sent(mocked, i).method == "GET" for i in range(4))  # never re-submitted


def test_confirm_still_answering_102_at_the_budget_says_so(
    processor: TealProcessor, mocked: responses.RequestsMock, settings: Any
) -> None:
    settings.BULKCHANGE_CONFIRM_SECONDS = 0
    mocked.get(OPERATION_URL, status=102, body="")

    with pytest.raises(TransientError, match=r"still running \(HTTP 102\) after 0 s"):
        processor.perform(Step.CONFIRM, context())


def test_an_entry_error_fails_the_device_with_that_text(
    processor: TealProcessor, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.get(
        OPERATION_URL,
        json=completed(entry(OTHER_EID), entry(EID, "stopped", "Profile is locked by the MNO")),
    )

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.CONFIRM, context())

    assert raised.value.message == f"Teal could not enable EID {EID}: Profile is locked by the MNO"
    assert raised.value.call is audit[0]


def test_another_devices_entry_error_does_not_fail_this_one(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(OPERATION_URL, json=completed(entry(OTHER_EID, "stopped", "locked"), entry()))

    assert processor.perform(Step.CONFIRM, context()).note == f"eSIM {EID} online"


def test_a_completed_operation_without_our_entry_is_a_permanent_error(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(OPERATION_URL, json=completed(entry(OTHER_EID)))

    with pytest.raises(PermanentError, match=f"completed without an entry for EID {EID}"):
        processor.perform(Step.CONFIRM, context())


def test_a_failed_operation_fails_the_device_with_its_message(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(
        OPERATION_URL,
        json={"requestId": REQUEST_ID, "status": "FAILED", "message": "Profile server down"},
    )

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.CONFIRM, context())

    assert raised.value.message == f"Teal request {REQUEST_ID} FAILED: Profile server down"


def test_an_unknown_operation_is_a_permanent_error(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(OPERATION_URL, status=404, json=teal_error("GENERIC_ERROR", "Operation not found"))

    with pytest.raises(
        PermanentError, match=r"HTTP 404 from Teal: Operation not found \(GENERIC_ERROR\)"
    ):
        processor.perform(Step.CONFIRM, context())


# --- Processor: read_status ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("online", "enabled"),
        ("waiting", "enabled"),
        ("stopped", "disabled"),
        ("ONLINE", "enabled"),
        ("deleted", None),
        ("", None),
    ],
)
def test_read_status_maps_the_esim_state_to_a_target(
    processor: TealProcessor,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    state: str,
    expected: str | None,
) -> None:
    mocked.get(ESIM_URL, json={"eid": EID, "iccid": ICCID, "status": state, "plan": "p"})

    assert processor.read_status(context()) == expected
    assert [call.description for call in audit] == ["Read Teal eSIM"]
