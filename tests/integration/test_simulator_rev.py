"""The Rev.io simulator speaks docs/carriers/rev.md over real HTTP, behind API management.

These tests are the simulator's specification: paged collections and their page-size cap, the
loose number search, services that already exist, the subscription key, API management's rate
limit and call quota with its own error body, and Rev's. The basic look-up/create round trip
is in test_simulators.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from integrations.base import Credentials, TransientError
from integrations.rev import RevClient
from integrations.simulators.control import SimulatorControl, SimulatorControlError
from tests.conftest import wait_for
from tests.fixtures.simulator_http import Caller

CLIENT_CODE = "acme"
USERNAME = "api-user"
PASSWORD = "rev-sim-password-71"
KEY = "apim-key-sim-3e9f"
CUSTOMER_ID = 42
NUMBER = "2145550100"


def search(number: str = NUMBER, **extra: Any) -> dict[str, Any]:
    return {"search.number": number, "search.customer_id": CUSTOMER_ID, **extra}


def apim_body(response: requests.Response, status: int) -> str:
    """API management's error body: exactly ``statusCode`` and ``message``."""
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"statusCode", "message"}
    assert body["statusCode"] == status
    return str(body["message"])


def rev_body(response: requests.Response, status: int) -> str:
    """Rev.io's own error body: exactly ``ok: false`` and ``message``."""
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"ok", "message"}
    assert body["ok"] is False
    return str(body["message"])


@pytest.fixture
def rev(simulator: SimulatorControl) -> Iterator[Caller]:
    limit(simulator)
    simulator.add_rev_customers(client_code=CLIENT_CODE, customer_ids=[CUSTOMER_ID])
    with Caller(
        simulator.rev_base_url,
        headers={"Accept": "application/json", "Ocp-Apim-Subscription-Key": KEY},
        auth=(f"{USERNAME}@{CLIENT_CODE}", PASSWORD),
    ) as carrier:
        yield carrier


def limit(simulator: SimulatorControl, **limits: Any) -> None:
    """The fixture's account again, with API management's ``limits``."""
    simulator.add_rev_account(
        client_code=CLIENT_CODE,
        username=USERNAME,
        password=PASSWORD,
        subscription_key=KEY,
        **limits,
    )


def seed(simulator: SimulatorControl, numbers: list[str]) -> list[int]:
    return simulator.seed_rev_services(
        client_code=CLIENT_CODE,
        services=[{"customer_id": CUSTOMER_ID, "number": number} for number in numbers],
    )


def numbers(count: int) -> list[str]:
    return [f"21455509{n:02d}" for n in range(count)]


# -- paging -----------------------------------------------------------------------------------


def test_a_collection_pages_ten_records_by_default_and_says_whether_more_follow(
    rev: Caller, simulator: SimulatorControl
) -> None:
    ids = seed(simulator, numbers(25))
    simulator.configure_rev(number_search="ignored")

    first = rev.get("/v1/Services", params=search()).json()  # no page: the first
    pages = [first, *(rev.get("/v1/Services", params=search(page=n)).json() for n in (2, 3))]

    assert [p["has_more"] for p in pages] == [True, True, False]
    assert [p["record_count"] for p in pages] == [10, 10, 5]
    assert [r["service_id"] for p in pages for r in p["records"]] == ids
    assert all(
        p["ok"] is True and set(p) == {"ok", "has_more", "record_count", "records"} for p in pages
    )


def test_page_size_is_honoured_up_to_the_cap_the_test_sets(
    rev: Caller, simulator: SimulatorControl
) -> None:
    seed(simulator, numbers(30))
    simulator.configure_rev(number_search="ignored")

    whole = rev.get("/v1/Services", params=search(page_size=100)).json()
    assert (whole["record_count"], whole["has_more"]) == (30, False)

    assert simulator.configure_rev(max_page_size=10)["max_page_size"] == 10
    capped = rev.get("/v1/Services", params=search(page_size=100, page=3)).json()
    assert (capped["record_count"], capped["has_more"]) == (10, False)
    beyond = rev.get("/v1/Services", params=search(page_size=100, page=4)).json()
    assert (beyond["record_count"], beyond["has_more"], beyond["records"]) == (0, False, [])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"page_size": 0}, "page_size must be between 1 and 500"),
        ({"page_size": 501}, "page_size must be between 1 and 500"),
        ({"page_size": "ten"}, "page_size must be an integer"),
        ({"page": 0}, "page must be 1 or more"),
    ],
)
def test_bad_paging_parameters_are_400_with_revs_body(
    rev: Caller, params: dict[str, Any], message: str
) -> None:
    assert rev_body(rev.get("/v1/Services", params=search(**params)), 400) == message


def test_the_number_search_can_match_exactly_by_contains_or_be_ignored(
    rev: Caller, simulator: SimulatorControl
) -> None:
    seed(simulator, [NUMBER, "12145550100", "2145550199"])

    def found() -> list[str]:
        answer = rev.get("/v1/Services", params=search(page_size=500)).json()
        return [record["number"] for record in answer["records"]]

    assert found() == [NUMBER]
    simulator.configure_rev(number_search="contains")
    assert found() == [NUMBER, "12145550100"]
    simulator.configure_rev(number_search="ignored")
    assert found() == [NUMBER, "12145550100", "2145550199"]
    simulator.reset()
    assert simulator.configure_rev() == {
        "max_page_size": None,
        "number_search": "exact",
        "retry_after_header": True,
    }


