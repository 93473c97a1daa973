"""The carrier simulators speak the POND and Rev.io contracts over real HTTP.

These tests are the simulators' specification: what a client sees on the wire, and what the
``/_sim`` control API lets a test arrange and observe. What every carrier's simulator does alike
(refused credentials, fault headers, HTML faults, rate limits) is in test_simulator_common.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from integrations.simulators import NonLoopbackHostError, SimulatorServer
from integrations.simulators.control import SimulatorControl, SimulatorControlError
from tests.conftest import wait_for
from tests.fixtures.simulator_http import Caller, assert_pond_error

DISTRIBUTOR = "1234"
API_KEY = "pond-test-key"
ICCID = "89148000000000000001"
PACKAGE_ID = "6f1c2e0a-3b1d-4c47-9a55-1f0e8d2b7c10"
CLIENT_CODE = "acme"
REV_USER = "api@pondops"  # contains an '@': the client code follows the last one
REV_PASSWORD = "rev-test-password"
CUSTOMER_ID = 42
SERVICE_FIELDS = ("sim_data_service_status", "sim_voice_service_status", "sim_sms_service_status")
REPO_ROOT = Path(__file__).resolve().parents[2]


def services(status: str) -> dict[str, str]:
    return dict.fromkeys(SERVICE_FIELDS, status)


@pytest.fixture
def pond(simulator: SimulatorControl) -> Iterator[Caller]:
    simulator.add_pond_account(distributor_id=DISTRIBUTOR, api_key=API_KEY)
    simulator.seed_pond_sims(
        distributor_id=DISTRIBUTOR,
        sims=[
            {
                "iccid": ICCID,
                "services": "ENABLED",
                "packages": [{"package_id": PACKAGE_ID, "status": "ACTIVE", "package_type_id": 12}],
            }
        ],
    )
    with Caller(
        f"{simulator.pond_base_url}/{DISTRIBUTOR}",
        headers={"x-api-key": API_KEY, "Accept": "application/json"},
    ) as carrier:
        yield carrier


@pytest.fixture
def rev(simulator: SimulatorControl) -> Iterator[Caller]:
    simulator.add_rev_account(client_code=CLIENT_CODE, username=REV_USER, password=REV_PASSWORD)
    simulator.add_rev_customers(client_code=CLIENT_CODE, customer_ids=[CUSTOMER_ID])
    with Caller(
        simulator.rev_base_url,
        headers={"Accept": "application/json"},
        auth=(f"{REV_USER}@{CLIENT_CODE}", REV_PASSWORD),
    ) as carrier:
        yield carrier


# -- authentication ------------------------------------------------------------------------


def test_pond_unknown_distributor_is_401(pond: Caller, simulator: SimulatorControl) -> None:
    response = pond.session.get(
        f"{simulator.pond_base_url}/9999/sim/{ICCID}/status", headers=pond.headers, timeout=5
    )

    assert_pond_error(response, 401, 40101)


def test_rev_wrong_password_is_401_with_rev_error_body(rev: Caller) -> None:
    response = rev.get("/v1/Services", auth=(f"{REV_USER}@{CLIENT_CODE}", "wrong"))

    assert response.status_code == 401
    assert response.json()["ok"] is False
    assert "wrong" not in response.text


def test_rev_credentials_without_client_code_are_401(rev: Caller) -> None:
    assert rev.get("/v1/Services", auth=(REV_USER, REV_PASSWORD)).status_code == 401
    assert rev.get("/v1/Services", auth=None).status_code == 401


# -- POND contract -------------------------------------------------------------------------


def package(package_id: str = PACKAGE_ID, status: str = "ACTIVE") -> dict[str, Any]:
    """A package as POND lists it (Telna's ResponsePackage)."""
    return {
        "package_id": package_id,
        "sim_iccid": ICCID,
        "status": status,
        "package_type_id": 12,
        "date_created": 1_700_000_000,
        "date_activated": 1_700_000_100,
        "date_expiry": 1_702_592_100,
    }


def sim_read(value: str, *, status: str, status_of_sim: str = "In-Service") -> dict[str, str]:
    return {**services(value), "status_of_sim": status_of_sim, "status": status}


def test_pond_status_update_happy_path_is_visible_through_sim_api(
    pond: Caller, simulator: SimulatorControl
) -> None:
    read = pond.get(f"/sim/{ICCID}/status")
    assert read.status_code == 200
    assert read.json() == sim_read("ENABLED", status="ACTIVE")

    step_1 = pond.post(f"/sim/{ICCID}/status", json=services("DISABLED"))
    assert (step_1.status_code, step_1.content) == (204, b"")

    packages = pond.get(f"/sim/{ICCID}/package/infos", params={"offset": 0, "count": 100})
    assert packages.json() == {"total": 1, "offset": 0, "count": 100, "elements": [package()]}

    step_2 = pond.post(f"/package/{PACKAGE_ID}/status", json={"package_status": "NOT_ACTIVE"})
    assert (step_2.status_code, step_2.content) == (204, b"")

    assert pond.get(f"/sim/{ICCID}/status").json() == sim_read("DISABLED", status="SUSPENDED")
    assert simulator.pond_sim(ICCID) == {
        "iccid": ICCID,
        "distributor_id": DISTRIBUTOR,
        **sim_read("DISABLED", status="SUSPENDED"),
        "packages": [package(status="NOT_ACTIVE")],
    }


def test_each_service_field_is_optional_on_the_sim_write(
    pond: Caller, simulator: SimulatorControl
) -> None:
    response = pond.post(f"/sim/{ICCID}/status", json={"sim_sms_service_status": "DISABLED"})

    assert response.status_code == 204
    sim = simulator.pond_sim(ICCID)
    assert [sim[name] for name in SERVICE_FIELDS] == ["ENABLED", "ENABLED", "DISABLED"]


def test_package_list_pages_with_offset_and_count_defaulting_to_ten(
    pond: Caller, simulator: SimulatorControl
) -> None:
    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(12)]
    simulator.seed_pond_sims(
        distributor_id=DISTRIBUTOR,
        sims=[{"iccid": ICCID, "packages": [{"package_id": i} for i in ids]}],
    )

    first = pond.get(f"/sim/{ICCID}/package/infos").json()
    second = pond.get(f"/sim/{ICCID}/package/infos", params={"offset": 10, "count": 10}).json()
    beyond = pond.get(f"/sim/{ICCID}/package/infos", params={"offset": 12}).json()

    assert (first["total"], first["offset"], first["count"]) == (12, 0, 10)
    assert [p["package_id"] for p in first["elements"]] == ids[:10]
    assert (second["offset"], [p["package_id"] for p in second["elements"]]) == (10, ids[10:])
    assert (beyond["total"], beyond["elements"]) == (12, [])


