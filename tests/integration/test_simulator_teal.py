"""The Teal simulator speaks docs/carriers/teal.md over real HTTP.

These tests are the simulator's specification: what a client sees on the wire (ApiKey/ApiSecret
headers, asynchronous operations named by our requestId, Teal's error body), and what the
``/_sim`` control API lets a test arrange (completion delay, 102 answers, per-EID errors, rate
limit) and observe (operations, counters, the request log). What it does like every carrier's
simulator (refused credentials, the rate limit) is in test_simulator_common.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace as dc_replace
from typing import Any

import pytest
import requests

from integrations.base import Credentials, UpdateContext
from integrations.simulators.control import SimulatorControl, SimulatorControlError
from integrations.teal import TealProcessor
from tests.conftest import wait_for
from tests.fixtures.simulator_http import Caller, assert_teal_error

API_KEY = "teal-key-acme"
API_SECRET = "teal-secret-Qv93xk"
OTHER_KEY = "teal-key-globex"
OTHER_SECRET = "teal-secret-globex"
EID = "89049032000000000000000000000001"
EID_2 = "89049032000000000000000000000002"
OTHER_ACCOUNT_EID = "89049032000000000000000000000099"
ICCID = "89148000000000000001"


class Teal(Caller):
    """A bare HTTP caller for Teal's API, as a client would hold it."""

    def submit(
        self, action: str, eids: list[str], request_id: str | None = None, **kwargs: Any
    ) -> requests.Response:
        params = {"requestId": request_id or str(uuid.uuid4()), "callbackUrl": ""}
        return self.post(f"/esims/{action}", params=params, json={"entries": eids}, **kwargs)

    def operation(self, request_id: str) -> requests.Response:
        return self.get(f"/operations/{request_id}")


@pytest.fixture
def teal(simulator: SimulatorControl) -> Iterator[Teal]:
    simulator.add_teal_account(api_key=API_KEY, api_secret=API_SECRET, label="Acme fleet")
    simulator.add_teal_account(api_key=OTHER_KEY, api_secret=OTHER_SECRET)
    simulator.seed_teal_esims(
        api_key=API_KEY,
        esims=[
            {"eid": EID, "iccid": ICCID, "status": "stopped", "plan": "global-1gb"},
            {"eid": EID_2, "iccid": "89148000000000000002", "status": "online"},
        ],
    )
    simulator.seed_teal_esims(
        api_key=OTHER_KEY, esims=[{"eid": OTHER_ACCOUNT_EID, "iccid": "8914800000000000099"}]
    )
    with Teal(
        simulator.teal_base_url + "/api/v1",
        headers={"ApiKey": API_KEY, "ApiSecret": API_SECRET, "Accept": "application/json"},
    ) as caller:
        yield caller


# -- authentication ---------------------------------------------------------------------------


def test_missing_credential_headers_are_401(teal: Teal) -> None:
    response = teal.session.get(f"{teal.root}/esims/{EID}", timeout=5)

    assert_teal_error(response, 401, "UNAUTHORIZED")


# -- reading eSIMs ----------------------------------------------------------------------------


def test_read_esim_shows_eid_iccid_status_and_plan(teal: Teal) -> None:
    response = teal.request("GET", f"/esims/{EID}")

    assert response.status_code == 200
    assert response.json() == {
        "eid": EID,
        "iccid": ICCID,
        "status": "stopped",
        "plan": "global-1gb",
    }


@pytest.mark.parametrize("eid", [OTHER_ACCOUNT_EID, "89049032000000000000000000009999"])
def test_an_esim_of_another_account_or_none_is_404_esim_not_found(teal: Teal, eid: str) -> None:
    message = assert_teal_error(teal.request("GET", f"/esims/{eid}"), 404, "ESIM_NOT_FOUND")

    assert eid in message


# -- changing state ---------------------------------------------------------------------------