def test_seeded_services_need_a_known_account_and_make_their_customers_known(
    rev: Caller, simulator: SimulatorControl
) -> None:
    with pytest.raises(SimulatorControlError, match="no Rev account 'other'"):
        simulator.seed_rev_services(
            client_code="other", services=[{"customer_id": 1, "number": NUMBER}]
        )
    [service_id] = simulator.seed_rev_services(
        client_code=CLIENT_CODE, services=[{"customer_id": 77, "number": NUMBER}]
    )
    created = rev.post(
        "/v1/Services", json={"customer_id": 77, "service_type_id": 7, "number": NUMBER}
    )

    assert created.status_code == 201  # customer 77 exists now
    assert created.json()["id"] == service_id + 1


# -- API management ---------------------------------------------------------------------------


def test_a_missing_or_wrong_subscription_key_is_api_managements_401(rev: Caller) -> None:
    without = rev.session.get(rev.root + "/v1/Services", auth=rev.auth, params=search(), timeout=5)
    wrong = rev.get("/v1/Services", params=search(), headers={"Ocp-Apim-Subscription-Key": "x"})

    assert "missing subscription key" in apim_body(without, 401)
    assert "invalid subscription key" in apim_body(wrong, 401)
    assert KEY not in wrong.text


def test_wrong_basic_credentials_with_the_right_key_are_revs_401(rev: Caller) -> None:
    response = rev.get("/v1/Services", params=search(), auth=(f"{USERNAME}@{CLIENT_CODE}", "no"))

    assert rev_body(response, 401) == f"Invalid credentials for client {CLIENT_CODE}"


def test_an_account_without_a_key_takes_calls_without_one(simulator: SimulatorControl) -> None:
    simulator.add_rev_account(client_code="plain", username=USERNAME, password=PASSWORD)

    response = requests.get(
        simulator.rev_base_url + "/v1/Services",
        params=search(),
        auth=(f"{USERNAME}@plain", PASSWORD),
        timeout=5,
    )

    assert response.status_code == 200


def test_past_the_quota_calls_are_403_out_of_call_volume_quota_until_it_renews(
    rev: Caller, simulator: SimulatorControl
) -> None:
    limit(simulator, quota_calls=2, quota_period_seconds=3600)
    assert [rev.get("/v1/Services", params=search()).status_code for _ in range(2)] == [200] * 2

    refused = rev.get("/v1/Services", params=search())

    message = apim_body(refused, 403)
    assert message == "Out of call volume quota. Quota will be replenished in 01:00:00."
    assert refused.headers["Retry-After"] == "3600"
    simulator.configure_rev(retry_after_header=False)
    assert "Retry-After" not in rev.get("/v1/Services", params=search()).headers


def test_a_quota_renews_after_its_period(rev: Caller, simulator: SimulatorControl) -> None:
    limit(simulator, quota_calls=1, quota_period_seconds=0.3)
    assert rev.get("/v1/Services", params=search()).status_code == 200
    assert rev.get("/v1/Services", params=search()).status_code == 403

    wait_for(
        lambda: rev.get("/v1/Services", params=search()).status_code == 200,
        timeout=5,
        interval=0.1,
        message="the quota renewed",
    )


def test_past_500_calls_a_minute_api_management_answers_429(
    rev: Caller, simulator: SimulatorControl
) -> None:
    limit(simulator, calls_per_minute=2)
    statuses = [rev.get("/v1/Services", params=search()).status_code for _ in range(2)]
    limited = rev.get("/v1/Services", params=search())

    assert statuses == [200, 200]
    assert apim_body(limited, 429) == "Rate limit is exceeded. Try again in 1 seconds."
    assert limited.headers["Retry-After"] == "1"


def test_the_client_reads_a_429_message_when_the_header_is_left_out(
    simulator: SimulatorControl, rev: Caller
) -> None:
    simulator.configure_rev(retry_after_header=False)
    simulator.add_fault("rev", "find_services", status=429, retry_after=7)
    client = RevClient(
        credentials=Credentials(
            integration_authentication_id=1,
            integration="REV",
            base_url=simulator.rev_base_url,
            account=CLIENT_CODE,
            username=USERNAME,
            secret=PASSWORD,
            secret_2=KEY,
        ),
        timeouts=(5, 5),
    )

    with pytest.raises(TransientError) as raised:
        client.find_service(number=NUMBER, customer_id=CUSTOMER_ID)

    assert raised.value.retry_after == 8.0
    assert raised.value.message == (
        "HTTP 429 from Rev.io: Rate limit is exceeded. Try again in 7 seconds."
    )


# -- Rev's answers ----------------------------------------------------------------------------


def test_a_create_answers_201_with_location_and_id(rev: Caller) -> None:
    created = rev.post(
        "/v1/Services",
        json={"customer_id": CUSTOMER_ID, "service_type_id": 7, "number": NUMBER},
    )

    assert created.status_code == 201
    assert created.json() == {"ok": True, "id": 800}
    assert created.headers["Location"] == "/rev/v1/Services/800"


def test_rev_errors_carry_ok_false_and_a_message(rev: Caller) -> None:
    unknown = rev.post(
        "/v1/Services", json={"customer_id": 43, "service_type_id": 7, "number": NUMBER}
    )
    not_allowed = rev.request("DELETE", "/v1/Services")
    fault = rev.get("/v1/Services", params=search(), headers={"X-Sim-Fault": "503"})

    assert rev_body(unknown, 404) == "Customer 43 not found"
    assert rev_body(not_allowed, 405) == "DELETE is not allowed here"
    assert rev_body(fault, 503) == "Simulated fault: 503 Service Unavailable"