def test_max_page_size_caps_every_page_and_the_answer_says_so(
    pond: Caller, simulator: SimulatorControl
) -> None:
    simulator.seed_pond_sims(
        distributor_id=DISTRIBUTOR, sims=[{"iccid": ICCID, "packages": [{}, {}, {}]}]
    )
    simulator.set_pond_page_size(2)

    page = pond.get(f"/sim/{ICCID}/package/infos", params={"offset": 0, "count": 100}).json()

    assert (page["total"], page["count"], len(page["elements"])) == (3, 2, 2)
    simulator.set_pond_page_size(None)
    assert (
        len(pond.get(f"/sim/{ICCID}/package/infos", params={"count": 100}).json()["elements"]) == 3
    )


@pytest.mark.parametrize("query", [{"offset": -1}, {"count": 0}, {"count": "ten"}])
def test_bad_paging_parameters_are_400(pond: Caller, query: dict[str, Any]) -> None:
    assert_pond_error(pond.get(f"/sim/{ICCID}/package/infos", params=query), 400, 40001)


def test_seeded_sim_without_packages_gets_one_uuid_package_matching_its_state(
    simulator: SimulatorControl,
) -> None:
    simulator.seed_pond_sims(
        distributor_id=DISTRIBUTOR,
        sims=[
            {"iccid": "8901", "services": "ENABLED"},
            {"iccid": "8902", "services": "DISABLED"},
            {"iccid": "8903", "services": "DISABLED", "status_of_sim": "Terminated"},
        ],
    )

    sims = [simulator.pond_sim(iccid) for iccid in ("8901", "8902", "8903")]
    assert [[p["status"] for p in sim["packages"]] for sim in sims] == [
        ["ACTIVE"],
        ["NOT_ACTIVE"],
        ["TERMINATED"],
    ]
    assert [sim["status_of_sim"] for sim in sims] == ["In-Service", "In-Service", "Terminated"]
    ids = [sim["packages"][0]["package_id"] for sim in sims]
    assert len(set(ids)) == 3 and all(uuid.UUID(package_id) for package_id in ids)


