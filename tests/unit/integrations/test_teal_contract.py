"""Teal's wire contract (docs/carriers/teal.md), call by call: the exact method, path, query
(our 32-hex requestId, the URL-encoded callbackUrl), headers and body of every call a status
update makes, and the handling of every documented answer — 200 success true/false, HTTP 102
with no body, the entries of a done operation, 4xx for an unknown requestId, the error codes.
The processor's steps built on them are test_teal.py's."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import responses

from integrations.base import (
    AuthenticationError,
    CallRecord,
    IntegrationError,
    PermanentError,
    Step,
    TransientError,
)
from integrations.teal import RequestUnknown, TealClient, TealProcessor
from tests.unit.integrations.support import sent, sent_json
from tests.unit.integrations.teal_support import (
    ACCEPTED,
    API,
    API_SECRET,
    BODY_HEADERS,
    CALLBACK_URL,
    CREDENTIALS,
    EID,
    GET_HEADERS,
    HEX_32,
    INFO_URL,
    REQUEST_ID,
    RESULT_URL,
    SUBMIT_URL,
    TOKEN,
    ClosingSession,
    FakeTime,
    context,
    done,
    entry,
    esim,
    our_headers,
    processor_for_tests,
    query_of,
    raw_query,
)


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
    return processor_for_tests(audit, fake_time, monkeypatch, settings)


# --- The calls, exactly -----------------------------------------------------------------------


@pytest.mark.parametrize(("target", "action"), [("enabled", "enable"), ("disabled", "disable")])
def test_submit_posts_the_action_with_our_request_id_and_encoded_callback_url(
    processor: TealProcessor, mocked: responses.RequestsMock, target: str, action: str
) -> None:
    mocked.post(SUBMIT_URL, json=ACCEPTED)

    result = processor.perform(Step.SUBMIT, context(target))

    request = sent(mocked, 0)
    assert request.method == "POST"
    assert request.url is not None
    assert urlsplit(request.url).path == f"/api/v1/esims/{action}"
    assert raw_query(request) == (
        f"requestId={REQUEST_ID}&callbackUrl={quote(CALLBACK_URL, safe='')}"
    )
    assert query_of(request) == {"requestId": REQUEST_ID, "callbackUrl": CALLBACK_URL}
    assert our_headers(request) == BODY_HEADERS  # no Idempotency-Key: requestId is Teal's own
    assert sent_json(request) == {"entries": [EID]}
    assert set(result.updates) == {"carrier_submitted_at"}
    assert result.note == f"Teal request {REQUEST_ID} queued"


def test_prepare_draws_32_lowercase_hex_characters_without_a_call(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    first = processor.perform(Step.PREPARE, context(carrier_request_id=""))
    second = processor.perform(Step.PREPARE, context(carrier_request_id=""))

    drawn = first.updates["carrier_request_id"]
    assert HEX_32.fullmatch(drawn)
    assert drawn != second.updates["carrier_request_id"]
    kept = processor.perform(Step.PREPARE, context())
    assert kept.updates == {"carrier_request_id": REQUEST_ID}
    assert len(mocked.calls) == 0


def test_confirm_gets_the_operation_result_of_our_request_id_without_a_body(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(RESULT_URL, json=done(entry()))

    result = processor.perform(Step.CONFIRM, context())

    request = sent(mocked, 0)
    assert request.method == "GET"
    assert request.url == f"{API}/operation-result?requestId={REQUEST_ID}"
    assert our_headers(request) == GET_HEADERS
    assert request.body is None
    assert set(result.updates) == {"carrier_status_at"}
    assert result.note == f"eSIM {EID} online"


def test_a_read_queues_esims_info_under_a_new_request_id_then_reads_its_result(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(INFO_URL, json={"success": True})
    mocked.get(RESULT_URL, json=done(esim()))

    assert processor.read_status(context()) == "enabled"

    info, result = sent(mocked, 0), sent(mocked, 1)
    assert info.method == "GET"
    assert info.url is not None
    assert urlsplit(info.url).path == "/api/v1/esims/info"
    read_id = query_of(info)["requestId"]
    assert HEX_32.fullmatch(read_id)
    assert read_id != REQUEST_ID
    assert raw_query(info) == (
        f"eid={EID}&limit=1&requestId={read_id}&callbackUrl={quote(CALLBACK_URL, safe='')}"
    )
    assert our_headers(info) == GET_HEADERS
    assert info.body is None
    assert result.url == f"{API}/operation-result?requestId={read_id}"
    assert our_headers(result) == GET_HEADERS


def test_the_audit_text_hides_the_api_secret_and_the_callback_token(
    processor: TealProcessor, mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    mocked.post(SUBMIT_URL, json=ACCEPTED)

    processor.perform(Step.SUBMIT, context())

    [call] = audit
    assert call.url == f"{API}/esims/enable"
    assert call.request_text.splitlines()[0] == (
        f"POST /api/v1/esims/enable?requestId={REQUEST_ID}&callbackUrl="
        "https://pondops.example.test/carriers/teal/callbacks/4/?token=[REDACTED]"
    )
    assert "ApiSecret: [REDACTED]" in call.request_text
    assert API_SECRET not in call.request_text + call.response_text
    assert TOKEN not in call.request_text + call.response_text


# --- SUBMIT's answers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "error_type", "message"),
    [
        (
            {"success": False, "errorCode": "FLOW_RESTRICTED_ERROR", "message": "Plan is locked"},
            PermanentError,
            "HTTP 200 from Teal: Plan is locked (FLOW_RESTRICTED_ERROR)",
        ),
        (
            {"success": False, "errorMessage": "EID is not provisioned"},
            PermanentError,
            "HTTP 200 from Teal: EID is not provisioned",
        ),
        (
            {"success": False, "errorCode": "GENERIC_ERROR", "message": "Try again"},
            TransientError,
            "HTTP 200 from Teal: Try again (GENERIC_ERROR)",
        ),
        (
            {"link": {}},
            PermanentError,
            "HTTP 200 from Teal: expected a success flag, got something else",
        ),
    ],
)
def test_a_submit_answered_without_success_true_fails_with_teals_message(
    processor: TealProcessor,
    mocked: responses.RequestsMock,
    answer: dict[str, Any],
    error_type: type[IntegrationError],
    message: str,
) -> None:
    mocked.post(SUBMIT_URL, json=answer)

    with pytest.raises(error_type) as raised:
        processor.perform(Step.SUBMIT, context())

    assert type(raised.value) is error_type
    assert raised.value.message == message


def test_an_html_page_where_json_was_expected_is_a_readable_error(
    client: TealClient, mocked: responses.RequestsMock
) -> None:
    mocked.post(
        SUBMIT_URL, body="<html><title>Maintenance</title></html>", content_type="text/html"
    )

    with pytest.raises(PermanentError, match="HTTP 200 from Teal: expected JSON, got text/html"):
        client.change_state(action="enable", eid=EID, request_id=REQUEST_ID, callback_url="u")


# --- Errors: Teal's codes decide, else the HTTP status ------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "error_type", "message"),
    [
        (404, {"success": False, "errorCode": "ESIM_NOT_FOUND", "message": f"eSIM {EID} not found"},
         PermanentError, f"HTTP 404 from Teal: eSIM {EID} not found (ESIM_NOT_FOUND)"),
        (400, {"success": False, "errorCode": "VALIDATION_ERROR", "message": "requestId missing"},
         PermanentError, "HTTP 400 from Teal: requestId missing (VALIDATION_ERROR)"),
        (409, {"success": False, "errorCode": "FLOW_RESTRICTED_ERROR", "errorMessage": "No"},
         PermanentError, "HTTP 409 from Teal: No (FLOW_RESTRICTED_ERROR)"),
        (400, {"success": False, "errorCode": "GENERIC_ERROR", "message": "Unexpected"},
         TransientError, "HTTP 400 from Teal: Unexpected (GENERIC_ERROR)"),
        (500, {"success": False, "errorCode": "GENERIC_ERROR", "message": "Unexpected"},
         TransientError, "HTTP 500 from Teal: Unexpected (GENERIC_ERROR)"),
        (503, {"success": False, "errorCode": "ESIM_NOT_FOUND", "message": "gone"},
         PermanentError, "HTTP 503 from Teal: gone (ESIM_NOT_FOUND)"),
        (502, None, TransientError, "HTTP 502 from Teal (empty body)"),
        (401, {"success": False, "errorCode": "UNAUTHORIZED", "message": "Bad keys"},
         AuthenticationError,
         "Teal rejected the ApiKey/ApiSecret of Teal account Acme fleet "
         "(HTTP 401 from Teal: Bad keys (UNAUTHORIZED))"),
        (403, None, AuthenticationError,
         "Teal rejected the ApiKey/ApiSecret of Teal account Acme fleet "
         "(HTTP 403 from Teal (empty body))"),
        (400, {"success": False, "errorCode": "UNAUTHORIZED", "message": "Out of scope"},
         AuthenticationError,
         "Teal rejected the ApiKey/ApiSecret of Teal account Acme fleet "
         "(HTTP 400 from Teal: Out of scope (UNAUTHORIZED))"),
    ],
)  # fmt: skip
def test_error_answers_are_classified_by_teals_code_else_by_http_status(
    client: TealClient,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    status: int,
    body: dict[str, Any] | None,
    error_type: type[IntegrationError],
    message: str,
) -> None:
    mocked.post(SUBMIT_URL, status=status, **({"json": body} if body else {"body": ""}))

    with pytest.raises(error_type) as raised:
        client.change_state(action="enable", eid=EID, request_id=REQUEST_ID, callback_url="u")

    assert type(raised.value) is error_type
    assert raised.value.message == message
    assert raised.value.call is audit[0]


def test_429_is_transient_honouring_retry_after(
    client: TealClient, mocked: responses.RequestsMock
) -> None:
    body = {"success": False, "errorCode": "GENERIC_ERROR", "message": "Too many requests"}
    mocked.get(RESULT_URL, status=429, json=body, headers={"Retry-After": "45"})

    with pytest.raises(TransientError) as raised:
        client.operation_result(request_id=REQUEST_ID)

    assert raised.value.retry_after == 45
    assert raised.value.message == "HTTP 429 from Teal: Too many requests (GENERIC_ERROR)"


# --- operation-result's answers --------------------------------------------------------------


def test_http_102_is_still_running_and_its_connection_is_closed_and_never_shared(
    mocked: responses.RequestsMock, audit: list[CallRecord]
) -> None:
    shared = ClosingSession(mocked)
    client = TealClient(credentials=CREDENTIALS, session=shared, on_call=audit.append)
    own = client.results_http.session = ClosingSession(mocked)
    mocked.get(RESULT_URL, status=102, body="")
    mocked.get(RESULT_URL, json=done(entry()))

    first = client.operation_result(request_id=REQUEST_ID)
    second = client.operation_result(request_id=REQUEST_ID)

    assert (first.done, first.entries) == (False, ())
    assert first.call.response_status == 102
    assert second.done and second.success
    assert [call.description for call in audit] == ["Read Teal operation result"] * 2
    # Over connections no other call or thread shares, closed after every answer.
    assert own.closed_after == [1, 2]
    assert shared.closed_after == []


def test_a_done_operation_reads_success_message_and_each_entry(
    client: TealClient, mocked: responses.RequestsMock
) -> None:
    other = "89049032000000000000000000000002"
    mocked.get(
        RESULT_URL,
        json=done(
            entry(), entry(other, success=False, error="Locked"), success=False, message="1 failed"
        ),
    )

    result = client.operation_result(request_id=REQUEST_ID)

    assert (result.done, result.success, result.message) == (True, False, "1 failed")
    ours, theirs = result.entries
    assert (ours.eid, ours.success, ours.error_message) == (EID, True, "")
    assert (theirs.eid, theirs.success, theirs.error_message) == (other, False, "Locked")
    assert result.entry_for(other) is theirs


@pytest.mark.parametrize("status", [400, 404, 410])
def test_a_4xx_for_the_request_id_means_teal_does_not_know_it(
    client: TealClient, mocked: responses.RequestsMock, status: int
) -> None:
    body = {"success": False, "errorCode": "VALIDATION_ERROR", "message": "Unknown requestId"}
    mocked.get(RESULT_URL, status=status, json=body)

    with pytest.raises(RequestUnknown) as raised:
        client.operation_result(request_id=REQUEST_ID)

    assert raised.value.message == f"HTTP {status} from Teal: Unknown requestId (VALIDATION_ERROR)"


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(401, AuthenticationError), (429, TransientError), (503, TransientError)],
)
def test_credentials_rate_and_server_errors_of_operation_result_are_not_unknown_requests(
    client: TealClient, mocked: responses.RequestsMock, status: int, error_type: type[Exception]
) -> None:
    mocked.get(RESULT_URL, status=status, body="")

    with pytest.raises(error_type) as raised:
        client.operation_result(request_id=REQUEST_ID)

    assert not isinstance(raised.value, RequestUnknown)


@pytest.mark.parametrize(
    "body",
    [
        {"entries": []},  # no success flag
        {"success": True, "entries": [{"success": True}]},  # an entry without an eid
        ["not", "an", "object"],
    ],
)
def test_a_done_answer_of_another_shape_is_a_permanent_error(
    client: TealClient, mocked: responses.RequestsMock, body: Any
) -> None:
    mocked.get(RESULT_URL, json=body)

    with pytest.raises(PermanentError, match=r"^HTTP 200 from Teal: expected "):
        client.operation_result(request_id=REQUEST_ID)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (done(entry(success=False, error="Profile is locked by the MNO")),
         f"Teal could not enable EID {EID}: Profile is locked by the MNO"),
        (done(entry(), success=False, message="Operation aborted"),
         f"Teal request {REQUEST_ID} failed: Operation aborted"),
        (done(success=False, errorMessage="Backend unavailable"),
         f"Teal request {REQUEST_ID} failed: Backend unavailable"),
        (done(entry("89049032000000000000000000000002")),
         f"Teal request {REQUEST_ID} completed without an entry for EID {EID}"),
    ],
)  # fmt: skip
def test_the_entry_for_our_eid_decides_and_an_overall_failure_fails_the_device(
    processor: TealProcessor, mocked: responses.RequestsMock, answer: dict[str, Any], message: str
) -> None:
    mocked.get(RESULT_URL, json=answer)

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.CONFIRM, context())

    assert raised.value.message == message


def test_confirm_of_a_request_teal_does_not_know_fails_permanently(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    body = {"success": False, "errorCode": "VALIDATION_ERROR", "message": "Unknown requestId"}
    mocked.get(RESULT_URL, status=404, json=body)

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.CONFIRM, context())

    assert raised.value.message == (
        f"Teal does not know request {REQUEST_ID}: it was never queued "
        "(HTTP 404 from Teal: Unknown requestId (VALIDATION_ERROR))"
    )


# --- The read's answers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "target"),
    [
        ({"deviceStatus": "ONLINE"}, "enabled"),
        ({"deviceStatus": "WAITING"}, "enabled"),
        ({"deviceStatus": "STOPPED"}, "disabled"),
        ({"deviceStatus": "ONLINE", "suspended": True}, "disabled"),
        ({"deviceStatus": "WAITING", "suspended": True}, "disabled"),
        ({"deviceStatus": "PROVISIONING"}, None),
        ({"deviceStatus": None}, None),
    ],
)
def test_the_reads_first_entry_maps_suspended_or_stopped_to_disabled(
    processor: TealProcessor,
    mocked: responses.RequestsMock,
    fields: dict[str, Any],
    target: str | None,
) -> None:
    mocked.get(INFO_URL, json={"success": True})
    mocked.get(RESULT_URL, json=done(esim(**fields)))

    assert processor.read_status(context()) == target


def test_a_read_waits_through_102s_and_is_unknown_when_the_budget_is_spent(
    processor: TealProcessor, mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    mocked.get(INFO_URL, json={"success": True})
    mocked.get(RESULT_URL, status=102, body="")

    assert processor.read_status(context()) is None

    polls = len(mocked.calls) - 1
    assert polls >= 3
    assert sum(fake_time.sleeps) == pytest.approx(1.0)  # the confirm budget, no more


@pytest.mark.parametrize(
    ("info", "result", "message"),
    [
        ({"success": False, "errorCode": "ESIM_NOT_FOUND", "message": "No such eSIM"}, None,
         "HTTP 200 from Teal: No such eSIM (ESIM_NOT_FOUND)"),
        ({"success": True}, done(success=False, message="Read failed"),
         f"Teal could not read EID {EID}: Read failed"),
    ],
)  # fmt: skip
def test_a_refused_or_failed_read_is_a_permanent_error(
    processor: TealProcessor,
    mocked: responses.RequestsMock,
    info: dict[str, Any],
    result: dict[str, Any] | None,
    message: str,
) -> None:
    mocked.get(INFO_URL, json=info)
    if result is not None:
        mocked.get(RESULT_URL, json=result)

    with pytest.raises(PermanentError) as raised:
        processor.read_status(context())

    assert raised.value.message == message
