"""What every carrier simulator does alike, over real HTTP: credentials other than the account's
are refused and change nothing, fault injection answers in the carrier's own shapes, and an
account past its rate limit is answered 429 with Retry-After while another account is not.

Each case runs once per carrier that has it; what differs (codes, messages, limits) is in the
parameter tables. Each carrier's own contract is in test_simulator_<carrier>.py (POND's and
Rev.io's in test_simulators.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import pytest
import requests

from integrations.simulators.control import SimulatorControl, SimulatorControlError
from tests.fixtures.simulator_http import (
    Caller,
    ErrorCheck,
    assert_jasper_error,
    assert_pond_error,
    assert_teal_error,
    assert_telegence_error,
)

JSON = {"Accept": "application/json"}


class Simulated:
    """One carrier's simulator as the shared cases drive it: two accounts, each a login and a
    secret holding one device; the first (``caller``, device ``key`` in state ``seeded``) is the
    one under test, the second (``other``) shows what is per account."""

    name: ClassVar[str]  # the simulator's name for the carrier
    read_op: ClassVar[str]
    seeded: ClassVar[str]
    accounts: ClassVar[tuple[tuple[str, str, str], tuple[str, str, str]]]  # login, secret, device
    error: ErrorCheck

    def __init__(self, simulator: SimulatorControl) -> None:
        self.simulator = simulator
        for login, secret, device in self.accounts:
            self.add_account(login, secret)
            self.seed(login, device)
        (login, self.secret, self.key), (other, self.other_secret, self.other_key) = self.accounts
        self.caller = self.caller_for(login, self.secret)
        self.other = self.caller_for(other, self.other_secret)

    # -- per carrier ------------------------------------------------------------------------

    def add_account(self, login: str, secret: str, rate: float | None = None) -> None:
        """Create or replace the account; ``rate`` is its limit (None: the simulator's default)
        in the carrier's unit (requests per second; Teal: per minute)."""
        raise NotImplementedError

    def seed(self, login: str, device: str) -> None:
        raise NotImplementedError

    def caller_for(self, login: str, secret: str) -> Caller:
        raise NotImplementedError

    def read_device(self, caller: Caller, device: str, **kwargs: Any) -> requests.Response:
        raise NotImplementedError

    def write(self, **kwargs: Any) -> requests.Response:
        """A status change of the account's device (kwargs go to the request)."""
        raise NotImplementedError

    def state(self) -> str:
        """The account's device status, as the simulator holds it."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------

    def read(self, **kwargs: Any) -> requests.Response:
        """A read of the account's device (kwargs go to the request)."""
        return self.read_device(self.caller, self.key, **kwargs)

    def read_other(self) -> requests.Response:
        return self.read_device(self.other, self.other_key)

    def limit(self, rate: float) -> None:
        """Both accounts limited to ``rate``; their devices stay."""
        for login, secret, _ in self.accounts:
            self.add_account(login, secret, rate)

    def close(self) -> None:
        self.caller.close()
        self.other.close()


def limited(field: str, rate: float | None) -> dict[str, Any]:
    """The keyword that sets an account's limit, or none for the simulator's default."""
    return {} if rate is None else {field: rate}


def pond_services(status: str) -> dict[str, str]:
    fields = ("sim_data_service_status", "sim_voice_service_status", "sim_sms_service_status")
    return dict.fromkeys(fields, status)


class Pond(Simulated):
    name, read_op, seeded = "pond", "read_sim_status", "ENABLED"
    accounts = (
        ("1234", "pond-test-key", "89148000000000000001"),
        ("5678", "other-key", "89148000000000000099"),
    )
    error = staticmethod(assert_pond_error)

    def add_account(self, login: str, secret: str, rate: float | None = None) -> None:
        self.simulator.add_pond_account(
            distributor_id=login, api_key=secret, **limited("rate_limit", rate)
        )

    def seed(self, login: str, device: str) -> None:
        self.simulator.seed_pond_sims(
            distributor_id=login, sims=[{"iccid": device, "services": "ENABLED"}]
        )

    def caller_for(self, login: str, secret: str) -> Caller:
        return Caller(f"{self.simulator.pond_base_url}/{login}", {"x-api-key": secret, **JSON})

    def read_device(self, caller: Caller, device: str, **kwargs: Any) -> requests.Response:
        return caller.get(f"/sim/{device}/status", **kwargs)

    def write(self, **kwargs: Any) -> requests.Response:
        return self.caller.post(f"/sim/{self.key}/status", json=pond_services("DISABLED"), **kwargs)

    def state(self) -> str:
        return str(self.simulator.pond_sim(self.key)["sim_data_service_status"])


class Jasper(Simulated):
    name, read_op, seeded = "jasper", "get_device", "ACTIVATED"
    accounts = (
        ("ops-api", "jasper-sim-key-3d9f", "89011704278000000001"),
        ("other", "other-key", "8901999"),
    )
    error = assert_jasper_error

    def add_account(self, login: str, secret: str, rate: float | None = None) -> None:
        self.simulator.add_jasper_account(
            username=login, api_key=secret, **limited("rate_limit", rate)
        )

    def seed(self, login: str, device: str) -> None:
        self.simulator.seed_jasper_devices(username=login, devices=[{"iccid": device}])

    def caller_for(self, login: str, secret: str) -> Caller:
        return Caller(self.simulator.jasper_base_url + "/rws/api/v1", JSON, (login, secret))

    def read_device(self, caller: Caller, device: str, **kwargs: Any) -> requests.Response:
        return caller.get(f"/devices/{device}", **kwargs)

    def write(self, **kwargs: Any) -> requests.Response:
        return self.caller.request(
            "PUT", f"/devices/{self.key}", json={"status": "DEACTIVATED"}, **kwargs
        )

    def state(self) -> str:
        return str(self.simulator.jasper_device(self.key)["status"])


TELEGENCE_API = "/sp/mobility/lineconfig/api/v1"


class Telegence(Simulated):
    name, read_op, seeded = "telegence", "read_line", "Active"
    accounts = (
        ("pondops-app", "tg-sim-secret-99", "2145550100"),
        ("other-app", "other-secret-11", "2145550199"),
    )
    error = staticmethod(assert_telegence_error)

    def add_account(self, login: str, secret: str, rate: float | None = None) -> None:
        self.simulator.add_telegence_account(
            app_id=login, app_secret=secret, **limited("rate_limit", rate)
        )

    def seed(self, login: str, device: str) -> None:
        self.simulator.seed_telegence_subscribers(
            app_id=login, subscribers=[{"msisdn": device, "iccid": f"8901170327810{device}"}]
        )

    def caller_for(self, login: str, secret: str) -> Caller:
        headers = {"app-id": login, "app-secret": secret, **JSON}
        return Caller(self.simulator.telegence_base_url + TELEGENCE_API, headers)

    def read_device(self, caller: Caller, device: str, **kwargs: Any) -> requests.Response:
        return caller.get(f"/service/{device}", **kwargs)

    def write(self, **kwargs: Any) -> requests.Response:
        body = {
            "effectiveDate": "2026-11-22",
            "serviceCharacteristic": [
                {"name": "subscriberStatus", "value": "S"},
                {"name": "reasonCode", "value": "CR"},
            ],
        }
        return self.caller.request("PATCH", f"/service/{self.key}", json=body, **kwargs)

    def state(self) -> str:
        return str(self.simulator.telegence_subscriber(self.key)["status"])


# Nothing listens there: the simulator's callback is refused, which these cases do not look at.
TEAL_CALLBACK_URL = "http://127.0.0.1:9/carriers/teal/callbacks/1/?token=t"


class Teal(Simulated):
    name, read_op, seeded = "teal", "esim_info", "stopped"
    accounts = (
        ("teal-key-acme", "teal-secret-Qv93xk", "89049032000000000000000000000001"),
        ("teal-key-globex", "teal-secret-globex", "89049032000000000000000000000099"),
    )
    error = assert_teal_error

    def add_account(self, login: str, secret: str, rate: float | None = None) -> None:
        self.simulator.add_teal_account(
            api_key=login, api_secret=secret, **limited("calls_per_minute", rate)
        )

    def seed(self, login: str, device: str) -> None:
        iccid = "8914800000000000" + device[-4:]
        self.simulator.seed_teal_esims(
            api_key=login, esims=[{"eid": device, "iccid": iccid, "status": "stopped"}]
        )

    def caller_for(self, login: str, secret: str) -> Caller:
        headers = {"ApiKey": login, "ApiSecret": secret, **JSON}
        return Caller(self.simulator.teal_base_url + "/api/v1", headers)

    def read_device(self, caller: Caller, device: str, **kwargs: Any) -> requests.Response:
        params = {
            "eid": device,
            "limit": 1,
            "requestId": uuid.uuid4().hex,
            "callbackUrl": TEAL_CALLBACK_URL,
        }
        return caller.get("/esims/info", params=params, **kwargs)

    def write(self, **kwargs: Any) -> requests.Response:
        params = {"requestId": uuid.uuid4().hex, "callbackUrl": TEAL_CALLBACK_URL}
        return self.caller.post(
            "/esims/enable", params=params, json={"entries": [self.key]}, **kwargs
        )

    def state(self) -> str:
        return str(self.simulator.teal_esim(self.key)["status"])


CARRIERS: Mapping[str, type[Simulated]] = {
    carrier.name: carrier for carrier in (Pond, Jasper, Telegence, Teal)
}


@pytest.fixture
def carrier(request: pytest.FixtureRequest, simulator: SimulatorControl) -> Iterator[Simulated]:
    """The simulator of the carrier the case is parametrised with (``indirect``)."""
    arranged = CARRIERS[request.param](simulator)
    yield arranged
    arranged.close()


def sent_secrets(credentials: Mapping[str, Any]) -> list[str]:
    """The secrets a request with these credentials sends (the Basic auth password, a secret
    or key header)."""
    auth = credentials.get("auth")
    headers = credentials.get("headers", {})
    secret_headers = {"x-api-key", "app-secret", "ApiSecret", "Authorization"}
    return [value for name, value in headers.items() if name in secret_headers and value] + (
        [auth[1]] if auth else []
    )


JASPER_KEY = Jasper.accounts[0][1]
TELEGENCE_OTHER_SECRET = Telegence.accounts[1][1]
TEAL_KEY, TEAL_OTHER_SECRET = Teal.accounts[0][0], Teal.accounts[1][1]


@pytest.mark.parametrize(
    ("carrier", "credentials", "code", "message"),
    [
        pytest.param(
            "pond",
            {"headers": {"x-api-key": "wrong"}},
            40101,
            "API key rejected for distributor 1234",
            id="pond-wrong-key",
        ),
        pytest.param(
            "jasper",
            {"auth": ("ops-api", "wrong-key")},
            "10000001",
            "Invalid credentials",
            id="jasper-wrong-key",
        ),
        pytest.param(
            "jasper",
            {"auth": ("someone-else", JASPER_KEY)},
            "10000001",
            "Invalid credentials",
            id="jasper-unknown-user",
        ),
        pytest.param(
            "jasper", {"auth": None}, "10000001", "Invalid credentials", id="jasper-no-auth"
        ),
        pytest.param(
            "jasper",
            {"auth": None, "headers": {"Authorization": f"Bearer {JASPER_KEY}"}},
            "10000001",
            "Invalid credentials",
            id="jasper-a-bearer-token-is-not-basic-auth",
        ),
        pytest.param(
            "telegence",
            {"headers": {"app-id": "", "app-secret": ""}},
            "errorDescription",
            "app-id and app-secret headers are required",
            id="telegence-no-headers",
        ),
        pytest.param(
            "telegence",
            {"headers": {"app-secret": "wrong-secret"}},
            "errorDescription",
            "Invalid app-id or app-secret for app pondops-app",
            id="telegence-wrong-secret",
        ),
        pytest.param(
            "telegence",
            {"headers": {"app-id": "nobody"}},
            "errorDescription",
            "Invalid app-id or app-secret for app nobody",
            id="telegence-unknown-app",
        ),
        pytest.param(
            "telegence",
            {"headers": {"app-secret": TELEGENCE_OTHER_SECRET}},
            "errorDescription",
            "Invalid app-id or app-secret for app pondops-app",
            id="telegence-another-apps-secret",
        ),
        pytest.param(
            "teal",
            {"headers": {"ApiSecret": "wrong-secret"}},
            "UNAUTHORIZED",
            "Invalid ApiKey or ApiSecret",
            id="teal-wrong-secret",
        ),
        pytest.param(
            "teal",
            {"headers": {"ApiKey": "unknown-key"}},
            "UNAUTHORIZED",
            "Invalid ApiKey or ApiSecret",
            id="teal-unknown-key",
        ),
        pytest.param(
            "teal",
            {"headers": {"ApiKey": TEAL_KEY, "ApiSecret": TEAL_OTHER_SECRET}},
            "UNAUTHORIZED",
            "Invalid ApiKey or ApiSecret",
            id="teal-another-accounts-secret",
        ),
    ],
    indirect=["carrier"],
)
def test_credentials_other_than_the_accounts_are_401_and_change_nothing(
    carrier: Simulated, credentials: dict[str, Any], code: Any, message: str
) -> None:
    read = carrier.read(**credentials)
    write = carrier.write(**credentials)

    for response in (read, write):
        assert carrier.error(response, 401, code) == message
        secrets = [carrier.secret, carrier.other_secret, *sent_secrets(credentials)]
        assert not [secret for secret in secrets if secret in response.text]
    assert carrier.state() == carrier.seeded


@pytest.mark.parametrize(
    ("carrier", "status", "code"),
    [
        pytest.param("pond", 503, 50301, id="pond"),
        pytest.param("telegence", 504, "errorDescription", id="telegence"),
    ],
    indirect=["carrier"],
)
def test_a_fault_header_answers_that_status_once_in_the_carriers_body(
    carrier: Simulated, status: int, code: Any
) -> None:
    faulted = carrier.read(headers={"X-Sim-Fault": str(status)})

    carrier.error(faulted, status, code)
    assert carrier.read().status_code == 200


@pytest.mark.parametrize("carrier", ["pond", "jasper", "telegence"], indirect=True)
def test_an_html_fault_answers_a_gateway_page_titled_with_the_status(carrier: Simulated) -> None:
    carrier.simulator.add_fault(carrier.name, carrier.read_op, kind="html", status=502)

    response = carrier.read()

    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<title>502 Bad Gateway</title>" in response.text


@pytest.mark.parametrize(
    ("name", "op"),
    [
        ("pond", "set_status"),
        ("jasper", "set_status"),
        ("telegence", "set_sim_status"),
        ("teal", "activate"),
    ],
)
def test_a_fault_for_an_op_the_carrier_does_not_have_is_refused(
    simulator: SimulatorControl, name: str, op: str
) -> None:
    with pytest.raises(SimulatorControlError, match=f"op for {name} must be one of"):
        simulator.add_fault(name, op)


@pytest.mark.parametrize(
    ("carrier", "limit", "requests_sent", "code", "message"),
    [
        pytest.param(
            "pond",
            10,
            30,
            42901,
            "Rate limit of 10 requests/s exceeded for distributor 1234",
            id="pond",
        ),
        pytest.param("jasper", 5, 20, "40000029", "Exceeding Tariff limits", id="jasper"),
    ],
    indirect=["carrier"],
)
def test_a_concurrent_burst_gets_a_bucket_of_the_limit_and_its_refill_the_rest_429(
    carrier: Simulated, limit: int, requests_sent: int, code: Any, message: str
) -> None:
    carrier.limit(limit)

    def read(_: int) -> requests.Response:
        with carrier.caller.fresh() as caller:
            return carrier.read_device(caller, carrier.key)

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(read, range(requests_sent)))
    elapsed = time.monotonic() - started
    stats = carrier.simulator.stats()[carrier.name]
    other = carrier.read_other()

    # A full bucket, plus at most what refilled while the burst ran.
    allowed = [answer for answer in answers if answer.status_code == 200]
    throttled = [answer for answer in answers if answer.status_code == 429]
    assert limit <= len(allowed) <= limit + int(limit * elapsed) + 1
    assert len(allowed) + len(throttled) == requests_sent
    assert {answer.headers["Retry-After"] for answer in throttled} == {"1"}
    assert carrier.error(throttled[0], 429, code) == message
    assert (stats["requests"], stats["rate_limited"]) == (requests_sent, len(throttled))
    if elapsed < 1.0:
        assert stats["max_requests_in_1s"] == requests_sent
    assert carrier.simulator.call_count(carrier.name, carrier.read_op, carrier.key) == requests_sent
    assert other.status_code == 200  # the limit is per account


@pytest.mark.parametrize(
    ("carrier", "limit", "code", "message"),
    [
        pytest.param(
            "telegence",
            1,
            "errorDescription",
            "Rate limit of 1 requests/s exceeded for app pondops-app",
            id="telegence-1-a-second",
        ),
        pytest.param(
            "teal",
            3,
            "GENERIC_ERROR",
            "Rate limit of 0.05 requests/s exceeded for Teal account teal-key-acme",
            id="teal-3-a-minute",
        ),
    ],
    indirect=["carrier"],
)
def test_past_the_rate_limit_a_call_is_429_with_retry_after_and_other_accounts_pass(
    carrier: Simulated, limit: int, code: str, message: str
) -> None:
    carrier.limit(limit)

    answers = [carrier.read() for _ in range(limit + 1)]

    assert [answer.status_code for answer in answers] == [200] * limit + [429]
    assert carrier.error(answers[-1], 429, code) == message
    assert answers[-1].headers["Retry-After"] == "1"
    assert carrier.simulator.stats()[carrier.name]["rate_limited"] == 1
    assert carrier.read_other().status_code == 200  # the limit is per account