def test_unknown_iccid_is_404_with_pond_error_body(pond: Caller) -> None:
    for response in (
        pond.get("/sim/89000000000000000000/status"),
        pond.post("/sim/89000000000000000000/status", json=services("ENABLED")),
        pond.get("/sim/89000000000000000000/package/infos"),
        pond.delete("/sim/89000000000000000000/purge"),
    ):
        assert assert_pond_error(response, 404, 40401) == "SIM not found"


def test_sim_of_another_distributor_is_404(pond: Caller, simulator: SimulatorControl) -> None:
    simulator.add_pond_account(distributor_id="5678", api_key="other-key")
    other = pond.session.get(
        f"{simulator.pond_base_url}/5678/sim/{ICCID}/status",
        headers={"x-api-key": "other-key"},
        timeout=5,
    )

    assert_pond_error(other, 404, 40401)


def test_unknown_package_is_404(pond: Caller) -> None:
    for package_id in ("7001", "00000000-0000-4000-8000-000000000000"):
        response = pond.post(f"/package/{package_id}/status", json={"package_status": "ACTIVE"})
        assert_pond_error(response, 404, 40402)


def test_terminated_sim_refuses_enabling_with_409_but_accepts_disabling(
    pond: Caller, simulator: SimulatorControl
) -> None:
    simulator.seed_pond_sims(
        distributor_id=DISTRIBUTOR,
        sims=[{"iccid": ICCID, "services": "DISABLED", "status_of_sim": "Terminated"}],
    )

    refused = pond.post(f"/sim/{ICCID}/status", json=services("ENABLED"))
    accepted = pond.post(f"/sim/{ICCID}/status", json=services("DISABLED"))

    assert_pond_error(refused, 409, 40901)
    assert accepted.status_code == 204
    assert simulator.pond_sim(ICCID)["sim_data_service_status"] == "DISABLED"


def test_terminated_packages_alone_do_not_terminate_the_sim(
    pond: Caller, simulator: SimulatorControl
) -> None:
    pond.post(f"/package/{PACKAGE_ID}/status", json={"package_status": "TERMINATED"})

    assert pond.post(f"/sim/{ICCID}/status", json=services("ENABLED")).status_code == 204
    assert simulator.pond_sim(ICCID)["status_of_sim"] == "In-Service"


def test_terminated_package_refuses_any_change_out_of_terminated_with_409(
    pond: Caller, simulator: SimulatorControl
) -> None:
    path = f"/package/{PACKAGE_ID}/status"
    assert pond.post(path, json={"package_status": "TERMINATED"}).status_code == 204

    for target in ("ACTIVE", "NOT_ACTIVE"):
        assert_pond_error(pond.post(path, json={"package_status": target}), 409, 40902)
    assert pond.post(path, json={"package_status": "TERMINATED"}).status_code == 204
    assert simulator.pond_sim(ICCID)["packages"][0]["status"] == "TERMINATED"


