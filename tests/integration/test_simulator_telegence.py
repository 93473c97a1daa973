"""The Telegence simulator speaks docs/carriers/telegence.md over real HTTP.

These tests are its specification: what a client sees on the wire (app-id/app-secret headers,
lines by 10-digit subscriber number on the APEX line-configuration path, the service record
with its ``serviceCharacteristic`` pairs, a PATCH accepted as an order that shows after the
configured reads or seconds, Cancelled as final, the gateway's error bodies), and what the
``/_sim`` control API lets a test arrange and observe. No database. What it does like every
carrier's simulator (refused credentials, fault headers, HTML faults, the rate limit) is in
test_simulator_common.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any, Self

import pytest
import requests

from integrations.base import CarrierPending, Credentials, PermanentError, Step, UpdateContext
from integrations.simulators.control import SimulatorControl, SimulatorControlError
from integrations.telegence import TelegenceProcessor
from tests.conftest import wait_for
from tests.fixtures.simulator_http import Caller, assert_telegence_error

APP_ID = "pondops-app"
APP_SECRET = "tg-sim-secret-99"
OTHER_APP = "other-app"
OTHER_SECRET = "other-secret-11"
BILLING_ACCOUNT = "287654321"
MSISDN = "2145550100"
SUSPENDED_MSISDN = "2145550101"
CANCELLED_MSISDN = "2145550102"
OTHERS_MSISDN = "2145550199"
ICCID = "89011703278100000001"
API = "/sp/mobility/lineconfig/api/v1"


def change_body(code: str = "S", reason: str = "CR", effective: str = "2026-11-22") -> Any:
    return {
        "effectiveDate": effective,
        "serviceCharacteristic": [
            {"name": "subscriberStatus", "value": code},
            {"name": "reasonCode", "value": reason},
        ],
    }


class Telegence(Caller):
    """A bare HTTP caller holding a Telegence base_url, as a client would."""

    @classmethod
    def at(
        cls, simulator: SimulatorControl, app_id: str = APP_ID, secret: str = APP_SECRET
    ) -> Self:
        headers = {"app-id": app_id, "app-secret": secret, "Accept": "application/json"}
        return cls(simulator.telegence_base_url, headers)

    def read(self, msisdn: str, **kwargs: Any) -> requests.Response:
        return self.get(f"{API}/service/{msisdn}", **kwargs)

    def change(self, msisdn: str, code: str = "S", **kwargs: Any) -> requests.Response:
        kwargs.setdefault("json", change_body(code))
        return self.request("PATCH", f"{API}/service/{msisdn}", **kwargs)


def characteristic(record: dict[str, Any], name: str) -> str:
    [value] = [c["value"] for c in record["serviceCharacteristic"] if c["name"] == name]
    return str(value)


def shown(response: requests.Response) -> tuple[str, str]:
    """(top-level status, subscriberStatus) of a service record."""
    body = response.json()
    return body["status"], characteristic(body, "subscriberStatus")


@pytest.fixture
def telegence(simulator: SimulatorControl) -> Iterator[Telegence]:
    simulator.add_telegence_account(
        app_id=APP_ID, app_secret=APP_SECRET, billing_account=BILLING_ACCOUNT
    )
    simulator.add_telegence_account(app_id=OTHER_APP, app_secret=OTHER_SECRET)
    simulator.seed_telegence_subscribers(
        app_id=APP_ID,
        subscribers=[
            {"msisdn": MSISDN, "iccid": ICCID},
            {"msisdn": SUSPENDED_MSISDN, "iccid": "89011703278100000002", "status": "Suspended"},
            {"msisdn": CANCELLED_MSISDN, "iccid": "89011703278100000003", "status": "Cancelled"},
        ],
    )
    simulator.seed_telegence_subscribers(
        app_id=OTHER_APP, subscribers=[{"msisdn": OTHERS_MSISDN, "iccid": "89011703278100000099"}]
    )
    with Telegence.at(simulator) as carrier:
        yield carrier


# -- the service record ------------------------------------------------------------------------


def test_read_answers_the_service_record_with_its_characteristics(telegence: Telegence) -> None:
    response = telegence.read(MSISDN)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"subscriberNumber", "status", "serviceCharacteristic"}
    assert (body["subscriberNumber"], body["status"]) == (MSISDN, "Active")
    names = [entry["name"] for entry in body["serviceCharacteristic"]]
    assert names == [
        "subscriberStatus",
        "statusEffectiveDate",
        "statusReasonCode",
        "sim",
        "singleUserCode",
        "billingAccountNumber",
    ]
    assert characteristic(body, "subscriberStatus") == "A"
    assert characteristic(body, "sim") == ICCID
    assert characteristic(body, "billingAccountNumber") == BILLING_ACCOUNT
    assert characteristic(body, "statusEffectiveDate").endswith("Z")


@pytest.mark.parametrize("msisdn", [OTHERS_MSISDN, "9999999999"])
def test_a_line_of_another_app_or_none_is_the_documented_404(
    telegence: Telegence, msisdn: str
) -> None:
    for response in (telegence.read(msisdn), telegence.change(msisdn)):
        assert assert_telegence_error(response, 404, "description") == "/service/"


# -- status changes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msisdn", "code", "status"),
    [
        (MSISDN, "S", "Suspended"),
        (MSISDN, "C", "Cancelled"),
        (MSISDN, "A", "Active"),  # already Active: accepted
        (SUSPENDED_MSISDN, "A", "Active"),
        (SUSPENDED_MSISDN, "C", "Cancelled"),
        (CANCELLED_MSISDN, "C", "Cancelled"),  # staying Cancelled is not a change out of it
    ],
)
def test_by_default_a_change_applies_at_once_and_answers_200_with_the_new_record(
    telegence: Telegence, simulator: SimulatorControl, msisdn: str, code: str, status: str
) -> None:
    response = telegence.change(msisdn, code)

    assert response.status_code == 200
    assert shown(response) == (status, code)
    assert "id" not in response.json() and "requestId" not in response.json()
    assert shown(telegence.read(msisdn)) == (status, code)


def test_the_change_is_recorded_with_its_reason_and_date(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    telegence.change(MSISDN, json=change_body("S", "NP", "2026-11-22"))
    telegence.change(MSISDN, json=change_body("A", "CR", "2026-11-23"))

    line = simulator.telegence_subscriber(MSISDN)
    assert line["changes"] == [
        {"subscriberStatus": "S", "reasonCode": "NP", "effectiveDate": "2026-11-22"},
        {"subscriberStatus": "A", "reasonCode": "CR", "effectiveDate": "2026-11-23"},
    ]
    assert characteristic(line, "statusReasonCode") == "CR"
    assert characteristic(line, "statusEffectiveDate") == "2026-11-23Z"


def test_with_reads_configured_the_line_shows_the_change_only_after_them(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    assert simulator.set_telegence_completion(reads=2) == {
        "apply_after_reads": 2,
        "apply_after_seconds": 0.0,
    }

    accepted = telegence.change(MSISDN, "S")

    assert accepted.status_code == 202
    assert shown(accepted) == ("Active", "A")  # the record still shows the old status
    assert simulator.telegence_subscriber(MSISDN)["pending"] == {"status": "Suspended"}
    assert [shown(telegence.read(MSISDN)) for _ in range(3)] == [
        ("Active", "A"),
        ("Active", "A"),
        ("Suspended", "S"),
    ]
    assert simulator.telegence_subscriber(MSISDN)["pending"] is None


def test_with_seconds_configured_the_line_shows_the_change_once_they_passed(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    simulator.set_telegence_completion(seconds=0.3)

    assert telegence.change(MSISDN, "S").status_code == 202
    assert shown(telegence.read(MSISDN)) == ("Active", "A")

    wait_for(
        lambda: shown(telegence.read(MSISDN)) == ("Suspended", "S"),
        timeout=5,
        interval=0.05,
        message="the change shows",
    )


def test_never_keeps_the_change_pending_until_the_admin_applies_it(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    simulator.set_telegence_completion(seconds="never")
    telegence.change(MSISDN, "S")

    assert [shown(telegence.read(MSISDN)) for _ in range(5)] == [("Active", "A")] * 5
    applied = simulator.apply_telegence_change(MSISDN)

    assert applied["status"] == "Suspended"
    assert shown(telegence.read(MSISDN)) == ("Suspended", "S")
    assert simulator.telegence_subscriber(MSISDN)["reads"] == 6


def test_a_newer_change_replaces_a_pending_one(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    simulator.set_telegence_completion(seconds="never")
    telegence.change(MSISDN, "S")
    telegence.change(MSISDN, "C")

    simulator.apply_telegence_change(MSISDN)

    assert shown(telegence.read(MSISDN)) == ("Cancelled", "C")
    assert len(simulator.telegence_subscriber(MSISDN)["changes"]) == 2  # never de-duplicated


@pytest.mark.parametrize("code", ["A", "S"])
def test_a_change_out_of_cancelled_is_the_documented_404(
    telegence: Telegence, simulator: SimulatorControl, code: str
) -> None:
    response = telegence.change(CANCELLED_MSISDN, code)

    assert assert_telegence_error(response, 404, "description") == "/service/"
    line = simulator.telegence_subscriber(CANCELLED_MSISDN)
    assert (line["status"], line["changes"]) == ("Cancelled", [])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(change_body("s"), "subscriberStatus must be one of A, S, C", id="lower"),
        pytest.param(change_body("Suspended"), "subscriberStatus must be one of", id="name"),
        pytest.param(
            {"effectiveDate": "2026-11-22", "serviceCharacteristic": []},
            "subscriberStatus must be one of",
            id="status-missing",
        ),
        pytest.param(change_body(reason="ZZ"), "reasonCode must be one of", id="reason-unknown"),
        pytest.param(
            {
                "effectiveDate": "2026-11-22",
                "serviceCharacteristic": [{"name": "subscriberStatus", "value": "S"}],
            },
            "reasonCode must be one of",
            id="reason-missing",
        ),
        pytest.param(
            {"effectiveDate": "2026-11-22", "serviceCharacteristic": {"subscriberStatus": "S"}},
            "serviceCharacteristic must be a list",
            id="characteristics-not-a-list",
        ),
        pytest.param(
            {"serviceStatus": "Suspended", "reasonCode": "CR", "effectiveDate": "2026-11-22"},
            "serviceCharacteristic must be a list",
            id="the-old-flat-body",
        ),
        pytest.param(change_body(effective="22/11/2026"), "effectiveDate must be", id="date"),
        pytest.param(change_body(effective="2026-02-30"), "is not a date", id="impossible"),
        pytest.param(
            {"serviceCharacteristic": change_body()["serviceCharacteristic"]},
            "effectiveDate must be",
            id="date-missing",
        ),
    ],
)
def test_bad_change_bodies_are_400_with_an_error_description(
    telegence: Telegence, simulator: SimulatorControl, body: dict[str, Any], message: str
) -> None:
    response = telegence.change(MSISDN, json=body)

    assert message in assert_telegence_error(response, 400, "errorDescription")
    assert simulator.telegence_subscriber(MSISDN)["status"] == "Active"


def test_a_body_that_is_not_json_is_400(telegence: Telegence) -> None:
    response = telegence.change(
        MSISDN, data=b"subscriberStatus=S", headers={"Content-Type": "text/plain"}
    )

    assert_telegence_error(response, 400, "errorDescription")


def test_unknown_paths_and_methods_answer_the_gateways_body(telegence: Telegence) -> None:
    assert_telegence_error(
        telegence.request("GET", f"/sp/mobility/v1/subscribers/{MSISDN}"), 404, "errorDescription"
    )
    assert_telegence_error(
        telegence.request("POST", f"{API}/service/{MSISDN}", json={}), 405, "errorDescription"
    )


# -- faults, counters, request log ----------------------------------------------------------


def test_a_queued_status_fault_answers_the_gateway_body_and_changes_nothing(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    simulator.add_fault("telegence", "change_line", key=MSISDN, status=503, retry_after=4)

    faulted = telegence.change(MSISDN)
    other = telegence.change(SUSPENDED_MSISDN, "A")
    retried = telegence.change(MSISDN)

    assert assert_telegence_error(faulted, 503, "errorDescription") == (
        "Simulated fault: 503 Service Unavailable"
    )
    assert faulted.headers["Retry-After"] == "4"
    assert (other.status_code, retried.status_code) == (200, 200)
    assert len(simulator.telegence_subscriber(MSISDN)["changes"]) == 1


def test_a_timeout_fault_applies_the_change_after_the_delay(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    simulator.add_fault("telegence", "change_line", key=MSISDN, kind="timeout", delay_ms=400)

    with pytest.raises(requests.Timeout):
        telegence.change(MSISDN, timeout=0.1)

    wait_for(
        lambda: simulator.telegence_subscriber(MSISDN)["status"] == "Suspended",
        timeout=5,
        interval=0.05,
        message="the timed-out change applied",
    )


def test_counters_are_per_op_and_msisdn_and_include_refused_calls(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    telegence.read(MSISDN)
    telegence.change(MSISDN)
    telegence.change(MSISDN, headers={"app-secret": "wrong-secret"})
    telegence.change(CANCELLED_MSISDN, "A")

    assert simulator.calls()["telegence"] == {
        "read_line": {MSISDN: 1},
        "change_line": {MSISDN: 2, CANCELLED_MSISDN: 1},
    }


def test_the_request_log_keeps_the_idempotency_key_and_hides_the_secret(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    telegence.change(MSISDN, headers={"Idempotency-Key": "pondops-9-submit"})

    [entry] = simulator.requests(carrier="telegence", op="change_line", key=MSISDN)

    assert entry["method"] == "PATCH"
    assert entry["carrier_path"] == f"{API}/service/{MSISDN}"
    assert entry["idempotency_key"] == "pondops-9-submit"
    assert entry["headers"]["app-id"] == APP_ID
    assert entry["headers"]["app-secret"] == "[redacted]"
    assert entry["body"] == change_body()
    assert entry["status"] == 200


# -- control API -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app_id", "subscribers", "message"),
    [
        ("nobody", [{"msisdn": MSISDN, "iccid": ICCID}], "no Telegence account"),
        (APP_ID, [{"msisdn": MSISDN, "iccid": ICCID, "status": "Gone"}], "status must be one"),
        (APP_ID, [{"msisdn": "214-555", "iccid": ICCID}], "msisdn must be 10 digits"),
        (APP_ID, [{"msisdn": "12145550100", "iccid": ICCID}], "msisdn must be 10 digits"),
        (APP_ID, [{"msisdn": MSISDN}], "iccid is required"),
        (APP_ID, [{"msisdn": MSISDN, "iccid": ICCID}] * 2, "each msisdn may appear once"),
    ],
)
def test_seeding_refuses_bad_lines_and_stores_none(
    telegence: Telegence,
    simulator: SimulatorControl,
    app_id: str,
    subscribers: list[dict[str, str]],
    message: str,
) -> None:
    with pytest.raises(SimulatorControlError, match=message):
        simulator.seed_telegence_subscribers(app_id=app_id, subscribers=subscribers)

    assert simulator.telegence_subscriber(MSISDN)["changes"] == []


@pytest.mark.parametrize(
    "body",
    [{"apply_after_reads": -1}, {"apply_after_reads": 1.5}, {"apply_after_seconds": "soon"}],
)
def test_bad_completion_config_is_refused(
    simulator: SimulatorControl, body: dict[str, Any]
) -> None:
    with pytest.raises(SimulatorControlError, match="400"):
        simulator._call("POST", "/_sim/telegence/config", body)


def test_showing_or_applying_an_unknown_line_is_404(simulator: SimulatorControl) -> None:
    with pytest.raises(SimulatorControlError, match="404"):
        simulator.telegence_subscriber("5550000000")
    with pytest.raises(SimulatorControlError, match="404"):
        simulator.apply_telegence_change("5550000000")


def test_reset_forgets_accounts_lines_and_the_completion_config(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    simulator.set_telegence_completion(reads=3, seconds="never")

    simulator.reset()

    assert telegence.read(MSISDN).status_code == 401
    with pytest.raises(SimulatorControlError):
        simulator.telegence_subscriber(MSISDN)
    assert simulator.set_telegence_completion() == {
        "apply_after_reads": 0,
        "apply_after_seconds": 0.0,
    }


# -- our processor against it ------------------------------------------------------------------


def test_the_telegence_processor_submits_then_confirms_against_the_simulator(
    telegence: Telegence, simulator: SimulatorControl, settings: Any
) -> None:
    settings.BULKCHANGE_CONFIRM_SECONDS = 0  # one read per CONFIRM attempt
    simulator.set_telegence_completion(reads=1)
    processor = TelegenceProcessor(
        credentials=Credentials(
            integration_authentication_id=1,
            integration="TELEGENCE",
            base_url=simulator.telegence_base_url,
            account=BILLING_ACCOUNT,
            username=APP_ID,
            secret=APP_SECRET,
        ),
        timeouts=(2, 5),
    )
    context = UpdateContext(
        device_change_id=9,
        bulk_change_id=1,
        iccid=ICCID,
        msisdn="+1 214-555-0100",
        target_status="Suspended",
        options={"reason_code": "SE"},
        today=date(2026, 11, 22),
    )

    assert processor.read_status(context) == "Active"
    submitted = processor.perform(Step.SUBMIT, context)
    with pytest.raises(CarrierPending, match="line 2145550100 still shows Active"):
        processor.perform(Step.CONFIRM, context)
    confirmed = processor.perform(Step.CONFIRM, context)

    assert set(submitted.updates) == {"carrier_submitted_at"}
    assert confirmed.note == "line 2145550100 Suspended"
    assert simulator.telegence_subscriber(MSISDN)["changes"] == [
        {"subscriberStatus": "S", "reasonCode": "SE", "effectiveDate": "2026-11-22"}
    ]
    cancelled = UpdateContext(
        device_change_id=10,
        bulk_change_id=1,
        iccid="89011703278100000003",
        msisdn=CANCELLED_MSISDN,
        target_status="Active",
    )
    with pytest.raises(PermanentError) as raised:
        processor.perform(Step.SUBMIT, cancelled)
    assert raised.value.message.startswith(
        "HTTP 404 from Telegence: unknown line, or a change the line does not allow (/service/) "
        "(id "
    )
