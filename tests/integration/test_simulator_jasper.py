"""The Jasper simulator speaks docs/carriers/jasper.md over real HTTP.

These tests are its specification: what a client sees on the wire (Basic auth, the device read,
the status PUT and its echo, Jasper's error bodies, transitions) and what the
``/_sim`` control API lets a test arrange (accounts, devices, unconfirmed answers and changes
reads show late, 40000029, the wrong-echo fault) and observe (counters per op and ICCID, the
request log). What it does like every carrier's simulator
(refused credentials, HTML faults, the rate limit) is in test_simulator_common.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any, Self

import pytest
import requests

from integrations.simulators.control import SimulatorControl, SimulatorControlError
from tests.fixtures.simulator_http import Caller, assert_jasper_error

USERNAME = "ops-api"
API_KEY = "jasper-sim-key-3d9f"
ICCID = "89011704278000000001"
SECOND = "89011704278000000002"
SETTABLE = ["ACTIVATED", "DEACTIVATED", "ACTIVATION_READY", "TEST_READY", "INVENTORY", "RETIRED"]
DATE_UPDATED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+0000$")


class Jasper(Caller):
    """A bare HTTP caller for ``{base_url}/rws/api/v1``, as a client would hold it."""

    @classmethod
    def at(cls, simulator: SimulatorControl, auth: tuple[str, str]) -> Self:
        return cls(simulator.jasper_base_url + "/rws/api/v1", {"Accept": "application/json"}, auth)

    def read(self, iccid: str, **kwargs: Any) -> requests.Response:
        return self.get(f"/devices/{iccid}", **kwargs)

    def change(self, iccid: str, **kwargs: Any) -> requests.Response:
        return self.request("PUT", f"/devices/{iccid}", **kwargs)


@pytest.fixture
def jasper(simulator: SimulatorControl) -> Iterator[Jasper]:
    simulator.add_jasper_account(username=USERNAME, api_key=API_KEY)
    simulator.seed_jasper_devices(
        username=USERNAME,
        devices=[
            {
                "iccid": ICCID,
                "status": "ACTIVATED",
                "imsi": "310170000000001",
                "msisdn": "15550000001",
                "ratePlan": "IoT 5MB",
                "communicationPlan": "Data + SMS",
            },
            {"iccid": SECOND, "status": "ACTIVATION_READY"},
        ],
    )
    with Jasper.at(simulator, (USERNAME, API_KEY)) as carrier:
        yield carrier


# -- the contract --------------------------------------------------------------------------


def test_get_device_shows_the_device_as_jasper_does(jasper: Jasper) -> None:
    response = jasper.read(ICCID)

    assert response.status_code == 200
    body = response.json()
    assert DATE_UPDATED.match(body.pop("dateUpdated"))
    assert body == {
        "iccid": ICCID,
        "imsi": "310170000000001",
        "msisdn": "15550000001",
        "status": "ACTIVATED",
        "ratePlan": "IoT 5MB",
        "communicationPlan": "Data + SMS",
    }


def test_put_status_echoes_the_iccid_and_changes_the_device(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    before = jasper.read(ICCID).json()["dateUpdated"]
    time.sleep(0.002)  # dateUpdated has millisecond resolution

    response = jasper.change(ICCID, json={"status": "DEACTIVATED"})

    assert (response.status_code, response.json()) == (200, {"iccid": ICCID})
    after = jasper.read(ICCID).json()
    assert after["status"] == "DEACTIVATED"
    assert after["dateUpdated"] > before
    device = simulator.jasper_device(ICCID)
    assert (device["status"], device["username"]) == ("DEACTIVATED", USERNAME)
    assert simulator.jasper_device(SECOND)["status"] == "ACTIVATION_READY"


@pytest.mark.parametrize("target", SETTABLE)
def test_every_settable_status_can_be_set_from_inventory(
    jasper: Jasper, simulator: SimulatorControl, target: str
) -> None:
    simulator.seed_jasper_devices(
        username=USERNAME, devices=[{"iccid": ICCID, "status": "INVENTORY"}]
    )

    response = jasper.change(ICCID, json={"status": target})

    assert (response.status_code, response.json()) == (200, {"iccid": ICCID})
    assert jasper.read(ICCID).json()["status"] == target


@pytest.mark.parametrize("status", ["ACTIVATION_READY", "DEACTIVATED", "INVENTORY", "RETIRED"])
def test_setting_the_status_a_device_already_has_is_accepted(
    jasper: Jasper, simulator: SimulatorControl, status: str
) -> None:
    simulator.seed_jasper_devices(username=USERNAME, devices=[{"iccid": ICCID, "status": status}])

    response = jasper.change(ICCID, json={"status": status})

    assert (response.status_code, response.json()) == (200, {"iccid": ICCID})


def test_unknown_iccid_is_404_invalid_iccid(jasper: Jasper) -> None:
    for response in (
        jasper.read("89000000000000000000"),
        jasper.change("89000000000000000000", json={"status": "DEACTIVATED"}),
    ):
        message = assert_jasper_error(response, 404, "20000001")
        assert message == "Resource not found - Invalid ICCID"


def test_a_device_of_another_account_is_404(jasper: Jasper, simulator: SimulatorControl) -> None:
    simulator.add_jasper_account(username="other", api_key="other-key")

    with Jasper.at(simulator, ("other", "other-key")) as other:
        response = other.read(ICCID)

    assert_jasper_error(response, 404, "20000001")


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["ACTIVATED", "DEACTIVATED", "INVENTORY", "TEST_READY"])
def test_transitions_out_of_retired_are_refused_400_invalid_status_change(
    jasper: Jasper, simulator: SimulatorControl, target: str
) -> None:
    assert jasper.change(ICCID, json={"status": "RETIRED"}).status_code == 200

    response = jasper.change(ICCID, json={"status": target})

    assert assert_jasper_error(response, 400, "10000024") == "Invalid status change"
    assert simulator.jasper_device(ICCID)["status"] == "RETIRED"
    assert jasper.change(ICCID, json={"status": "RETIRED"}).status_code == 200


@pytest.mark.parametrize("final", ["PURGED", "REPLACED"])
def test_purged_and_replaced_devices_are_final_too(
    jasper: Jasper, simulator: SimulatorControl, final: str
) -> None:
    simulator.seed_jasper_devices(username=USERNAME, devices=[{"iccid": ICCID, "status": final}])

    response = jasper.change(ICCID, json={"status": "ACTIVATED"})

    assert assert_jasper_error(response, 400, "10000024") == "Invalid status change"
    assert jasper.read(ICCID).json()["status"] == final


def test_activating_an_activated_sim_is_refused_400_10030000(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    response = jasper.change(ICCID, json={"status": "ACTIVATED"})

    message = assert_jasper_error(response, 400, "10030000")
    assert message == "Cannot activate a SIM which is already activated"
    assert simulator.jasper_device(ICCID)["status"] == "ACTIVATED"


@pytest.mark.parametrize("target", ["ACTIVATION_READY", "TEST_READY"])
def test_an_activated_sim_cannot_go_back_to_pre_activation_400_10000029(
    jasper: Jasper, simulator: SimulatorControl, target: str
) -> None:
    response = jasper.change(ICCID, json={"status": target})

    message = assert_jasper_error(response, 400, "10000029")
    assert message == "This SIM may not be moved back to a Pre Activation status"
    assert simulator.jasper_device(ICCID)["status"] == "ACTIVATED"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        pytest.param({"status": "PURGED"}, "status must be one of", id="purged-is-read-only"),
        pytest.param({"status": "REPLACED"}, "status must be one of", id="replaced-is-read-only"),
        pytest.param({"status": "activated"}, "status must be one of", id="lower-case"),
        pytest.param({}, "status is required", id="missing"),
        pytest.param({"status": None}, "status is required", id="null"),
        pytest.param(
            {"status": "DEACTIVATED", "ratePlan": "x"}, "Unsupported device field", id="extra"
        ),
    ],
)
def test_a_put_without_exactly_one_settable_status_is_400(
    jasper: Jasper, simulator: SimulatorControl, body: dict[str, Any], words: str
) -> None:
    response = jasper.change(ICCID, json=body)

    assert words in assert_jasper_error(response, 400, "10000024")
    assert simulator.jasper_device(ICCID)["status"] == "ACTIVATED"


def test_a_put_with_malformed_json_is_400(jasper: Jasper) -> None:
    response = jasper.change(ICCID, data=b"{not json", headers={"Content-Type": "application/json"})

    assert "not valid JSON" in assert_jasper_error(response, 400, "10000024")


def test_other_methods_are_405_with_a_jasper_body(jasper: Jasper) -> None:
    response = jasper.request("DELETE", f"/devices/{ICCID}")

    assert_jasper_error(response, 405, "40500000")


# -- the wrong-echo fault ------------------------------------------------------------------


def test_wrong_echo_answers_200_with_another_iccid_and_leaves_the_device_alone(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    arranged = simulator.jasper_wrong_echo(iccid=ICCID, echo=SECOND)

    first = jasper.change(ICCID, json={"status": "DEACTIVATED"})
    second = jasper.change(ICCID, json={"status": "DEACTIVATED"})
    other = jasper.change(SECOND, json={"status": "ACTIVATED"})

    assert arranged == {"iccid": ICCID, "echo": SECOND, "times": -1}
    assert (first.status_code, first.json()) == (200, {"iccid": SECOND})
    assert second.json() == {"iccid": SECOND}
    assert other.json() == {"iccid": SECOND}
    assert simulator.jasper_device(ICCID)["status"] == "ACTIVATED"
    assert simulator.jasper_device(SECOND)["status"] == "ACTIVATED"
    assert jasper.read(ICCID).json()["iccid"] == ICCID  # reads are unaffected


def test_wrong_echo_defaults_to_a_neighbouring_iccid_and_can_be_limited(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    arranged = simulator.jasper_wrong_echo(iccid=ICCID, times=1)

    echoes = [jasper.change(ICCID, json={"status": "INVENTORY"}).json()["iccid"] for _ in range(2)]

    assert arranged["echo"] == "89011704278000000002"
    assert echoes == ["89011704278000000002", ICCID]
    assert simulator.jasper_device(ICCID)["status"] == "INVENTORY"


def test_wrong_echo_still_checks_credentials_and_the_body(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    simulator.jasper_wrong_echo(iccid=ICCID)

    assert jasper.change(ICCID, auth=(USERNAME, "x"), json={"status": "RETIRED"}).status_code == 401
    assert jasper.change(ICCID, json={"status": "PURGED"}).status_code == 400


@pytest.mark.parametrize(
    "arrangement",
    [
        pytest.param({"echo": ICCID}, id="echo-is-the-iccid"),
        pytest.param({"echo": ""}, id="empty-echo"),
        pytest.param({"times": 0}, id="zero-times"),
    ],
)
def test_a_wrong_echo_that_cannot_be_honoured_is_refused(
    simulator: SimulatorControl, arrangement: dict[str, Any]
) -> None:
    with pytest.raises(SimulatorControlError, match="400"):
        simulator.jasper_wrong_echo(iccid=ICCID, **arrangement)


# -- unconfirmed answers: 202, no echo, a change reads do not show yet ----------------------


@pytest.mark.parametrize(
    ("answer", "status", "body"),
    [
        pytest.param("accepted", 202, {"iccid": ICCID}, id="accepted"),
        pytest.param("accepted-empty", 202, None, id="accepted-empty"),
        pytest.param("no-echo", 200, {}, id="no-echo"),
        pytest.param("empty", 200, None, id="empty"),
    ],
)
def test_an_unconfirmed_answer_is_as_arranged_and_the_first_read_shows_the_change(
    jasper: Jasper,
    simulator: SimulatorControl,
    answer: str,
    status: int,
    body: dict[str, str] | None,
) -> None:
    arranged = simulator.jasper_unconfirmed(iccid=ICCID, answer=answer)

    response = jasper.change(ICCID, json={"status": "DEACTIVATED"})

    assert arranged == {"iccid": ICCID, "answer": answer, "reads": 0, "seconds": 0, "times": -1}
    assert response.status_code == status
    assert (response.json() if response.content else None) == body
    assert simulator.jasper_device(ICCID)["pending"] == {"status": "DEACTIVATED", "reads_left": 0}
    assert jasper.read(ICCID).json()["status"] == "DEACTIVATED"
    assert simulator.jasper_device(ICCID)["pending"] is None


def test_a_pending_change_shows_after_the_arranged_number_of_reads(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    simulator.jasper_unconfirmed(iccid=ICCID, reads=2)
    jasper.change(ICCID, json={"status": "DEACTIVATED"})

    shown = [jasper.read(ICCID).json()["status"] for _ in range(4)]

    assert shown == ["ACTIVATED", "ACTIVATED", "DEACTIVATED", "DEACTIVATED"]
    assert simulator.jasper_device(SECOND)["status"] == "ACTIVATION_READY"


def test_a_pending_change_shows_only_once_its_seconds_have_passed(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    simulator.jasper_unconfirmed(iccid=ICCID, seconds=0.3)
    jasper.change(ICCID, json={"status": "RETIRED"})

    assert jasper.read(ICCID).json()["status"] == "ACTIVATED"
    time.sleep(0.3)
    assert jasper.read(ICCID).json()["status"] == "RETIRED"


def test_a_change_arranged_never_to_show_shows_once_settled(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    simulator.jasper_unconfirmed(iccid=ICCID, reads=None)
    jasper.change(ICCID, json={"status": "INVENTORY"})

    shown = [jasper.read(ICCID).json()["status"] for _ in range(3)]
    pending = simulator.jasper_device(ICCID)["pending"]
    settled = simulator.jasper_settle(ICCID)

    assert shown == ["ACTIVATED"] * 3
    assert pending == {"status": "INVENTORY", "reads_left": None}
    assert settled["status"] == "INVENTORY"
    assert jasper.read(ICCID).json()["status"] == "INVENTORY"


def test_unconfirmed_answers_can_be_limited_and_a_confirmed_put_supersedes_a_pending_one(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    simulator.jasper_unconfirmed(iccid=ICCID, reads=None, times=1)

    first = jasper.change(ICCID, json={"status": "INVENTORY"})
    second = jasper.change(ICCID, json={"status": "DEACTIVATED"})

    assert (first.status_code, second.status_code) == (202, 200)
    assert simulator.jasper_device(ICCID)["pending"] is None
    assert jasper.read(ICCID).json()["status"] == "DEACTIVATED"


def test_an_unconfirmed_put_is_still_checked_before_it_is_accepted(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    simulator.jasper_unconfirmed(iccid=ICCID)

    refused = jasper.change(ICCID, json={"status": "TEST_READY"})

    assert_jasper_error(refused, 400, "10000029")
    assert simulator.jasper_device(ICCID)["pending"] is None


@pytest.mark.parametrize(
    "arrangement",
    [
        pytest.param({"answer": "maybe"}, id="unknown-answer"),
        pytest.param({"reads": -1}, id="negative-reads"),
        pytest.param({"seconds": -1}, id="negative-seconds"),
        pytest.param({"times": 0}, id="zero-times"),
    ],
)
def test_an_unconfirmed_arrangement_that_cannot_be_honoured_is_refused(
    simulator: SimulatorControl, arrangement: dict[str, Any]
) -> None:
    with pytest.raises(SimulatorControlError, match="400"):
        simulator.jasper_unconfirmed(iccid=ICCID, **arrangement)


# -- 40000029, the calls-per-second limit --------------------------------------------------


@pytest.mark.parametrize("status", [400, 429])
def test_a_tariff_limit_answers_40000029_with_the_arranged_status_then_calls_pass(
    jasper: Jasper, simulator: SimulatorControl, status: int
) -> None:
    simulator.jasper_tariff_limit(iccid=ICCID, status=status, retry_after=2)

    limited = jasper.change(ICCID, json={"status": "DEACTIVATED"})
    passed = jasper.change(ICCID, json={"status": "DEACTIVATED"})

    assert assert_jasper_error(limited, status, "40000029") == "Exceeding Tariff limits"
    assert limited.headers["Retry-After"] == "2"
    assert passed.status_code == 200
    assert simulator.call_count("jasper", "update_device", ICCID) == 2


def test_a_tariff_limit_on_reads_leaves_puts_alone(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    simulator.jasper_tariff_limit(op="get_device", status=400, times=2)

    reads = [jasper.read(ICCID).status_code for _ in range(3)]
    put = jasper.change(SECOND, json={"status": "ACTIVATED"})

    assert reads == [400, 400, 200]
    assert "Retry-After" not in jasper.read(SECOND).headers
    assert put.status_code == 200


@pytest.mark.parametrize(
    "arrangement",
    [
        pytest.param({"status": 503}, id="not-400-or-429"),
        pytest.param({"op": "delete_device"}, id="unknown-op"),
    ],
)
def test_a_tariff_limit_that_cannot_be_honoured_is_refused(
    simulator: SimulatorControl, arrangement: dict[str, Any]
) -> None:
    with pytest.raises(SimulatorControlError, match="400"):
        simulator.jasper_tariff_limit(**arrangement)


# -- generic faults ------------------------------------------------------------------------


def test_status_fault_answers_with_jasper_error_body_and_retry_after(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    simulator.add_fault("jasper", "update_device", key=ICCID, status=503, retry_after=30)
    simulator.add_fault("jasper", "update_device", key=ICCID, status=429, retry_after=7)

    unavailable = jasper.change(ICCID, json={"status": "DEACTIVATED"})
    limited = jasper.change(ICCID, json={"status": "DEACTIVATED"})

    assert assert_jasper_error(unavailable, 503, "50300000").startswith("Simulated fault: 503")
    assert unavailable.headers["Retry-After"] == "30"
    assert assert_jasper_error(limited, 429, "40000029") == "Exceeding Tariff limits"
    assert limited.headers["Retry-After"] == "7"
    assert simulator.jasper_device(ICCID)["status"] == "ACTIVATED"


# -- observation ---------------------------------------------------------------------------


def test_calls_are_counted_per_op_and_iccid_including_refused_ones(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    simulator.add_fault("jasper", "update_device", key=ICCID, status=503)

    jasper.read(ICCID)
    jasper.change(ICCID, json={"status": "DEACTIVATED"})
    jasper.change(ICCID, json={"status": "DEACTIVATED"})
    jasper.change(SECOND, auth=(USERNAME, "wrong"), json={"status": "DEACTIVATED"})

    assert simulator.calls()["jasper"] == {
        "get_device": {ICCID: 1},
        "update_device": {ICCID: 2, SECOND: 1},
    }
    assert simulator.call_count("jasper", "update_device", ICCID) == 2
    assert simulator.call_count("jasper") == 4


def test_request_log_shows_what_the_client_sent_without_the_key(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    jasper.change(
        ICCID,
        json={"status": "DEACTIVATED"},
        headers={"Idempotency-Key": "pondops-7-submit"},
    )

    (entry,) = simulator.requests(carrier="jasper")
    assert (entry["method"], entry["op"], entry["key"]) == ("PUT", "update_device", ICCID)
    assert entry["carrier_path"] == f"/rws/api/v1/devices/{ICCID}"
    assert entry["body"] == {"status": "DEACTIVATED"}
    assert entry["idempotency_key"] == "pondops-7-submit"
    assert entry["status"] == 200
    assert entry["headers"]["authorization"] == "[redacted]"
    assert API_KEY not in str(entry)


# -- seeding and reset ---------------------------------------------------------------------


def test_seeding_refuses_an_unknown_status_and_stores_nothing(
    simulator: SimulatorControl,
) -> None:
    with pytest.raises(SimulatorControlError, match="status must be one of"):
        simulator.seed_jasper_devices(
            username=USERNAME,
            devices=[{"iccid": "8901"}, {"iccid": "8902", "status": "SUSPENDED"}],
        )

    with pytest.raises(SimulatorControlError, match="404"):
        simulator.jasper_device("8901")


def test_seeded_devices_default_to_activated(simulator: SimulatorControl) -> None:
    assert simulator.seed_jasper_devices(username=USERNAME, devices=[{"iccid": "8901"}]) == 1

    assert simulator.jasper_device("8901")["status"] == "ACTIVATED"


def test_reset_forgets_jasper_accounts_devices_and_knobs(
    jasper: Jasper, simulator: SimulatorControl
) -> None:
    simulator.jasper_wrong_echo(iccid=ICCID)
    simulator.jasper_unconfirmed(iccid=ICCID)
    simulator.jasper_tariff_limit(iccid=ICCID, times=-1)
    jasper.read(ICCID)

    simulator.reset()

    assert simulator.calls()["jasper"] == {}
    with pytest.raises(SimulatorControlError, match="404"):
        simulator.jasper_device(ICCID)
    assert jasper.read(ICCID).status_code == 401
    simulator.add_jasper_account(username=USERNAME, api_key=API_KEY)
    simulator.seed_jasper_devices(username=USERNAME, devices=[{"iccid": ICCID}])
    assert jasper.change(ICCID, json={"status": "INVENTORY"}).json() == {"iccid": ICCID}