def test_purge_terminates_the_sim_and_its_packages_at_once(
    pond: Caller, simulator: SimulatorControl
) -> None:
    response = pond.delete(f"/sim/{ICCID}/purge")

    assert (response.status_code, response.content) == (204, b"")
    assert pond.get(f"/sim/{ICCID}/status").json() == sim_read(
        "DISABLED", status="SUSPENDED", status_of_sim="Terminated"
    )
    assert simulator.pond_sim(ICCID)["packages"][0]["status"] == "TERMINATED"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {**services("ENABLED"), "sim_sms_service_status": "Active"},
        {**services("ENABLED"), "sim_data_service_status": "enabled"},
        {**services("ENABLED"), "sim_data_service_status": None},
    ],
    ids=["no-field", "legacy-value", "wrong-case", "null-value"],
)
def test_sim_status_body_without_valid_service_statuses_is_400(
    pond: Caller, simulator: SimulatorControl, body: dict[str, Any]
) -> None:
    assert_pond_error(pond.post(f"/sim/{ICCID}/status", json=body), 400, 40001)
    assert simulator.pond_sim(ICCID)["sim_data_service_status"] == "ENABLED"


@pytest.mark.parametrize("value", ["Not Active", "not_active", "Gone"])
def test_package_status_other_than_the_swagger_enum_is_400(pond: Caller, value: str) -> None:
    response = pond.post(f"/package/{PACKAGE_ID}/status", json={"package_status": value})

    assert_pond_error(response, 400, 40001)


def test_malformed_json_is_400(pond: Caller) -> None:
    malformed = pond.post(
        f"/sim/{ICCID}/status", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_pond_error(malformed, 400, 40001)


def test_unknown_paths_are_404_json(pond: Caller, simulator: SimulatorControl) -> None:
    under_pond = pond.get(f"/sims/{ICCID}")
    elsewhere = pond.session.get(simulator.base_url + "/nowhere", timeout=5)

    assert_pond_error(under_pond, 404, 40401)
    assert elsewhere.status_code == 404
    assert "error" in elsewhere.json()


def test_pond_returns_the_request_id_header(pond: Caller) -> None:
    response = pond.get(f"/sim/{ICCID}/status", headers={"RequestId": "dc-77"})
    error = pond.get("/sim/8900/status", headers={"RequestId": "dc-78"})

    assert response.headers["RequestId"] == "dc-77"
    assert error.headers["RequestId"] == "dc-78"


# -- Rev.io contract -----------------------------------------------------------------------


def new_service(number: str = "2145550100", customer_id: int = CUSTOMER_ID) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "service_type_id": 7,
        "number": number,
        "number2": ICCID,
        "provider_id": 3,
        "activated_date": "2026-11-22Z",
        "effective_date": None,
        "usage_plan_group_id": None,
        "package_id": None,
    }


def test_rev_lookup_then_create_then_lookup_finds_the_service(
    rev: Caller, simulator: SimulatorControl
) -> None:
    search = {"search.number": "2145550100", "search.customer_id": CUSTOMER_ID}
    assert rev.get("/v1/Services", params=search).json() == {
        "ok": True,
        "has_more": False,
        "record_count": 0,
        "records": [],
    }

    created = rev.post("/v1/Services", json=new_service())
    assert created.status_code == 201
    service_id = created.json()["id"]
    assert created.json() == {"ok": True, "id": service_id}
    assert created.headers["Location"] == f"/rev/v1/Services/{service_id}"

    found = rev.get("/v1/Services", params=search).json()
    assert found == {
        "ok": True,
        "has_more": False,
        "record_count": 1,
        "records": [
            {
                "service_id": service_id,
                "number": "2145550100",
                "customer_id": 42,
                "service_type_id": 7,
            }
        ],
    }
    (stored,) = simulator.rev_services()
    assert (stored["number2"], stored["client_code"], stored["products"]) == (
        ICCID,
        CLIENT_CODE,
        [],
    )


