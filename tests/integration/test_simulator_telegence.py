"""The Telegence simulator speaks docs/carriers/telegence.md over real HTTP.

These tests are its specification: what a client sees on the wire (app-id/app-secret headers,
subscribers by MSISDN, synchronous status changes, Cancelled as final, Telegence's error body),
and what the ``/_sim`` control API lets a test arrange and observe. No database. What it does
like every carrier's simulator (refused credentials, fault headers, HTML faults, the rate limit)
is in test_simulator_common.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any, Self

import pytest
import requests

from integrations.base import Credentials, PermanentError, Step, UpdateContext
from integrations.simulators.control import SimulatorControl, SimulatorControlError
from integrations.telegence import TelegenceProcessor
from tests.fixtures.simulator_http import Caller, assert_telegence_error

APP_ID = "pondops-app"
APP_SECRET = "tg-sim-secret-99"
OTHER_APP = "other-app"
OTHER_SECRET = "other-secret-11"
MSISDN = "2145550100"
SUSPENDED_MSISDN = "2145550101"
CANCELLED_MSISDN = "2145550102"
OTHERS_MSISDN = "2145550199"
ICCID = "89011703278100000001"
API = "/sp/mobility/v1"


class Telegence(Caller):
    """A bare HTTP caller holding a Telegence base_url, as a client would."""

    @classmethod
    def at(
        cls, simulator: SimulatorControl, app_id: str = APP_ID, secret: str = APP_SECRET
    ) -> Self:
        headers = {"app-id": app_id, "app-secret": secret, "Accept": "application/json"}
        return cls(simulator.telegence_base_url, headers)

    def read(self, msisdn: str, **kwargs: Any) -> requests.Response:
        return self.get(f"{API}/subscribers/{msisdn}", **kwargs)

    def change(
        self,
        msisdn: str,
        status: str = "Suspended",
        *,
        reason: str = "CR",
        effective: str = "2026-11-22",
        **kwargs: Any,
    ) -> requests.Response:
        body = {"serviceStatus": status, "reasonCode": reason, "effectiveDate": effective}
        kwargs.setdefault("json", body)
        return self.request("PATCH", f"{API}/subscribers/{msisdn}", **kwargs)


@pytest.fixture
def telegence(simulator: SimulatorControl) -> Iterator[Telegence]:
    simulator.add_telegence_account(
        app_id=APP_ID, app_secret=APP_SECRET, billing_account="287654321"
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


# -- accounts ------------------------------------------------------------------------------


def test_a_subscriber_of_another_app_is_not_found(telegence: Telegence) -> None:
    assert telegence.read(OTHERS_MSISDN).status_code == 404
    description = assert_telegence_error(telegence.change(OTHERS_MSISDN), 404, "SUB_404")
    assert description == "Subscriber not found"


def test_an_unknown_msisdn_is_sub_404(telegence: Telegence) -> None:
    assert_telegence_error(telegence.read("9999999999"), 404, "SUB_404")


# -- the contract ----------------------------------------------------------------------------


def test_read_answers_the_subscriber_record(telegence: Telegence) -> None:
    response = telegence.read(MSISDN)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"subscriberNumber", "iccid", "serviceStatus", "lastUpdated"}
    assert (body["subscriberNumber"], body["iccid"], body["serviceStatus"]) == (
        MSISDN,
        ICCID,
        "Active",
    )


def test_a_status_change_is_synchronous_and_answers_a_transaction_id(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    first = telegence.change(MSISDN, "Suspended", reason="NP", effective="2026-11-22")
    second = telegence.change(MSISDN, "Active")

    assert first.status_code == 200
    assert first.json() == {
        "subscriberNumber": MSISDN,
        "serviceStatus": "Suspended",
        "transactionId": "T-77800",
    }
    assert second.json()["transactionId"] == "T-77801"
    assert telegence.read(MSISDN).json()["serviceStatus"] == "Active"
    assert simulator.telegence_subscriber(MSISDN)["changes"] == [
        {
            "serviceStatus": "Suspended",
            "reasonCode": "NP",
            "effectiveDate": "2026-11-22",
            "transactionId": "T-77800",
        },
        {
            "serviceStatus": "Active",
            "reasonCode": "CR",
            "effectiveDate": "2026-11-22",
            "transactionId": "T-77801",
        },
    ]


@pytest.mark.parametrize(
    ("msisdn", "target"),
    [
        (MSISDN, "Suspended"),
        (MSISDN, "Cancelled"),
        (MSISDN, "Active"),  # already Active: accepted
        (SUSPENDED_MSISDN, "Active"),
        (SUSPENDED_MSISDN, "Cancelled"),
        (CANCELLED_MSISDN, "Cancelled"),  # staying Cancelled is not a change out of it
    ],
)
def test_allowed_transitions(
    telegence: Telegence, simulator: SimulatorControl, msisdn: str, target: str
) -> None:
    response = telegence.change(msisdn, target)

    assert response.status_code == 200
    assert simulator.telegence_subscriber(msisdn)["serviceStatus"] == target


@pytest.mark.parametrize("target", ["Active", "Suspended"])
def test_a_change_out_of_cancelled_is_409_status_change_not_allowed(
    telegence: Telegence, simulator: SimulatorControl, target: str
) -> None:
    response = telegence.change(CANCELLED_MSISDN, target)

    description = assert_telegence_error(response, 409, "STATUS_CHANGE_NOT_ALLOWED")
    assert description == f"Subscriber {CANCELLED_MSISDN} is Cancelled; its status cannot change"
    subscriber = simulator.telegence_subscriber(CANCELLED_MSISDN)
    assert subscriber["serviceStatus"] == "Cancelled"
    assert subscriber["changes"] == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param(
            {"serviceStatus": "suspended", "reasonCode": "CR", "effectiveDate": "2026-11-22"},
            "INVALID_STATUS",
            id="status-wrong-case",
        ),
        pytest.param(
            {"serviceStatus": "Deactivated", "reasonCode": "CR", "effectiveDate": "2026-11-22"},
            "INVALID_STATUS",
            id="status-unknown",
        ),
        pytest.param(
            {"reasonCode": "CR", "effectiveDate": "2026-11-22"},
            "INVALID_STATUS",
            id="status-missing",
        ),
        pytest.param(
            {"serviceStatus": "Suspended", "reasonCode": "ZZ", "effectiveDate": "2026-11-22"},
            "INVALID_REASON",
            id="reason-unknown",
        ),
        pytest.param(
            {"serviceStatus": "Suspended", "effectiveDate": "2026-11-22"},
            "INVALID_REASON",
            id="reason-missing",
        ),
        pytest.param(
            {"serviceStatus": "Suspended", "reasonCode": "CR", "effectiveDate": "22/11/2026"},
            "INVALID_REQUEST",
            id="date-format",
        ),
        pytest.param(
            {"serviceStatus": "Suspended", "reasonCode": "CR", "effectiveDate": "2026-02-30"},
            "INVALID_REQUEST",
            id="date-impossible",
        ),
        pytest.param(
            {"serviceStatus": "Suspended", "reasonCode": "CR"},
            "INVALID_REQUEST",
            id="date-missing",
        ),
    ],
)
def test_bad_change_bodies_are_400_with_telegence_codes(
    telegence: Telegence, simulator: SimulatorControl, body: dict[str, Any], code: str
) -> None:
    response = telegence.change(MSISDN, json=body)

    assert_telegence_error(response, 400, code)
    assert simulator.telegence_subscriber(MSISDN)["serviceStatus"] == "Active"


def test_a_body_that_is_not_json_is_400(telegence: Telegence) -> None:
    response = telegence.change(
        MSISDN, data=b"serviceStatus=Suspended", headers={"Content-Type": "text/plain"}
    )

    assert_telegence_error(response, 400, "INVALID_REQUEST")


def test_unknown_paths_and_methods_answer_telegence_errors(telegence: Telegence) -> None:
    assert_telegence_error(telegence.request("GET", f"{API}/lines/{MSISDN}"), 404, "NOT_FOUND")
    assert_telegence_error(
        telegence.request("POST", f"{API}/subscribers/{MSISDN}", json={}),
        405,
        "METHOD_NOT_ALLOWED",
    )


# -- faults, counters, request log ----------------------------------------------------------


def test_a_queued_status_fault_answers_the_telegence_error_body_and_changes_nothing(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    simulator.add_fault("telegence", "update_status", key=MSISDN, status=503, retry_after=4)

    faulted = telegence.change(MSISDN)
    other = telegence.change(SUSPENDED_MSISDN, "Active")
    retried = telegence.change(MSISDN)

    assert_telegence_error(faulted, 503, "SERVICE_UNAVAILABLE")
    assert faulted.headers["Retry-After"] == "4"
    assert other.status_code == 200
    assert retried.status_code == 200
    assert [c["serviceStatus"] for c in simulator.telegence_subscriber(MSISDN)["changes"]] == [
        "Suspended"
    ]


def test_an_empty_fault_answers_the_status_with_an_empty_body(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    simulator.add_fault("telegence", "get_subscriber", kind="empty", status=500)

    response = telegence.read(MSISDN)

    assert (response.status_code, response.content) == (500, b"")


def test_counters_are_per_op_and_msisdn_and_include_refused_calls(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    telegence.read(MSISDN)
    telegence.change(MSISDN)
    telegence.change(MSISDN, headers={"app-secret": "wrong-secret"})
    telegence.change(CANCELLED_MSISDN, "Active")

    assert simulator.call_count("telegence", "get_subscriber", MSISDN) == 1
    assert simulator.call_count("telegence", "update_status", MSISDN) == 2
    assert simulator.call_count("telegence", "update_status", CANCELLED_MSISDN) == 1
    assert simulator.call_count("telegence") == 4
    assert simulator.calls()["telegence"] == {
        "get_subscriber": {MSISDN: 1},
        "update_status": {MSISDN: 2, CANCELLED_MSISDN: 1},
    }


def test_the_request_log_keeps_the_idempotency_key_and_hides_the_secret(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    telegence.change(MSISDN, headers={"Idempotency-Key": "pondops-9-carrier_status"})

    [entry] = simulator.requests(carrier="telegence", op="update_status", key=MSISDN)

    assert entry["method"] == "PATCH"
    assert entry["carrier_path"] == f"{API}/subscribers/{MSISDN}"
    assert entry["idempotency_key"] == "pondops-9-carrier_status"
    assert entry["headers"]["app-id"] == APP_ID
    assert entry["headers"]["app-secret"] == "[redacted]"
    assert entry["body"]["serviceStatus"] == "Suspended"
    assert entry["status"] == 200


# -- control API -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("app_id", "subscribers", "message"),
    [
        ("nobody", [{"msisdn": MSISDN, "iccid": ICCID}], "no Telegence account"),
        (APP_ID, [{"msisdn": MSISDN, "iccid": ICCID, "status": "Gone"}], "status must be one"),
        (APP_ID, [{"msisdn": "214-555", "iccid": ICCID}], "msisdn must be digits"),
        (APP_ID, [{"msisdn": MSISDN}], "iccid is required"),
        (APP_ID, [{"msisdn": MSISDN, "iccid": ICCID}] * 2, "each msisdn may appear once"),
    ],
)
def test_seeding_refuses_bad_subscribers_and_stores_none(
    telegence: Telegence,
    simulator: SimulatorControl,
    app_id: str,
    subscribers: list[dict[str, str]],
    message: str,
) -> None:
    with pytest.raises(SimulatorControlError, match=message):
        simulator.seed_telegence_subscribers(app_id=app_id, subscribers=subscribers)

    assert simulator.telegence_subscriber(MSISDN)["changes"] == []


def test_showing_an_unknown_subscriber_is_404(simulator: SimulatorControl) -> None:
    with pytest.raises(SimulatorControlError, match="404"):
        simulator.telegence_subscriber("5550000000")


def test_reset_forgets_accounts_and_subscribers(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    simulator.reset()

    assert telegence.read(MSISDN).status_code == 401
    with pytest.raises(SimulatorControlError):
        simulator.telegence_subscriber(MSISDN)


# -- our client against it -------------------------------------------------------------------


def test_the_telegence_processor_round_trips_against_the_simulator(
    telegence: Telegence, simulator: SimulatorControl
) -> None:
    processor = TelegenceProcessor(
        credentials=Credentials(
            integration_authentication_id=1,
            integration="TELEGENCE",
            base_url=simulator.telegence_base_url,
            account="287654321",
            username=APP_ID,
            secret=APP_SECRET,
        ),
        timeouts=(2, 5),
    )
    context = UpdateContext(
        device_change_id=9,
        bulk_change_id=1,
        iccid=ICCID,
        msisdn=MSISDN,
        target_status="Suspended",
        options={"reason_code": "SE"},
        today=date(2026, 11, 22),
    )

    assert processor.read_status(context) == "Active"
    result = processor.perform(Step.CARRIER_STATUS, context)
    assert processor.read_status(context) == "Suspended"

    assert result.updates["carrier_request_id"] == "T-77800"
    [change] = simulator.telegence_subscriber(MSISDN)["changes"]
    assert change == {
        "serviceStatus": "Suspended",
        "reasonCode": "SE",
        "effectiveDate": "2026-11-22",
        "transactionId": "T-77800",
    }
    with pytest.raises(PermanentError) as raised:
        processor.perform(
            Step.CARRIER_STATUS,
            UpdateContext(
                device_change_id=10,
                bulk_change_id=1,
                iccid="89011703278100000003",
                msisdn=CANCELLED_MSISDN,
                target_status="Active",
            ),
        )
    assert raised.value.message == (
        f"HTTP 409 from Telegence: Subscriber {CANCELLED_MSISDN} is Cancelled; its status "
        "cannot change (STATUS_CHANGE_NOT_ALLOWED)"
    )