def test_enable_is_accepted_queued_and_completes_online(
    teal: Teal, simulator: SimulatorControl
) -> None:
    request_id = str(uuid.uuid4())

    accepted = teal.submit("enable", [EID], request_id)

    assert accepted.status_code == 202
    assert accepted.json() == {"requestId": request_id, "status": "QUEUED"}
    done = teal.operation(request_id)
    assert done.status_code == 200
    assert done.json() == {
        "requestId": request_id,
        "status": "COMPLETED",
        "entries": [{"eid": EID, "status": "online", "error": None}],
    }
    assert teal.request("GET", f"/esims/{EID}").json()["status"] == "online"
    assert simulator.teal_esim(EID)["status"] == "online"


def test_disable_stops_an_online_esim(teal: Teal) -> None:
    request_id = str(uuid.uuid4())
    teal.submit("disable", [EID_2], request_id)

    assert teal.operation(request_id).json()["entries"] == [
        {"eid": EID_2, "status": "stopped", "error": None}
    ]
    assert teal.request("GET", f"/esims/{EID_2}").json()["status"] == "stopped"


def test_operations_run_for_the_configured_delay_then_complete(
    teal: Teal, simulator: SimulatorControl
) -> None:
    assert simulator.configure_teal(completion_seconds=0.3) == {
        "completion_seconds": 0.3,
        "interim_polls": 0,
    }
    request_id = str(uuid.uuid4())
    teal.submit("enable", [EID], request_id)

    assert teal.operation(request_id).json() == {"requestId": request_id, "status": "PROCESSING"}
    assert simulator.teal_esim(EID)["status"] == "stopped"
    wait_for(
        lambda: teal.operation(request_id).json()["status"] == "COMPLETED", timeout=5, interval=0.02
    )
    assert simulator.teal_esim(EID)["status"] == "online"


