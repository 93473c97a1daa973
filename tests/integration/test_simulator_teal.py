"""The Teal simulator speaks docs/carriers/teal.md over real HTTP.

These tests are the simulator's specification: what a client sees on the wire (ApiKey/ApiSecret
headers, every operation asynchronous under the caller's requestId and callbackUrl, a real HTTP
102 interim answer followed by a final answer on the same connection, Teal's error body), the
callbacks it sends on completion, and what the ``/_sim`` control API lets a test arrange
(completion delay, callback method, per-EID errors, GENERIC_ERROR, operations whose result never
comes) and observe (operations, counters). What it does like every carrier's simulator (refused
credentials, the rate limit) is in test_simulator_common.py.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace as dc_replace
from typing import Any

import pytest
import requests

from integrations.base import Credentials, UpdateContext
from integrations.simulators.control import SimulatorControl, SimulatorControlError
from integrations.teal import TealClient, TealProcessor
from tests.conftest import wait_for
from tests.fixtures.callback_listener import CallbackListener
from tests.fixtures.simulator_http import Caller, assert_teal_error

API_KEY = "teal-key-acme"
API_SECRET = "teal-secret-Qv93xk"
OTHER_KEY = "teal-key-globex"
OTHER_SECRET = "teal-secret-globex"
EID = "89049032000000000000000000000001"
EID_2 = "89049032000000000000000000000002"
OTHER_ACCOUNT_EID = "89049032000000000000000000000099"
ICCID = "89148000000000000001"
NOBODY_LISTENS = "http://127.0.0.1:9/callbacks/?token=t0k"
LISTENER_PATH = "{}/carriers/teal/callbacks/7/"


class Teal(Caller):
    """A bare HTTP caller for Teal's API, as a client would hold it."""

    def submit(
        self,
        action: str,
        eids: list[str],
        request_id: str | None = None,
        callback_url: str = NOBODY_LISTENS,
        **kwargs: Any,
    ) -> requests.Response:
        params = {"requestId": request_id or uuid.uuid4().hex, "callbackUrl": callback_url}
        return self.post(f"/esims/{action}", params=params, json={"entries": eids}, **kwargs)

    def info(
        self, eid: str, request_id: str, callback_url: str = NOBODY_LISTENS
    ) -> requests.Response:
        params = {"eid": eid, "limit": 1, "requestId": request_id, "callbackUrl": callback_url}
        return self.get("/esims/info", params=params)

    def result(self, request_id: str) -> requests.Response:
        """operation-result on a connection of its own (the 102's final answer stays there)."""
        with self.fresh() as caller:
            return caller.get("/operation-result", params={"requestId": request_id})


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


def credentials(simulator: SimulatorControl, callback_url: str = NOBODY_LISTENS) -> Credentials:
    return Credentials(
        integration_authentication_id=7,
        integration="TEAL",
        base_url=simulator.teal_base_url,
        account="Acme fleet",
        username=API_KEY,
        secret=API_SECRET,
        callback_url=callback_url,
    )


# -- operations -----------------------------------------------------------------------------


def test_a_change_is_queued_at_once_and_its_result_is_200_with_entries_when_done(
    teal: Teal, simulator: SimulatorControl
) -> None:
    request_id = uuid.uuid4().hex
    accepted = teal.submit("enable", [EID], request_id)

    assert accepted.status_code == 200
    assert accepted.json() == {
        "success": True,
        "link": {
            "operationResult": {
                "href": f"{simulator.teal_base_url}/api/v1/operation-result?requestId={request_id}"
            }
        },
    }
    result = teal.result(request_id)
    assert result.status_code == 200
    assert result.json() == {
        "success": True,
        "entries": [{"eid": EID, "success": True, "errorMessage": None}],
    }
    assert simulator.teal_esim(EID)["status"] == "online"
    assert simulator.teal_esim(EID)["suspended"] is False