def test_rev_create_for_unknown_customer_is_404(rev: Caller) -> None:
    response = rev.post("/v1/Services", json=new_service(customer_id=43))

    assert response.status_code == 404
    assert response.json() == {"ok": False, "message": "Customer 43 not found"}


@pytest.mark.parametrize("missing", ["customer_id", "service_type_id", "number"])
def test_rev_create_without_a_required_field_is_400(rev: Caller, missing: str) -> None:
    body = new_service()
    del body[missing]

    response = rev.post("/v1/Services", json=body)

    assert response.status_code == 400
    assert response.json()["ok"] is False
    assert missing in response.json()["message"]


def test_rev_service_products_are_created_and_found_by_service(
    rev: Caller, simulator: SimulatorControl
) -> None:
    service_id = rev.post("/v1/Services", json=new_service()).json()["id"]
    product = {
        **{"service_id": service_id, "customer_id": 42, "product_id": 55, "rate": 4.5},
        **{
            "prorate": False,
            "quantity": 1,
            "effective_date": None,
            "activated_date": "2026-11-22Z",
        },
    }

    created = rev.post("/v1/ServiceProducts", json=product)
    found = rev.get("/v1/ServiceProducts", params={"search.service_id": service_id}).json()

    assert created.status_code == 201
    product_id = created.json()["id"]
    assert found["records"] == [
        {"service_product_id": product_id, "service_id": service_id, "product_id": 55}
    ]
    assert simulator.rev_services()[0]["products"][0]["rate"] == 4.5


def test_rev_service_product_for_unknown_service_is_404(rev: Caller) -> None:
    response = rev.post("/v1/ServiceProducts", json={"service_id": 1, "product_id": 55})

    assert response.status_code == 404
    assert response.json() == {"ok": False, "message": "Service 1 not found"}


# -- faults --------------------------------------------------------------------------------


def test_status_fault_answers_with_the_carrier_error_body_and_retry_after(
    pond: Caller, rev: Caller, simulator: SimulatorControl
) -> None:
    simulator.add_fault("pond", "set_sim_status", key=ICCID, status=503, retry_after="1200")
    simulator.add_fault("rev", "create_service", status=429, retry_after=7)

    pond_response = pond.post(f"/sim/{ICCID}/status", json=services("DISABLED"))
    rev_response = rev.post("/v1/Services", json=new_service())

    assert_pond_error(pond_response, 503, 50301)
    assert pond_response.headers["Retry-After"] == "1200"
    assert simulator.pond_sim(ICCID)["sim_data_service_status"] == "ENABLED"
    assert rev_response.status_code == 429
    assert rev_response.headers["Retry-After"] == "7"
    assert rev_response.json() == {  # API management's body, not Rev's
        "statusCode": 429,
        "message": "Rate limit is exceeded. Try again in 7 seconds.",
    }
    assert simulator.rev_services() == []


def test_empty_fault_answers_the_status_with_an_empty_body(
    pond: Caller, simulator: SimulatorControl
) -> None:
    simulator.add_fault("pond", "list_packages", kind="empty", status=500)

    response = pond.get(f"/sim/{ICCID}/package/infos")

    assert (response.status_code, response.content) == (500, b"")


def test_timeout_fault_holds_the_request_past_the_client_read_timeout_then_applies_it(
    pond: Caller, simulator: SimulatorControl
) -> None:
    simulator.add_fault("pond", "set_sim_status", key=ICCID, kind="timeout", delay_ms=600)

    with pytest.raises(requests.ReadTimeout):
        pond.post(f"/sim/{ICCID}/status", json=services("DISABLED"), timeout=(2, 0.2))

    wait_for(
        lambda: simulator.pond_sim(ICCID)["sim_data_service_status"] == "DISABLED",
        timeout=3,
        interval=0.02,
    )