def test_never_keeps_operations_running_until_the_config_changes(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.configure_teal(completion_seconds="never")
    request_id = str(uuid.uuid4())
    teal.submit("enable", [EID], request_id)

    assert [teal.operation(request_id).json()["status"] for _ in range(3)] == ["PROCESSING"] * 3

    simulator.configure_teal(completion_seconds=0)
    assert teal.operation(request_id).json()["status"] == "COMPLETED"


def test_the_first_n_polls_of_each_operation_are_answered_102(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.configure_teal(interim_polls=2)
    request_id = str(uuid.uuid4())
    teal.submit("enable", [EID], request_id)

    answers = [teal.operation(request_id) for _ in range(3)]

    assert [(a.status_code, a.content) for a in answers[:2]] == [(102, b""), (102, b"")]
    assert answers[2].status_code == 200
    assert answers[2].json()["status"] == "COMPLETED"
    assert simulator.teal_operations()[0]["polls"] == 3


def test_a_repeated_request_id_returns_the_same_operation(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.configure_teal(completion_seconds="never")
    request_id = str(uuid.uuid4())

    first = teal.submit("enable", [EID], request_id)
    again = teal.submit("enable", [EID], request_id)

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json() == {"requestId": request_id, "status": "QUEUED"}
    [operation] = simulator.teal_operations()
    assert (operation["requestId"], operation["submissions"]) == (request_id, 2)
    assert simulator.call_count("teal", "enable", EID) == 2


def test_a_request_id_reused_for_another_request_is_409(teal: Teal) -> None:
    request_id = str(uuid.uuid4())
    teal.submit("enable", [EID], request_id)

    response = teal.submit("disable", [EID], request_id)

    message = assert_teal_error(response, 409, "FLOW_RESTRICTED_ERROR")
    assert request_id in message


def test_a_second_operation_on_a_busy_esim_is_409_flow_restricted(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.configure_teal(completion_seconds="never")
    first = str(uuid.uuid4())
    teal.submit("enable", [EID], first)

    response = teal.submit("enable", [EID])

    message = assert_teal_error(response, 409, "FLOW_RESTRICTED_ERROR")
    assert first in message
    assert len(simulator.teal_operations()) == 1


@pytest.mark.parametrize(
    ("params", "body", "words"),
    [
        pytest.param({"callbackUrl": ""}, {"entries": [EID]}, "requestId", id="no-request-id"),
        pytest.param(
            {"requestId": "req-1", "callbackUrl": ""},
            {"entries": [EID]},
            "requestId must be a UUID",
            id="request-id-not-a-uuid",
        ),
        pytest.param(
            {"requestId": str(uuid.uuid4())}, {"entries": [EID]}, "callbackUrl", id="no-callback"
        ),
        pytest.param(
            {"requestId": str(uuid.uuid4()), "callbackUrl": ""},
            {"entries": []},
            "entries",
            id="no-entries",
        ),
        pytest.param(
            {"requestId": str(uuid.uuid4()), "callbackUrl": ""},
            {"eids": [EID]},
            "entries",
            id="wrong-field",
        ),
    ],
)
def test_malformed_submissions_are_400_validation_errors(
    teal: Teal, simulator: SimulatorControl, params: dict[str, str], body: Any, words: str
) -> None:
    response = teal.request("POST", "/esims/enable", params=params, json=body)

    assert words in assert_teal_error(response, 400, "VALIDATION_ERROR")
    assert simulator.teal_operations() == []


@pytest.mark.parametrize("eid", [OTHER_ACCOUNT_EID, "89049032000000000000000000009999"])
def test_submitting_an_unknown_eid_is_404_and_creates_no_operation(
    teal: Teal, simulator: SimulatorControl, eid: str
) -> None:
    response = teal.submit("enable", [eid])

    assert_teal_error(response, 404, "ESIM_NOT_FOUND")
    assert simulator.teal_operations() == []


def test_an_injected_entry_error_fails_only_that_eid(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.set_teal_errors(EID_2, entry_error="Profile is locked by the MNO")
    request_id = str(uuid.uuid4())
    teal.submit("disable", [EID, EID_2], request_id)

    body = teal.operation(request_id).json()

    assert body["status"] == "COMPLETED"
    assert body["entries"] == [
        {"eid": EID, "status": "stopped", "error": None},
        {"eid": EID_2, "status": "online", "error": "Profile is locked by the MNO"},
    ]
    assert simulator.teal_esim(EID_2)["status"] == "online"  # left unchanged
    simulator.set_teal_errors(EID_2)
    assert simulator.teal_esim(EID_2)["entry_error"] is None


def test_an_injected_operation_error_fails_the_operation_with_its_message(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.set_teal_errors(EID, operation_error="Profile server unavailable")
    request_id = str(uuid.uuid4())
    teal.submit("enable", [EID], request_id)

    body = teal.operation(request_id).json()

    assert (body["status"], body["message"]) == ("FAILED", "Profile server unavailable")
    assert simulator.teal_esim(EID)["status"] == "stopped"


def test_an_operation_of_another_account_or_none_is_404(
    teal: Teal, simulator: SimulatorControl
) -> None:
    request_id = str(uuid.uuid4())
    teal.submit("enable", [EID], request_id)
    other = teal.request(
        "GET",
        f"/operations/{request_id}",
        headers={"ApiKey": OTHER_KEY, "ApiSecret": OTHER_SECRET},
    )

    assert_teal_error(other, 404, "GENERIC_ERROR")
    assert_teal_error(teal.operation(str(uuid.uuid4())), 404, "GENERIC_ERROR")


# -- faults, counters, the request log --------------------------------------------------------


def test_a_503_fault_on_one_eids_submit_is_counted_and_creates_no_operation(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.add_fault("teal", "enable", key=EID, status=503, retry_after=2)
    request_id = str(uuid.uuid4())

    faulted = teal.submit("enable", [EID], request_id)
    repeated = teal.submit("enable", [EID], request_id)

    assert_teal_error(faulted, 503, "GENERIC_ERROR")
    assert faulted.headers["Retry-After"] == "2"
    assert repeated.status_code == 202
    [operation] = simulator.teal_operations()
    assert operation["submissions"] == 1
    assert simulator.call_count("teal", "enable", EID) == 2
    assert simulator.call_count("teal", "operation") == 0


def test_html_and_empty_faults_answer_that_status(teal: Teal, simulator: SimulatorControl) -> None:
    simulator.add_fault("teal", "operation", kind="html", status=502)
    simulator.add_fault("teal", "read_esim", kind="empty", status=500)

    html = teal.operation(str(uuid.uuid4()))
    empty = teal.request("GET", f"/esims/{EID}")

    assert html.status_code == 502
    assert "<title>502 Bad Gateway</title>" in html.text
    assert (empty.status_code, empty.content) == (500, b"")


def test_calls_are_counted_by_op_and_eid_or_request_id(
    teal: Teal, simulator: SimulatorControl
) -> None:
    request_id = str(uuid.uuid4())
    teal.request("GET", f"/esims/{EID}")
    teal.submit("enable", [EID], request_id)
    teal.operation(request_id)
    teal.operation(request_id)
    teal.submit("disable", [EID_2])

    assert simulator.calls()["teal"] == {
        "read_esim": {EID: 1},
        "enable": {EID: 1},
        "operation": {request_id: 2},
        "disable": {EID_2: 1},
    }


def test_the_request_log_keeps_the_request_id_and_hides_the_secret(
    teal: Teal, simulator: SimulatorControl
) -> None:
    request_id = str(uuid.uuid4())
    teal.submit("enable", [EID], request_id)

    [logged] = simulator.requests(carrier="teal", op="enable", key=EID)

    assert logged["carrier_path"] == f"/api/v1/esims/enable?requestId={request_id}&callbackUrl="
    assert logged["body"] == {"entries": [EID]}
    assert logged["headers"]["apikey"] == API_KEY
    assert logged["headers"]["apisecret"] == "[redacted]"
    assert API_SECRET not in str(logged)


# -- rate limit -------------------------------------------------------------------------------


def test_the_default_limit_is_1000_a_minute_so_a_burst_of_50_passes(teal: Teal) -> None:
    answers = [teal.request("GET", f"/esims/{EID}") for _ in range(50)]

    assert {a.status_code for a in answers} == {200}


# -- control API ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [{"completion_seconds": -1}, {"completion_seconds": "soon"}, {"interim_polls": -2}],
)
def test_invalid_teal_config_is_refused(simulator: SimulatorControl, config: Any) -> None:
    with pytest.raises(SimulatorControlError, match="-> 400"):
        simulator.configure_teal(**config)


def test_seeding_an_esim_in_an_unknown_state_or_for_no_account_is_refused(
    simulator: SimulatorControl,
) -> None:
    simulator.add_teal_account(api_key=API_KEY, api_secret=API_SECRET)
    with pytest.raises(SimulatorControlError, match="status must be one of"):
        simulator.seed_teal_esims(
            api_key=API_KEY, esims=[{"eid": EID, "iccid": ICCID, "status": "enabled"}]
        )
    with pytest.raises(SimulatorControlError, match="no Teal account"):
        simulator.seed_teal_esims(api_key="nobody", esims=[{"eid": EID, "iccid": ICCID}])


def test_reset_forgets_teal_accounts_esims_operations_and_config(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.configure_teal(completion_seconds="never", interim_polls=1)
    teal.submit("enable", [EID])

    simulator.reset()

    assert simulator.teal_operations() == []
    assert simulator.configure_teal() == {"completion_seconds": 0.0, "interim_polls": 0}
    assert_teal_error(teal.request("GET", f"/esims/{EID}"), 401, "UNAUTHORIZED")


# -- our client against the simulator ---------------------------------------------------------


def test_the_teal_processor_completes_a_change_through_102_answers(
    teal: Teal, simulator: SimulatorControl, settings: Any
) -> None:
    settings.BULKCHANGE_CONFIRM_SECONDS = 10
    simulator.configure_teal(completion_seconds=0.2, interim_polls=2)
    processor = TealProcessor(
        credentials=Credentials(
            integration_authentication_id=1,
            integration="TEAL",
            base_url=simulator.teal_base_url,
            account="Acme fleet",
            username=API_KEY,
            secret=API_SECRET,
        ),
        timeouts=(2, 5),
    )
    context = UpdateContext(
        device_change_id=1, bulk_change_id=1, iccid=ICCID, eid=EID, target_status="enabled"
    )

    assert processor.read_status(context) == "disabled"
    for step in processor.steps:
        result = processor.perform(step, context)
        context = dc_replace(context, progress=dc_replace(context.progress, **result.updates))

    assert processor.read_status(context) == "enabled"
    [operation] = simulator.teal_operations()
    assert operation["requestId"] == context.progress.carrier_request_id
    assert operation["status"] == "COMPLETED"
    assert operation["polls"] >= 3  # two 102s, then the answers after them
    assert simulator.call_count("teal", "enable", EID) == 1