def test_disable_stops_and_suspends_an_online_esim(teal: Teal, simulator: SimulatorControl) -> None:
    teal.submit("disable", [EID_2])

    assert (simulator.teal_esim(EID_2)["status"], simulator.teal_esim(EID_2)["suspended"]) == (
        "stopped",
        True,
    )


def test_a_read_is_an_operation_too_and_its_entry_describes_the_esim(
    teal: Teal, simulator: SimulatorControl
) -> None:
    request_id = uuid.uuid4().hex
    assert teal.info(EID, request_id).json()["success"] is True
    [entry] = teal.result(request_id).json()["entries"]

    assert entry == {
        "eid": EID,
        "iccid": ICCID,
        "deviceStatus": "STOPPED",
        "active": False,
        "suspended": False,
        "planUuid": "plan-global-1gb",
        "planName": "global-1gb",
        "planChangeStatus": "SUCCESS",
    }
    [operation] = simulator.teal_operations()
    assert (operation["action"], operation["status"]) == ("info", "DONE")


def test_while_running_operation_result_is_a_real_102_then_a_final_answer_on_that_connection(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.configure_teal(completion_seconds=30, final_delay_seconds=0)
    request_id = uuid.uuid4().hex
    teal.submit("enable", [EID], request_id)
    host, port = simulator.teal_base_url.split("//")[1].split("/")[0].split(":")

    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(
            f"GET /teal/api/v1/operation-result?requestId={request_id} HTTP/1.1\r\n"
            f"Host: {host}\r\nApiKey: {API_KEY}\r\nApiSecret: {API_SECRET}\r\n\r\n".encode()
        )
        answer = b""
        while b'"entries":[]}' not in answer:
            chunk = connection.recv(4096)
            assert chunk, f"connection closed after {answer!r}"
            answer += chunk

    interim, final = answer.split(b"\r\n\r\n", 1)
    assert interim == b"HTTP/1.1 102 Processing"  # no headers, no body
    assert final.startswith(b"HTTP/1.1 200 OK\r\n")
    assert final.endswith(b'{"success":true,"entries":[]}')
    [operation] = simulator.teal_operations()
    assert (operation["status"], operation["interim_answers"]) == ("RUNNING", 1)


def test_a_client_that_keeps_the_connection_after_a_102_reads_the_stale_final_answer(
    teal: Teal, simulator: SimulatorControl
) -> None:
    """Why our client closes its pooled connections after a 102: the simulator makes a client
    that does not fail visibly."""
    simulator.configure_teal(completion_seconds=30, final_delay_seconds=0.3)
    request_id = uuid.uuid4().hex
    teal.submit("enable", [EID], request_id)
    careless = TealClient(credentials=credentials(simulator))
    careless.results_http.session.close = lambda: None  # type: ignore[method-assign]

    first = careless.operation_result(request_id=request_id)
    second = careless.operation_result(request_id=request_id)

    assert first.done is False
    assert (second.done, second.entries) == (True, ())  # the first request's final answer


def test_our_client_reads_every_102_as_running_and_then_the_real_result(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.configure_teal(completion_seconds=0.5, final_delay_seconds=0.3)
    request_id = uuid.uuid4().hex
    teal.submit("enable", [EID], request_id)
    client = TealClient(credentials=credentials(simulator))

    answers = [client.operation_result(request_id=request_id).done for _ in range(3)]
    last = wait_for(
        lambda: (result := client.operation_result(request_id=request_id)).done and result,
        timeout=5,
        interval=0.1,
        message="done",
    )

    assert answers == [False, False, False]
    assert last.entry_for(EID) is not None
    assert last.entry_for(EID).success  # not the stale final answers ("entries": [])


def test_never_keeps_operations_running_until_the_config_changes(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.configure_teal(completion_seconds="never", final_delay_seconds=0)
    request_id = uuid.uuid4().hex
    teal.submit("enable", [EID], request_id)
    assert teal.result(request_id).status_code == 102

    simulator.configure_teal(completion_seconds=0)

    assert teal.result(request_id).status_code == 200
    assert simulator.teal_esim(EID)["status"] == "online"


def test_a_request_id_used_again_starts_another_operation_and_is_counted(
    teal: Teal, simulator: SimulatorControl
) -> None:
    request_id = uuid.uuid4().hex
    teal.submit("enable", [EID], request_id)
    teal.submit("enable", [EID], request_id)

    [operation] = simulator.teal_operations()
    assert operation["submissions"] == 2  # Teal documents no de-duplication


def test_a_second_change_of_a_busy_esim_is_409_flow_restricted(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.configure_teal(completion_seconds=30)
    first = uuid.uuid4().hex
    teal.submit("enable", [EID], first)

    refused = teal.submit("disable", [EID])

    message = assert_teal_error(refused, 409, "FLOW_RESTRICTED_ERROR")
    assert message == f"eSIM {EID} has an operation in progress (requestId {first})"
    assert teal.info(EID, uuid.uuid4().hex).status_code == 200  # a read is never blocked


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"callbackUrl": NOBODY_LISTENS}, "requestId must be 32 alphanumeric characters, not ''"),
        (
            {"requestId": str(uuid.UUID(int=1)), "callbackUrl": NOBODY_LISTENS},
            "requestId must be 32 alphanumeric characters, not "
            "'00000000-0000-0000-0000-000000000001'",
        ),
        ({"requestId": "a" * 32}, "callbackUrl is required"),
        ({"requestId": "a" * 32, "callbackUrl": ""}, "callbackUrl is required"),
    ],
)
@pytest.mark.parametrize("call", ["enable", "info"])
def test_operations_without_a_valid_request_id_or_callback_url_are_400_validation_errors(
    teal: Teal, simulator: SimulatorControl, params: dict[str, str], message: str, call: str
) -> None:
    if call == "enable":
        response = teal.post("/esims/enable", params=params, json={"entries": [EID]})
    else:
        response = teal.get("/esims/info", params={"eid": EID, "limit": 1, **params})

    assert assert_teal_error(response, 400, "VALIDATION_ERROR") == message
    assert simulator.teal_operations() == []