def test_drop_fault_closes_the_connection_without_a_response(
    pond: Caller, simulator: SimulatorControl
) -> None:
    assert pond.get(f"/sim/{ICCID}/status").status_code == 200  # a kept-alive connection
    simulator.add_fault("pond", "read_sim_status", kind="drop")

    with pytest.raises(requests.ConnectionError):
        pond.get(f"/sim/{ICCID}/status")
    assert pond.get(f"/sim/{ICCID}/status").status_code == 200


def test_faults_are_consumed_in_order_times_each_and_only_for_their_key(
    pond: Caller, simulator: SimulatorControl
) -> None:
    simulator.seed_pond_sims(
        distributor_id=DISTRIBUTOR, sims=[{"iccid": "8999", "services": "ENABLED"}]
    )
    simulator.add_fault("pond", "read_sim_status", key=ICCID, status=503, times=2)
    simulator.add_fault("pond", "read_sim_status", key=ICCID, status=500)

    other_device = pond.get("/sim/8999/status").status_code
    statuses = [pond.get(f"/sim/{ICCID}/status").status_code for _ in range(4)]

    assert other_device == 200
    assert statuses == [503, 503, 500, 200]


def test_forever_fault_lasts_until_faults_are_cleared(
    pond: Caller, simulator: SimulatorControl
) -> None:
    simulator.add_fault("pond", "read_sim_status", status=504, times=-1)

    assert [pond.get(f"/sim/{ICCID}/status").status_code for _ in range(3)] == [504] * 3
    simulator.clear_faults()
    assert pond.get(f"/sim/{ICCID}/status").status_code == 200


# -- observation ---------------------------------------------------------------------------


def test_call_counters_count_every_request_received_including_faulted_ones(
    pond: Caller, simulator: SimulatorControl
) -> None:
    simulator.add_fault("pond", "set_sim_status", key=ICCID, status=503)

    pond.post(f"/sim/{ICCID}/status", json=services("DISABLED"))
    pond.post(f"/sim/{ICCID}/status", json=services("DISABLED"))
    pond.post(f"/package/{PACKAGE_ID}/status", json={"package_status": "NOT_ACTIVE"})

    assert simulator.call_count("pond", "set_sim_status", ICCID) == 2
    assert simulator.call_count("pond", "set_package_status", ICCID) == 1
    assert simulator.call_count("pond") == 3
    calls = simulator.calls()
    assert calls["pond"] == {"set_sim_status": {ICCID: 2}, "set_package_status": {ICCID: 1}}
    assert all(not ops for carrier, ops in calls.items() if carrier != "pond")
    assert simulator.stats()["pond"]["faults_injected"] == 1


def test_rev_calls_are_counted_by_number(rev: Caller, simulator: SimulatorControl) -> None:
    rev.get("/v1/Services", params={"search.number": "2145550100", "search.customer_id": 42})
    service_id = rev.post("/v1/Services", json=new_service()).json()["id"]
    rev.post("/v1/ServiceProducts", json={"service_id": service_id, "product_id": 55})

    assert simulator.calls()["rev"] == {
        "find_services": {"2145550100": 1},
        "create_service": {"2145550100": 1},
        "create_service_product": {"2145550100": 1},
    }


def test_request_log_shows_what_the_client_sent_without_secrets(
    pond: Caller, rev: Caller, simulator: SimulatorControl
) -> None:
    pond.post(
        f"/sim/{ICCID}/status",
        json=services("DISABLED"),
        headers={"Idempotency-Key": "pondops-7-carrier_status", "RequestId": "dc-7"},
    )
    rev.post("/v1/Services", json=new_service(), headers={"Idempotency-Key": "pondops-7-rev"})

    (pond_request,) = simulator.requests(carrier="pond")
    (rev_request,) = simulator.requests(carrier="rev", op="create_service")
    assert pond_request["method"] == "POST"
    assert pond_request["carrier_path"] == f"/{DISTRIBUTOR}/sim/{ICCID}/status"
    assert pond_request["body"] == services("DISABLED")
    assert pond_request["idempotency_key"] == "pondops-7-carrier_status"
    assert pond_request["request_id"] == "dc-7"
    assert pond_request["status"] == 204
    assert pond_request["headers"]["x-api-key"] == "[redacted]"
    assert rev_request["headers"]["authorization"] == "[redacted]"
    assert rev_request["idempotency_key"] == "pondops-7-rev"
    assert API_KEY not in str(pond_request) and REV_PASSWORD not in str(rev_request)


