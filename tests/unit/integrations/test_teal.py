"""The Teal processor against docs/carriers/teal.md: what it declares, what it refuses before any
call (no EID, no callback URL), repeat safety (a SUBMIT whose answer may have been lost asks
operation-result first), CONFIRM's polling and waiting, the 30-minute deadline's read, and the
inbound callback (a signal only). The exact requests and answers are test_teal_contract.py's."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses

from integrations.base import (
    CallbackAuth,
    CallbackEvent,
    CallbackOutcome,
    CallbackRejected,
    CallRecord,
    CarrierPending,
    PermanentError,
    Step,
    UpdateContext,
)
from integrations.teal import TealProcessor
from tests.unit.integrations.support import sent
from tests.unit.integrations.teal_support import (
    ACCEPTED,
    CREDENTIALS,
    EID,
    ICCID,
    INFO_URL,
    REQUEST_ID,
    RESULT_URL,
    SUBMIT_URL,
    TOKEN,
    FakeTime,
    context,
    done,
    entry,
    esim,
    processor_for_tests,
    query_of,
)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def processor(
    audit: list[CallRecord], fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> TealProcessor:
    return processor_for_tests(audit, fake_time, monkeypatch, settings)


NO_CALLBACK = (
    "Teal requires a callbackUrl; set CARRIER_CALLBACK_BASE_URL or the account's callback URL"
)
UNKNOWN = {"success": False, "errorCode": "VALIDATION_ERROR", "message": "Unknown requestId"}


def lost_answer(target: str = "enabled") -> UpdateContext:
    """A SUBMIT started by an earlier attempt whose answer never came back."""
    return context(target, write_started_at=datetime(2026, 11, 22, 9, 0, tzinfo=UTC))


def past_deadline(target: str = "enabled") -> UpdateContext:
    now = datetime.now(UTC)
    return context(
        target,
        carrier_submitted_at=now - timedelta(minutes=31),
        confirm_deadline_at=now - timedelta(minutes=1),
    )


# --- Declarations -------------------------------------------------------------------------------


def test_processor_declares_its_steps_statuses_limits_and_callbacks() -> None:
    assert TealProcessor.steps == (Step.PREPARE, Step.SUBMIT, Step.CONFIRM)
    assert TealProcessor.descriptions == {
        Step.PREPARE: "Prepare Teal request id",
        Step.SUBMIT: "Change Teal eSIM state",
        Step.CONFIRM: "Read Teal operation result",
    }
    assert {
        name: (m.target, m.carrier_value, m.post_update_status)
        for name, m in TealProcessor.statuses.items()
    } == {
        "enabled": ("enabled", "enable", "online"),
        "disabled": ("disabled", "disable", "stopped"),
    }
    assert TealProcessor.default_rate_limit * 60 == pytest.approx(1000)  # calls a minute
    assert TealProcessor.default_max_concurrency == 4
    assert TealProcessor.callback_auth is CallbackAuth.URL_TOKEN
    assert TealProcessor.callback_methods == {"GET", "POST"}


def test_the_confirm_deadline_is_30_minutes(processor: TealProcessor) -> None:
    assert processor.confirm_deadline(context()) == timedelta(minutes=30)


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
    assert TealProcessor.validate_options(target_status="disabled", options={"x": "y"}) == []


# --- Refused before any call ------------------------------------------------------------------


@pytest.mark.parametrize("eid", ["", "   "])
def test_a_device_without_an_eid_fails_before_any_call(
    processor: TealProcessor, mocked: responses.RequestsMock, eid: str
) -> None:
    without = replace(context(), eid=eid)
    with pytest.raises(PermanentError, match=f"^Teal needs the EID for ICCID {ICCID}$"):
        processor.check_identifiers(without)
    with pytest.raises(PermanentError, match="Teal needs the EID"):
        processor.read_status(without)
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("step", [Step.SUBMIT, Step.CONFIRM])
def test_without_a_callback_url_the_device_fails_before_any_call(
    mocked: responses.RequestsMock, step: Step
) -> None:
    processor = TealProcessor(credentials=replace(CREDENTIALS, callback_url=""))

    for attempt in (
        lambda: processor.check_identifiers(context()),
        lambda: processor.perform(step, context()),
        lambda: processor.read_status(context()),
    ):
        with pytest.raises(PermanentError) as raised:
            attempt()
        assert raised.value.message == NO_CALLBACK
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("step", [Step.SUBMIT, Step.CONFIRM])
def test_submit_or_confirm_without_a_prepared_request_id_is_refused_without_a_call(
    processor: TealProcessor, mocked: responses.RequestsMock, step: Step
) -> None:
    with pytest.raises(PermanentError, match=f"Teal {step} needs the prepared requestId"):
        processor.perform(step, context(carrier_request_id=""))
    assert len(mocked.calls) == 0


def test_an_unknown_target_or_step_is_refused_without_a_call(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    with pytest.raises(PermanentError, match="Teal cannot set status 'online'"):
        processor.perform(Step.SUBMIT, context("online"))
    with pytest.raises(PermanentError, match="Teal has no step"):
        processor.perform(Step.REV_SERVICE, context())
    assert len(mocked.calls) == 0


# --- Repeat safety ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [{"status": 102, "body": ""}, {"json": done(entry())}],
    ids=["still-running", "done"],
)
def test_a_submit_whose_answer_was_lost_asks_first_and_does_not_repeat_a_known_request(
    processor: TealProcessor, mocked: responses.RequestsMock, answer: dict[str, Any]
) -> None:
    mocked.get(RESULT_URL, **answer)

    result = processor.perform(Step.SUBMIT, lost_answer())

    assert len(mocked.calls) == 1
    assert query_of(sent(mocked, 0)) == {"requestId": REQUEST_ID}
    assert set(result.updates) == {"carrier_submitted_at"}
    assert result.note.startswith(f"Teal already has request {REQUEST_ID}")


def test_a_submit_teal_never_saw_is_sent_again_under_the_same_request_id(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(RESULT_URL, status=404, json=UNKNOWN)
    mocked.post(SUBMIT_URL, json=ACCEPTED)

    result = processor.perform(Step.SUBMIT, lost_answer("disabled"))

    assert [call.request.method for call in mocked.calls] == ["GET", "POST"]
    resubmitted = sent(mocked, 1)
    assert resubmitted.url is not None and "/esims/disable?" in resubmitted.url
    assert query_of(resubmitted)["requestId"] == REQUEST_ID
    assert set(result.updates) == {"carrier_submitted_at"}


def test_a_first_submit_does_not_ask_first(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.post(SUBMIT_URL, json=ACCEPTED)

    processor.perform(Step.SUBMIT, context())

    assert [call.request.method for call in mocked.calls] == ["POST"]


# --- CONFIRM: polling, waiting, callbacks ---------------------------------------------------------


def test_confirm_polls_through_102s_with_a_growing_back_off(
    processor: TealProcessor, mocked: responses.RequestsMock, fake_time: FakeTime
) -> None:
    for _ in range(2):
        mocked.get(RESULT_URL, status=102, body="")
    mocked.get(RESULT_URL, json=done(entry()))

    result = processor.perform(Step.CONFIRM, context())

    assert "carrier_status_at" in result.updates
    assert len(mocked.calls) == 3
    first, second = fake_time.sleeps
    assert 0.2 <= first <= 0.25
    assert second == pytest.approx(first * 2)


def test_confirm_still_running_when_the_budget_is_spent_waits_for_teal(
    processor: TealProcessor,
    mocked: responses.RequestsMock,
    fake_time: FakeTime,
    audit: list[CallRecord],
) -> None:
    mocked.get(RESULT_URL, status=102, body="")

    with pytest.raises(CarrierPending) as raised:
        processor.perform(Step.CONFIRM, context())

    assert raised.value.message == (
        f"waiting for Teal: request {REQUEST_ID} still running (HTTP 102)"
    )
    assert raised.value.call is audit[-1]
    assert sum(fake_time.sleeps) == pytest.approx(1.0)
    assert len(mocked.calls) >= 3


def test_callbacks_never_decide_confirm_reads_the_result_itself(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(RESULT_URL, json=done(entry(success=False, error="Locked")))
    signalled = replace(
        context(),
        callbacks=(
            CallbackEvent(REQUEST_ID, CallbackOutcome.SIGNAL),
            CallbackEvent(REQUEST_ID, CallbackOutcome.SUCCEEDED, device_id=EID),
        ),
    )

    with pytest.raises(PermanentError, match=f"Teal could not enable EID {EID}: Locked"):
        processor.perform(Step.CONFIRM, signalled)
    assert len(mocked.calls) == 1


# --- Past the 30-minute deadline: the read decides ------------------------------------------------


def test_past_the_deadline_an_esim_in_the_target_state_is_reconciled_by_read(
    processor: TealProcessor, mocked: responses.RequestsMock
) -> None:
    mocked.get(INFO_URL, json={"success": True})
    mocked.get(RESULT_URL, json=done(esim(deviceStatus="STOPPED")))

    result = processor.perform(Step.CONFIRM, past_deadline("disabled"))

    assert result.note == "reconciled by read"
    assert "carrier_status_at" in result.updates
    info, read = sent(mocked, 0), sent(mocked, 1)
    assert query_of(read)["requestId"] == query_of(info)["requestId"] != REQUEST_ID


@pytest.mark.parametrize(
    ("answers", "shown"),
    [
        ([{"json": done(esim(deviceStatus="ONLINE"))}], f"eSIM {EID} is enabled"),
        ([{"json": done(esim(deviceStatus="DELETED"))}], "status unknown"),
        ([{"status": 102, "body": ""}], "status unknown"),  # the read did not finish either
    ],
    ids=["other-state", "unmapped-state", "read-still-running"],
)
def test_past_the_deadline_an_esim_not_shown_in_the_target_state_fails(
    processor: TealProcessor,
    mocked: responses.RequestsMock,
    answers: list[dict[str, Any]],
    shown: str,
) -> None:
    mocked.get(INFO_URL, json={"success": True})
    for answer in answers:
        mocked.get(RESULT_URL, **answer)

    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.CONFIRM, past_deadline("disabled"))

    assert raised.value.message == (
        f"Teal did not complete request {REQUEST_ID} within 30 minutes ({shown}); "
        "check the carrier before retrying"
    )
    assert not [call for call in mocked.calls if "requestId=" + REQUEST_ID in str(call.request.url)]


# --- The inbound callback -------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "body"), [("GET", b""), ("POST", b'{"anything": [1, 2]}')])
def test_a_callback_with_the_rows_token_is_a_signal_for_its_request_id(
    method: str, body: bytes
) -> None:
    events = TealProcessor.parse_callback(
        credentials=CREDENTIALS,
        method=method,
        query={"token": TOKEN, "requestId": REQUEST_ID},
        body=body,
    )

    assert events == [CallbackEvent(request_id=REQUEST_ID, outcome=CallbackOutcome.SIGNAL)]


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({"requestId": REQUEST_ID}, 401, "Teal callback with a wrong or missing token"),
        ({"token": TOKEN[:-1], "requestId": REQUEST_ID}, 401, "wrong or missing token"),
        ({"token": "", "requestId": REQUEST_ID}, 401, "wrong or missing token"),
        ({"token": TOKEN}, 400, "Teal callback without a requestId"),
        ({"token": TOKEN, "requestId": "  "}, 400, "without a requestId"),
    ],
)
def test_a_callback_without_the_token_is_401_and_without_a_request_id_400(
    query: dict[str, str], status: int, message: str
) -> None:
    with pytest.raises(CallbackRejected) as raised:
        TealProcessor.parse_callback(credentials=CREDENTIALS, method="GET", query=query, body=b"")

    assert raised.value.status == status
    assert message in raised.value.message
    assert TOKEN not in raised.value.message


def test_a_row_without_a_token_refuses_every_callback() -> None:
    with pytest.raises(CallbackRejected) as raised:
        TealProcessor.parse_callback(
            credentials=replace(CREDENTIALS, callback_token=""),
            method="GET",
            query={"token": "", "requestId": REQUEST_ID},
            body=b"",
        )

    assert raised.value.status == 401