@pytest.mark.parametrize("eid", [OTHER_ACCOUNT_EID, "89049032000000000000000000000404"])
def test_an_esim_of_another_account_or_none_is_404_esim_not_found(teal: Teal, eid: str) -> None:
    assert_teal_error(teal.submit("enable", [eid]), 404, "ESIM_NOT_FOUND")
    assert_teal_error(teal.info(eid, uuid.uuid4().hex), 404, "ESIM_NOT_FOUND")


def test_operation_result_of_an_unknown_or_other_accounts_request_id_is_404(
    teal: Teal, simulator: SimulatorControl
) -> None:
    theirs = uuid.uuid4().hex
    with Teal(teal.root, headers={"ApiKey": OTHER_KEY, "ApiSecret": OTHER_SECRET}) as other:
        other.submit("enable", [OTHER_ACCOUNT_EID], theirs)

    for request_id in (theirs, uuid.uuid4().hex):
        message = assert_teal_error(teal.result(request_id), 404, "VALIDATION_ERROR")
        assert message == f"No operation found for requestId {request_id}"
    assert_teal_error(teal.get("/operation-result"), 400, "VALIDATION_ERROR")


# -- injected errors --------------------------------------------------------------------------


def test_an_injected_entry_error_fails_only_that_eids_entry(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.set_teal_errors(EID, entry_error="Profile is locked")
    request_id = uuid.uuid4().hex
    teal.submit("enable", [EID, EID_2], request_id)

    assert teal.result(request_id).json() == {
        "success": True,
        "entries": [
            {"eid": EID, "success": False, "errorMessage": "Profile is locked"},
            {"eid": EID_2, "success": True, "errorMessage": None},
        ],
    }
    assert simulator.teal_esim(EID)["status"] == "stopped"


def test_an_injected_operation_error_fails_the_operation_with_its_message(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.set_teal_errors(EID, operation_error="Upstream MNO timeout")
    request_id = uuid.uuid4().hex
    teal.submit("enable", [EID], request_id)

    assert teal.result(request_id).json() == {
        "success": False,
        "message": "Upstream MNO timeout",
        "entries": [{"eid": EID, "success": False, "errorMessage": "Upstream MNO timeout"}],
    }


def test_generic_errors_answer_the_next_calls_naming_the_esim_with_the_given_status(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.set_teal_errors(EID, generic_errors=2, generic_error_status=400)

    first, second, third = (teal.submit("enable", [EID]) for _ in range(3))

    for refused in (first, second):
        message = assert_teal_error(refused, 400, "GENERIC_ERROR")
        assert message == "An unexpected error occurred; please retry"
    assert third.status_code == 200


@pytest.mark.parametrize(("stuck", "state"), [("applied", "online"), ("unapplied", "stopped")])
def test_a_stuck_esims_changes_never_report_a_result(
    teal: Teal, simulator: SimulatorControl, stuck: str, state: str
) -> None:
    simulator.configure_teal(final_delay_seconds=0)
    simulator.set_teal_errors(EID, stuck=stuck)
    request_id = uuid.uuid4().hex
    teal.submit("enable", [EID], request_id)

    assert teal.result(request_id).status_code == 102
    assert simulator.teal_esim(EID)["status"] == state
    [operation] = simulator.teal_operations()
    assert operation["status"] == "STUCK"
    read = uuid.uuid4().hex
    teal.info(EID, read)
    assert teal.result(read).status_code == 200  # reads still complete


def test_a_503_fault_on_one_eids_submit_creates_no_operation(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.add_fault("teal", "enable", key=EID, status=503)

    refused = teal.submit("enable", [EID])

    assert_teal_error(refused, 503, "GENERIC_ERROR")
    assert simulator.teal_operations() == []
    assert simulator.call_count("teal", "enable", EID) == 1


# -- callbacks --------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "body"), [("GET", b""), ("POST", b'{"requestId": "%s"}')])
def test_on_completion_teal_calls_the_callback_url_with_the_request_id_appended(
    teal: Teal,
    simulator: SimulatorControl,
    callback_listener: CallbackListener,
    method: str,
    body: bytes,
) -> None:
    simulator.configure_teal(completion_seconds=0.2, callback_method=method)
    request_id = uuid.uuid4().hex
    teal.submit(
        "enable",
        [EID],
        request_id,
        callback_url=LISTENER_PATH.format(callback_listener.origin) + "?token=s3cr3t",
    )

    wait_for(callback_listener.requests, timeout=5, message="the callback")

    assert callback_listener.requests() == [
        (
            method,
            f"/carriers/teal/callbacks/7/?token=s3cr3t&requestId={request_id}",
            body.replace(b"%s", request_id.encode()) if body else b"",
        )
    ]
    [operation] = wait_for(
        lambda: [op for op in simulator.teal_operations() if op["callback"]],
        timeout=5,
        message="the callback recorded",
    )
    assert operation["callback"] == {
        "method": method,
        "url": LISTENER_PATH.format(callback_listener.origin)
        + f"?token=[REDACTED]&requestId={request_id}",
        "sent": True,
        "status": 200,
    }


def test_reads_are_signalled_too_and_a_url_without_a_query_gets_one(
    teal: Teal, simulator: SimulatorControl, callback_listener: CallbackListener
) -> None:
    request_id = uuid.uuid4().hex
    teal.info(EID, request_id, callback_url=LISTENER_PATH.format(callback_listener.origin))

    wait_for(callback_listener.requests, timeout=5, message="the callback")

    assert (
        callback_listener.requests()[0][1] == f"/carriers/teal/callbacks/7/?requestId={request_id}"
    )


@pytest.mark.parametrize(
    ("callback_url", "error"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/teal", "not a loopback address"),
        ("http://127.0.0.1:9/closed", "Connection refused"),
    ],
)
def test_a_callback_that_cannot_be_delivered_is_recorded_as_not_sent(
    teal: Teal, simulator: SimulatorControl, callback_url: str, error: str
) -> None:
    teal.submit("enable", [EID], callback_url=callback_url)

    [operation] = wait_for(
        lambda: [op for op in simulator.teal_operations() if op["callback"]],
        timeout=5,
        message="the callback recorded",
    )
    assert operation["callback"]["sent"] is False
    assert error in operation["callback"]["error"]


def test_callbacks_can_be_switched_off(
    teal: Teal, simulator: SimulatorControl, callback_listener: CallbackListener
) -> None:
    simulator.configure_teal(callbacks=False)
    teal.submit("enable", [EID], callback_url=LISTENER_PATH.format(callback_listener.origin))

    [operation] = wait_for(
        lambda: [op for op in simulator.teal_operations() if op["callback"]],
        timeout=5,
        message="the callback recorded",
    )
    assert operation["callback"] == {"sent": False, "error": "callbacks are switched off"}
    assert callback_listener.requests() == []


# -- admin --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"completion_seconds": -1},
        {"completion_seconds": "soon"},
        {"callback_method": "PUT"},
        {"callbacks": "yes"},
        {"final_delay_seconds": -0.1},
    ],
)
def test_invalid_teal_config_is_refused(simulator: SimulatorControl, config: Any) -> None:
    with pytest.raises(SimulatorControlError):
        simulator._call("POST", "/_sim/teal/config", config)


def test_seeding_an_esim_in_an_unknown_state_or_for_no_account_is_refused(
    teal: Teal, simulator: SimulatorControl
) -> None:
    with pytest.raises(SimulatorControlError, match="status must be one of"):
        simulator.seed_teal_esims(
            api_key=API_KEY, esims=[{"eid": "x", "iccid": "y", "status": "on"}]
        )
    with pytest.raises(SimulatorControlError, match="no Teal account"):
        simulator.seed_teal_esims(api_key="nobody", esims=[{"eid": "x", "iccid": "y"}])


def test_reset_forgets_teal_accounts_esims_operations_and_config(
    teal: Teal, simulator: SimulatorControl
) -> None:
    simulator.configure_teal(completion_seconds=5, callback_method="POST")
    teal.submit("enable", [EID])

    simulator.reset()

    assert simulator.teal_operations() == []
    assert simulator.configure_teal() == {
        "completion_seconds": 0.0,
        "callback_method": "GET",
        "callbacks": True,
        "final_delay_seconds": 0.05,
    }
    assert_teal_error(teal.info(EID, uuid.uuid4().hex), 401, "UNAUTHORIZED")


# -- our client against the simulator ---------------------------------------------------------


def test_the_teal_processor_reads_and_completes_a_change_through_real_102s(
    teal: Teal, simulator: SimulatorControl, settings: Any
) -> None:
    settings.BULKCHANGE_CONFIRM_SECONDS = 10
    simulator.configure_teal(completion_seconds=0.6, final_delay_seconds=0.1)
    processor = TealProcessor(credentials=credentials(simulator), timeouts=(2, 5))
    context = UpdateContext(
        device_change_id=1, bulk_change_id=1, iccid=ICCID, eid=EID, target_status="enabled"
    )

    assert processor.read_status(context) == "disabled"
    for step in processor.steps:
        result = processor.perform(step, context)
        context = dc_replace(context, progress=dc_replace(context.progress, **result.updates))

    assert processor.read_status(context) == "enabled"
    change = [op for op in simulator.teal_operations() if op["action"] == "enable"]
    [operation] = change
    assert operation["requestId"] == context.progress.carrier_request_id
    assert operation["status"] == "DONE"
    assert operation["interim_answers"] >= 2
    assert simulator.call_count("teal", "enable", EID) == 1