def test_latency_config_delays_carrier_requests(pond: Caller, simulator: SimulatorControl) -> None:
    simulator.config(latency_ms=150)

    started = time.monotonic()
    assert pond.get(f"/sim/{ICCID}/status").status_code == 200

    assert time.monotonic() - started >= 0.15


def test_reset_forgets_accounts_devices_counters_and_faults(
    pond: Caller, simulator: SimulatorControl
) -> None:
    pond.get(f"/sim/{ICCID}/status")
    simulator.add_fault("pond", "read_sim_status", times=-1)
    simulator.config(latency_ms=50)

    simulator.reset()

    assert all(not ops for ops in simulator.calls().values())
    assert simulator.requests() == []
    assert simulator.config(latency_ms=0) == {"latency_ms": 0}
    with pytest.raises(SimulatorControlError, match="404"):
        simulator.pond_sim(ICCID)
    assert pond.get(f"/sim/{ICCID}/status").status_code == 401


# -- the server itself ---------------------------------------------------------------------


def test_server_refuses_to_bind_a_non_loopback_host() -> None:
    with pytest.raises(NonLoopbackHostError, match="loopback"):
        SimulatorServer(host="0.0.0.0")


def test_stop_closes_kept_alive_connections() -> None:
    server = SimulatorServer(port=0).start()
    session = requests.Session()
    assert session.get(server.url + "/_sim/stats", timeout=5).status_code == 200

    server.stop()

    with pytest.raises(requests.ConnectionError):
        session.get(server.url + "/_sim/stats", timeout=5)


def test_command_line_announces_its_url_and_exits_0_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "integrations.simulators", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("simulators listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert requests.get(url + "/_sim/stats", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- strict sliding-window rate limit --------------------------------------------------------


def test_a_sliding_window_account_refuses_the_request_past_its_count_until_a_second_has_passed(
    pond: Caller, simulator: SimulatorControl
) -> None:
    """``rate_window: "sliding"``: 5 reads pass, the 6th within the same second is 429 (a token
    bucket would refill a token every 200 ms); once the first read is a second old, one more
    passes, and the refused reads were never counted."""
    simulator.add_pond_account(
        distributor_id=DISTRIBUTOR, api_key=API_KEY, rate_limit=5, rate_window="sliding"
    )
    first = time.monotonic()
    answers = [pond.get(f"/sim/{ICCID}/status").status_code for _ in range(6)]
    refused_within_the_second = time.monotonic() - first < 1.0

    def passes() -> bool:
        status = pond.get(f"/sim/{ICCID}/status").status_code
        answers.append(status)
        return status == 200

    wait_for(passes, timeout=5, interval=0.05, message="a read a second after the first")
    passed_after = time.monotonic() - first

    assert answers[:5] == [200] * 5
    if refused_within_the_second:  # (a very slow machine took the six reads past a second)
        assert answers[5] == 429
        assert passed_after >= 1.0
    assert answers.count(200) == 6
    stats = simulator.stats()["pond"]
    assert stats["rate_limited"] == answers.count(429) == len(answers) - 6


def test_an_unknown_rate_window_is_refused_by_the_control_api(simulator: SimulatorControl) -> None:
    with pytest.raises(SimulatorControlError, match="rate_window must be one of"):
        simulator.add_pond_account(
            distributor_id=DISTRIBUTOR, api_key=API_KEY, rate_limit=5, rate_window="fixed"
        )
