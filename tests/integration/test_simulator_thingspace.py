"""The ThingSpace simulator speaks docs/carriers/thingspace.md over real HTTP.

These tests are its specification: the two-token login (the same access token within the
hour, a session that expires after inactivity), asynchronous requests that complete after a
delay (or never), transitions and injected failures, the callback listeners and the
CarrierService callbacks sent (and re-sent) to them, token revocation mid-run, counters,
faults and the per-account rate limit — what a client sees on the wire, and what the
``/_sim/thingspace`` control API lets a test arrange and observe.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from integrations.simulators.control import SimulatorControl, SimulatorControlError
from tests.conftest import wait_for
from tests.fixtures.callback_listener import CallbackListener
from tests.fixtures.simulator_http import Caller, assert_thingspace_error

ACCOUNT = "0000123456-00001"
OTHER_ACCOUNT = "0000999999-00001"
CLIENT_KEY = "ts-key-sim"
CLIENT_SECRET = "ts-secret-sim"
UWS_USER = "uws-sim"
UWS_PASSWORD = "uws-password-sim"
ICCID = "89148000000000000001"
SUSPENDED_ICCID = "89148000000000000002"
DEACTIVATED_ICCID = "89148000000000000003"
PREACTIVE_ICCID = "89148000000000000004"
UNKNOWN_ICCID = "89148000000000009999"
IMEI = "990013907835573"
EXPIRED = "UnifiedWebService.REQUEST_FAILED.SessionToken.Expired"
NOT_FOUND = "UnifiedWebService.REQUEST_FAILED.DeviceNotFound"
ALREADY_ACTIVE = "UnifiedWebService.REQUEST_FAILED.DeviceAlreadyActive"
CALLBACKS = f"/api/m2m/v1/callbacks/{ACCOUNT}"
TOKEN_PATH = "/api/ts/v1/oauth2/token"
LOGIN_PATH = "/api/m2m/v1/session/login"
ACTIONS = "/api/m2m/v1/devices/actions"


def basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


def device(iccid: str, imei: str = "") -> dict[str, Any]:
    ids = [{"kind": "imei", "id": imei}] if imei else []
    return {"deviceIds": [*ids, {"kind": "iccid", "id": iccid}]}


@dataclass
class ThingSpace(Caller):
    """A bare HTTP caller for the ThingSpace base_url, as a client would hold it; after
    :meth:`log_in` its headers are the two tokens."""

    account: str = ACCOUNT

    def token(self, key: str = CLIENT_KEY, secret: str = CLIENT_SECRET) -> requests.Response:
        return self.session.post(
            self.root + TOKEN_PATH,
            data="grant_type=client_credentials",
            headers={
                "Authorization": basic(key, secret),
                "Content-Type": "application/x-www-form-urlencoded",
            },
            timeout=5,
        )

    def login(
        self, access_token: str, username: str = UWS_USER, password: str = UWS_PASSWORD
    ) -> requests.Response:
        return self.session.post(
            self.root + LOGIN_PATH,
            json={"username": username, "password": password},
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=5,
        )

    def log_in(
        self,
        key: str = CLIENT_KEY,
        secret: str = CLIENT_SECRET,
        username: str = UWS_USER,
        password: str = UWS_PASSWORD,
    ) -> dict[str, str]:
        access_token = self.token(key, secret).json()["access_token"]
        session = self.login(access_token, username=username, password=password)
        session_token = session.json()["sessionToken"]
        self.headers = {"Authorization": f"Bearer {access_token}", "VZ-M2M-Token": session_token}
        return self.headers

    def submit(
        self, action: str, iccid: str = ICCID, *, imei: str = "", **fields: Any
    ) -> requests.Response:
        body = {"accountName": self.account, "devices": [device(iccid, imei)], **fields}
        return self.post(f"{ACTIONS}/{action}", json=body)

    def status(self, request_id: str) -> requests.Response:
        return self.get(f"/api/m2m/v1/accounts/{self.account}/requests/{request_id}/status")

    def state(self, iccid: str = ICCID) -> requests.Response:
        body = {"accountName": self.account, "deviceId": {"kind": "iccid", "id": iccid}}
        return self.post(f"{ACTIONS}/list", json=body)


@pytest.fixture
def ts(simulator: SimulatorControl) -> Iterator[ThingSpace]:
    simulator.add_thingspace_account(
        account_name=ACCOUNT,
        client_key=CLIENT_KEY,
        client_secret=CLIENT_SECRET,
        username=UWS_USER,
        password=UWS_PASSWORD,
    )
    simulator.seed_thingspace_devices(
        account_name=ACCOUNT,
        devices=[
            {"iccid": ICCID, "state": "active", "service_plan": "M2M-5GB"},
            {"iccid": SUSPENDED_ICCID, "state": "suspended"},
            {"iccid": DEACTIVATED_ICCID, "state": "deactivated", "imei": IMEI},
            {"iccid": PREACTIVE_ICCID, "state": "preactive"},
        ],
    )
    with ThingSpace(simulator.thingspace_base_url) as carrier:
        carrier.log_in()
        yield carrier


def completed(ts: ThingSpace, request_id: str) -> dict[str, Any] | None:
    body = ts.status(request_id).json()
    return None if body["status"] == "Pending" else dict(body)


# -- authentication ------------------------------------------------------------------------


def test_oauth_token_is_issued_for_the_client_key_and_secret(ts: ThingSpace) -> None:
    response = ts.token()

    assert response.status_code == 200
    body = response.json()
    assert set(body) >= {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert 3590 < body["expires_in"] <= 3600  # the fixture's token, a moment older


def test_the_token_call_answers_the_same_token_within_its_hour(ts: ThingSpace) -> None:
    first, again = ts.token().json(), ts.token().json()

    assert again["access_token"] == first["access_token"]
    assert 0 < again["expires_in"] <= 3600


@pytest.mark.parametrize(("key", "secret"), [(CLIENT_KEY, "wrong"), ("unknown-key", CLIENT_SECRET)])
def test_a_wrong_client_key_or_secret_is_401(ts: ThingSpace, key: str, secret: str) -> None:
    response = ts.token(key, secret)

    message = assert_thingspace_error(response, 401, "UnauthorizedAccess")
    assert message == "Invalid client key or secret"
    assert "wrong" not in response.text


def test_the_token_call_needs_the_client_credentials_grant(ts: ThingSpace) -> None:
    response = ts.session.post(
        ts.root + TOKEN_PATH,
        data="grant_type=password",
        headers={"Authorization": basic(CLIENT_KEY, CLIENT_SECRET)},
        timeout=5,
    )

    assert_thingspace_error(response, 400, "REQUEST_FAILED.BadRequest")


def test_session_login_needs_a_valid_access_token_and_the_uws_password(ts: ThingSpace) -> None:
    access_token = ts.token().json()["access_token"]

    assert_thingspace_error(ts.login("not-a-token"), 401, "UnauthorizedAccess")
    assert_thingspace_error(ts.login(access_token, password="wrong"), 401, "UnauthorizedAccess")
    response = ts.login(access_token)
    assert response.status_code == 200
    assert response.json()["sessionToken"].startswith("ts-session-")


def test_five_wrong_passwords_in_a_row_lock_the_uws_user_until_the_account_is_added_again(
    ts: ThingSpace, simulator: SimulatorControl
) -> None:
    access_token = ts.token().json()["access_token"]
    for _ in range(5):
        assert ts.login(access_token, password="wrong").status_code == 401

    locked = ts.login(access_token)
    assert "is locked" in assert_thingspace_error(locked, 401, "UnauthorizedAccess")

    simulator.add_thingspace_account(
        account_name=ACCOUNT,
        client_key=CLIENT_KEY,
        client_secret=CLIENT_SECRET,
        username=UWS_USER,
        password=UWS_PASSWORD,
    )
    assert ts.login(access_token).status_code == 200


def test_a_good_login_resets_the_wrong_password_count(ts: ThingSpace) -> None:
    access_token = ts.token().json()["access_token"]
    for _ in range(4):
        ts.login(access_token, password="wrong")
    assert ts.login(access_token).status_code == 200
    for _ in range(4):
        ts.login(access_token, password="wrong")

    assert ts.login(access_token).status_code == 200


@pytest.mark.parametrize(
    ("missing", "status", "code"),
    [
        ("Authorization", 401, "UnauthorizedAccess"),
        ("VZ-M2M-Token", 400, "UnifiedWebService.INPUT_INVALID.SessionToken.Format"),
    ],
)
def test_device_calls_need_both_tokens(
    ts: ThingSpace, missing: str, status: int, code: str
) -> None:
    ts.headers.pop(missing)

    assert_thingspace_error(ts.state(), status, code)


def test_an_unknown_session_token_is_400_session_token_invalid(ts: ThingSpace) -> None:
    ts.headers["VZ-M2M-Token"] = "ts-session-made-up"

    message = assert_thingspace_error(
        ts.state(), 400, "UnifiedWebService.REQUEST_FAILED.SessionToken.Invalid"
    )
    assert message == "Session token is not valid"


def test_a_session_idle_for_its_inactivity_expires_as_400_session_token_expired(
    ts: ThingSpace, simulator: SimulatorControl
) -> None:
    simulator.set_thingspace_config(session_inactivity_seconds=0.2)
    ts.log_in()

    wait_for(lambda: ts.state().status_code == 400, timeout=5, interval=0.3)

    assert assert_thingspace_error(ts.state(), 400, EXPIRED) == "Session token expired"
    ts.log_in()
    assert ts.state().status_code == 200


def test_every_call_extends_the_session_sliding(
    ts: ThingSpace, simulator: SimulatorControl
) -> None:
    simulator.set_thingspace_config(session_inactivity_seconds=0.5)
    ts.log_in()
    started = time.monotonic()

    statuses = []
    while time.monotonic() - started < 1.0:  # twice the inactivity, never idle for it
        statuses.append(ts.state().status_code)
        time.sleep(0.1)

    assert set(statuses) == {200}


def test_revoked_tokens_are_401_until_the_client_logs_in_again(
    ts: ThingSpace, simulator: SimulatorControl
) -> None:
    assert simulator.expire_thingspace_tokens()["revoked"] == 2

    assert_thingspace_error(ts.state(), 401, "UnauthorizedAccess")
    ts.log_in()
    assert ts.state().status_code == 200


def test_revoking_only_sessions_keeps_access_tokens_good_for_a_new_login(
    ts: ThingSpace, simulator: SimulatorControl
) -> None:
    access_token = ts.headers["Authorization"].removeprefix("Bearer ")
    simulator.expire_thingspace_tokens(kind="session")

    message = assert_thingspace_error(ts.state(), 400, EXPIRED)
    assert "Session" in message
    assert ts.login(access_token).status_code == 200


def test_tokens_can_be_revoked_after_a_number_of_device_calls(
    ts: ThingSpace, simulator: SimulatorControl
) -> None:
    simulator.expire_thingspace_tokens(after_requests=2)

    assert [ts.state().status_code for _ in range(3)] == [200, 200, 401]
    ts.log_in()
    assert ts.state().status_code == 200  # revoked once, not again


def test_access_tokens_expire_after_the_accounts_token_seconds(
    simulator: SimulatorControl,
) -> None:
    simulator.add_thingspace_account(
        account_name=ACCOUNT,
        client_key=CLIENT_KEY,
        client_secret=CLIENT_SECRET,
        username=UWS_USER,
        password=UWS_PASSWORD,
        token_seconds=1,
    )
    simulator.seed_thingspace_devices(account_name=ACCOUNT, devices=[{"iccid": ICCID}])
    ts = ThingSpace(simulator.thingspace_base_url)
    ts.log_in()

    assert ts.token().json()["expires_in"] == 1
    assert ts.state().status_code == 200
    wait_for(lambda: ts.state().status_code == 401, timeout=5, interval=0.02)


# -- asynchronous actions ------------------------------------------------------------------


def test_suspend_is_accepted_pending_then_succeeds_and_the_state_changes(
    ts: ThingSpace, simulator: SimulatorControl
) -> None:
    response = ts.submit("suspend")

    assert response.status_code == 202
    request_id = response.json()["requestId"]
    assert ts.status(request_id).json() == {"requestId": request_id, "status": "Pending"}
    assert ts.state().json()["devices"][0]["carrierInformations"][0]["state"] == "active"
    assert wait_for(lambda: completed(ts, request_id), timeout=5, interval=0.02)["status"] == (
        "Success"
    )
    assert ts.status(request_id).json() == {"requestId": request_id, "status": "Success"}
    assert ts.state().json() == {
        "devices": [
            {
                "accountName": ACCOUNT,
                "deviceIds": [{"kind": "iccid", "id": ICCID}],
                "carrierInformations": [
                    {
                        "carrierName": "Verizon Wireless",
                        "servicePlan": "M2M-5GB",
                        "state": "suspended",
                    }
                ],
                "connected": False,
            }
        ],
        "hasMoreData": False,
    }
    assert simulator.thingspace_device(ICCID)["requests"] == [
        {
            "requestId": request_id,
            "action": "suspend",
            "fields": {},
            "status": "Success",
            "error": None,
        }
    ]


@pytest.mark.parametrize(
    ("iccid", "action", "fields", "state", "imei"),
    [
        pytest.param(SUSPENDED_ICCID, "restore", {}, "active", "", id="restore"),
        pytest.param(
            ICCID,
            "deactivate",
            {"reasonCode": "FF", "etfWaiver": True},
            "deactivated",
            "",
            id="deact",
        ),
        pytest.param(
            SUSPENDED_ICCID,
            "deactivate",
            {"reasonCode": "FF", "etfWaiver": False},
            "deactivated",
            "",
            id="deactivate-suspended",
        ),
        pytest.param(
            DEACTIVATED_ICCID,
            "activate",
            {"servicePlan": "M2M-10GB", "mdnZipCode": "10001"},
            "active",
            IMEI,
            id="activate-deactivated-with-imei",
        ),
        pytest.param(
            PREACTIVE_ICCID,
            "activate",
            {"servicePlan": "M2M-10GB", "mdnZipCode": "10001", "skuNumber": "SKU-4G-1"},
            "active",
            "",
            id="activate-preactive-with-sku",
        ),
    ],
)
def test_each_action_moves_the_device_from_the_states_it_is_allowed_from(
    ts: ThingSpace,
    simulator: SimulatorControl,
    iccid: str,
    action: str,
    fields: dict[str, Any],
    state: str,
    imei: str,
) -> None:
    simulator.set_thingspace_completion_delay(0)

    request_id = ts.submit(action, iccid, imei=imei, **fields).json()["requestId"]

    assert ts.status(request_id).json()["status"] == "Success"
    shown = simulator.thingspace_device(iccid)
    assert shown["state"] == state
    assert shown["requests"][-1]["fields"] == ({**fields, "imei": imei} if imei else fields)
    if action == "activate":
        assert (shown["service_plan"], shown["mdn_zip_code"]) == ("M2M-10GB", "10001")


@pytest.mark.parametrize(
    ("iccid", "action", "fields", "error"),
    [
        pytest.param(
            DEACTIVATED_ICCID,
            "suspend",
            {},
            f"Device {DEACTIVATED_ICCID} is deactivated; suspend is not allowed",
            id="suspend-deactivated",
        ),
        pytest.param(
            ICCID, "restore", {}, f"Device {ICCID} is active; restore is not allowed", id="restore"
        ),
    ],
)
def test_an_action_not_allowed_from_the_devices_state_fails_with_the_devices_error(
    ts: ThingSpace,
    simulator: SimulatorControl,
    iccid: str,
    action: str,
    fields: dict[str, Any],
    error: str,
) -> None:
    simulator.set_thingspace_completion_delay(0)
    before = simulator.thingspace_device(iccid)["state"]

    response = ts.submit(action, iccid, **fields)

    assert response.status_code == 202  # accepted: the failure comes with the outcome
    request_id = response.json()["requestId"]
    assert ts.status(request_id).json() == {"requestId": request_id, "status": "Failed"}
    shown = simulator.thingspace_device(iccid)
    assert shown["state"] == before
    assert shown["requests"][-1]["error"] == error  # told only by the CarrierService callback


def test_activating_an_active_device_is_400_device_already_active(ts: ThingSpace) -> None:
    response = ts.submit("activate", imei=IMEI, servicePlan="M2M", mdnZipCode="10001")

    assert assert_thingspace_error(response, 400, ALREADY_ACTIVE) == (
        f"Device {ICCID} is already active"
    )


def test_an_injected_failure_fails_the_devices_requests_until_cleared(
    ts: ThingSpace, simulator: SimulatorControl
) -> None:
    simulator.set_thingspace_completion_delay(0)
    simulator.fail_thingspace_requests(iccid=ICCID, error="Line is under port-out")

    failed = ts.status(ts.submit("suspend").json()["requestId"]).json()
    simulator.fail_thingspace_requests(iccid=ICCID, error=None)
    succeeded = ts.status(ts.submit("suspend").json()["requestId"]).json()

    assert failed["status"] == "Failed"
    assert succeeded["status"] == "Success"
    errors = [entry["error"] for entry in simulator.thingspace_device(ICCID)["requests"]]
    assert errors == ["Line is under port-out", None]


def test_requests_never_complete_until_the_delay_is_lowered(
    ts: ThingSpace, simulator: SimulatorControl
) -> None:
    assert simulator.set_thingspace_completion_delay(None)["completion_delay_ms"] is None
    request_id = ts.submit("suspend").json()["requestId"]
    time.sleep(0.4)  # longer than the default delay: only "never" keeps it pending
    assert ts.status(request_id).json()["status"] == "Pending"

    simulator.set_thingspace_completion_delay(0)

    assert ts.status(request_id).json()["status"] == "Success"
    assert simulator.thingspace_device(ICCID)["state"] == "suspended"


def test_every_submit_creates_a_request_even_with_the_same_idempotency_key(
    ts: ThingSpace, simulator: SimulatorControl
) -> None:
    simulator.set_thingspace_completion_delay(None)
    headers = {"Idempotency-Key": "pondops-1-submit"}
    body = {"accountName": ACCOUNT, "devices": [device(ICCID)]}

    first = ts.post(f"{ACTIONS}/suspend", json=body, headers=headers).json()["requestId"]
    second = ts.post(f"{ACTIONS}/suspend", json=body, headers=headers).json()["requestId"]

    assert first != second
    assert len(simulator.thingspace_device(ICCID)["requests"]) == 2


# -- errors --------------------------------------------------------------------------------


def test_an_unknown_device_is_listed_as_no_device_and_refused_as_400_device_not_found(
    ts: ThingSpace,
) -> None:
    listed = ts.state(UNKNOWN_ICCID)
    submitted = ts.submit("suspend", UNKNOWN_ICCID)

    assert (listed.status_code, listed.json()) == (200, {"hasMoreData": False, "devices": []})
    message = assert_thingspace_error(submitted, 400, NOT_FOUND)
    assert message == f"Device {UNKNOWN_ICCID} not found in account {ACCOUNT}"


def test_another_accounts_devices_and_requests_are_invisible(
    ts: ThingSpace, simulator: SimulatorControl
) -> None:
    simulator.add_thingspace_account(
        account_name=OTHER_ACCOUNT,
        client_key="other-key",
        client_secret="other-secret",
        username="other-user",
        password="other-password",
    )
    simulator.seed_thingspace_devices(
        account_name=OTHER_ACCOUNT, devices=[{"iccid": UNKNOWN_ICCID}]
    )
    request_id = ts.submit("suspend").json()["requestId"]
    other = ThingSpace(ts.root, account=OTHER_ACCOUNT)
    other.log_in("other-key", "other-secret", "other-user", "other-password")

    assert other.state(ICCID).json()["devices"] == []
    assert_thingspace_error(other.submit("suspend", ICCID), 400, NOT_FOUND)
    assert_thingspace_error(
        other.status(request_id), 400, "UnifiedWebService.REQUEST_FAILED.RequestNotFound"
    )
    assert other.state(UNKNOWN_ICCID).json()["devices"] != []


def test_an_account_name_other_than_the_sessions_is_403(ts: ThingSpace) -> None:
    ts.account = OTHER_ACCOUNT

    for response in (ts.state(), ts.submit("suspend"), ts.status("any-request")):
        message = assert_thingspace_error(response, 403, "REQUEST_FAILED.Forbidden")
        assert message == f"Session is not authorized for account {OTHER_ACCOUNT}"


@pytest.mark.parametrize(
    ("action", "body", "message"),
    [
        pytest.param(
            "deactivate",
            {"etfWaiver": True},
            "reasonCode is required",
            id="deactivate-without-reason",
        ),
        pytest.param(
            "deactivate",
            {"reasonCode": "FF", "etfWaiver": "yes"},
            "etfWaiver must be true or false",
            id="deactivate-etf-not-bool",
        ),
        pytest.param(
            "activate", {"mdnZipCode": "10001"}, "servicePlan is required", id="activate-no-plan"
        ),
        pytest.param(
            "activate", {"servicePlan": "M2M"}, "mdnZipCode is required", id="activate-no-zip"
        ),
        pytest.param(
            "activate",
            {"servicePlan": "M2M", "mdnZipCode": "1001"},
            "mdnZipCode must be a 5-digit ZIP code",
            id="activate-short-zip",
        ),
        pytest.param(
            "activate",
            {"servicePlan": "M2M", "mdnZipCode": "10001"},
            "activate needs the device's IMEI with its ICCID, or a skuNumber",
            id="activate-without-imei-or-sku",
        ),
        pytest.param("delete", {}, "Unknown action 'delete'", id="unknown-action"),
    ],
)
def test_malformed_actions_are_400(
    ts: ThingSpace, action: str, body: dict[str, Any], message: str
) -> None:
    response = ts.submit(action, **body)

    assert assert_thingspace_error(response, 400, "REQUEST_FAILED.BadRequest") == message


def test_a_device_without_an_iccid_id_is_400(ts: ThingSpace) -> None:
    body = {"accountName": ACCOUNT, "devices": [{"deviceIds": [{"kind": "imei", "id": "35"}]}]}

    response = ts.post(f"{ACTIONS}/suspend", json=body)

    message = assert_thingspace_error(response, 400, "REQUEST_FAILED.BadRequest")
    assert message == "each device needs an iccid device id"


def test_a_request_takes_one_device(ts: ThingSpace) -> None:
    body = {"accountName": ACCOUNT, "devices": [device(ICCID), device(SUSPENDED_ICCID)]}

    response = ts.post(f"{ACTIONS}/suspend", json=body)

    assert "exactly one device" in assert_thingspace_error(
        response, 400, "REQUEST_FAILED.BadRequest"
    )


def test_device_id_kinds_are_read_without_case(ts: ThingSpace) -> None:
    body = {"accountName": ACCOUNT, "devices": [{"deviceIds": [{"kind": "ICCID", "id": ICCID}]}]}

    assert ts.post(f"{ACTIONS}/suspend", json=body).status_code == 202


def test_an_unknown_request_id_is_400(ts: ThingSpace) -> None:
    message = assert_thingspace_error(
        ts.status("no-such-request"), 400, "UnifiedWebService.REQUEST_FAILED.RequestNotFound"
    )

    assert message == "Request no-such-request not found"


# -- callbacks -----------------------------------------------------------------------------


def register(ts: ThingSpace, url: str, **credentials: str) -> requests.Response:
    body = {"name": "CarrierService", "url": url, **credentials}
    return ts.post(CALLBACKS, json=body)


def test_callback_listeners_are_listed_registered_and_deregistered(ts: ThingSpace) -> None:
    url = "https://pondops.example.com/carriers/thingspace/callbacks/7/"
    assert ts.get(CALLBACKS).json() == []

    registered = register(ts, url, username="cb-user", password="cb-password")
    listed = ts.get(CALLBACKS).json()
    removed = ts.request("DELETE", f"{CALLBACKS}/name/CarrierService")
    again = ts.request("DELETE", f"{CALLBACKS}/name/CarrierService")

    assert (registered.status_code, registered.json()) == (
        200,
        {"accountName": ACCOUNT, "serviceName": "CarrierService"},
    )
    assert listed == [{"accountName": ACCOUNT, "serviceName": "CarrierService", "url": url}]
    assert removed.json() == {"accountName": ACCOUNT, "serviceName": "CarrierService"}
    assert_thingspace_error(again, 400, "REQUEST_FAILED.BadRequest")
    assert ts.get(CALLBACKS).json() == []


def test_another_accounts_callbacks_are_403(ts: ThingSpace) -> None:
    response = ts.get(f"/api/m2m/v1/callbacks/{OTHER_ACCOUNT}")

    assert_thingspace_error(response, 403, "REQUEST_FAILED.Forbidden")


def test_a_completed_request_is_posted_to_the_carrier_service_listener_once_acknowledged(
    ts: ThingSpace, simulator: SimulatorControl, callback_listener: CallbackListener
) -> None:
    simulator.set_thingspace_completion_delay(50)
    register(ts, callback_listener.url + "cb/", username="cb-user", password="cb-password")

    request_id = ts.submit("suspend").json()["requestId"]  # nobody polls it

    [body] = wait_for(callback_listener.bodies, timeout=5, interval=0.02)
    assert body == {
        "username": "cb-user",
        "password": "cb-password",
        "requestId": request_id,
        "deviceIds": [{"id": ICCID, "kind": "iccid"}],
        "status": "Success",
        "deviceResponse": {"suspendResponse": {"deviceIds": [{"id": ICCID, "kind": "iccid"}]}},
        "callbackCount": 1,
        "maxCallbackThreshold": 4,
    }
    assert callback_listener.received[0].path == "/cb/"
    [delivery] = wait_for(
        lambda: [d for d in simulator.thingspace_callbacks()["deliveries"] if d["finished"]],
        timeout=5,
        interval=0.02,
    )
    assert (delivery["attempts"], delivery["acknowledged"]) == (1, True)


def test_a_failed_request_is_posted_with_its_fault_and_re_sent_until_acknowledged(
    ts: ThingSpace, simulator: SimulatorControl, callback_listener: CallbackListener
) -> None:
    simulator.set_thingspace_config(completion_delay_ms=0, callback_retry_seconds=0.05)
    register(ts, callback_listener.url, username="cb-user", password="cb-password")
    callback_listener.answer_next(500, 503)

    request_id = ts.submit("restore").json()["requestId"]  # the line is active

    bodies = wait_for(lambda: len(callback_listener.bodies()) == 3, timeout=5, interval=0.02)
    bodies = callback_listener.bodies()
    assert bodies and [body["callbackCount"] for body in bodies] == [1, 2, 3]
    assert {body["requestId"] for body in bodies} == {request_id}
    assert bodies[0]["status"] == "Failed"
    assert bodies[0]["faultResponse"] == {
        "faultcode": "UnifiedWebService.REQUEST_FAILED.InvalidStateTransition",
        "faultstring": f"Device {ICCID} is active; restore is not allowed",
    }
    assert "deviceResponse" not in bodies[0]


def test_an_unacknowledged_callback_is_given_up_after_its_attempts(
    ts: ThingSpace, simulator: SimulatorControl, callback_listener: CallbackListener
) -> None:
    simulator.set_thingspace_config(
        completion_delay_ms=0, callback_retry_seconds=0.02, callback_attempts=4
    )
    register(ts, callback_listener.url, username="u", password="p")
    callback_listener.answer_next(500, 500, 500, 500, 500)

    ts.submit("suspend")

    [delivery] = wait_for(
        lambda: [d for d in simulator.thingspace_callbacks()["deliveries"] if d["finished"]],
        timeout=5,
        interval=0.02,
    )
    assert (delivery["attempts"], delivery["statuses"], delivery["acknowledged"]) == (
        4,
        [500, 500, 500, 500],
        False,
    )
    assert [body["callbackCount"] for body in callback_listener.bodies()] == [1, 2, 3, 4]


def test_callbacks_go_to_loopback_urls_only(ts: ThingSpace, simulator: SimulatorControl) -> None:
    simulator.set_thingspace_completion_delay(0)
    register(ts, "https://pondops.example.com/cb/", username="u", password="p")

    ts.submit("suspend")

    [delivery] = wait_for(
        lambda: simulator.thingspace_callbacks()["deliveries"], timeout=5, interval=0.02
    )
    assert delivery["finished"] and delivery["statuses"] == [
        "not sent: only loopback URLs are called"
    ]


# -- faults, counters, rate limit ----------------------------------------------------------


def test_faults_answer_in_thingspace_shapes(ts: ThingSpace, simulator: SimulatorControl) -> None:
    simulator.add_fault("thingspace", "submit_action", key=ICCID, status=503, retry_after=5)
    simulator.add_fault("thingspace", "request_status", kind="html", status=502)
    simulator.add_fault("thingspace", "oauth_token", kind="empty", status=500)

    unavailable = ts.submit("suspend")
    request_id = ts.submit("suspend").json()["requestId"]
    gateway = ts.status(request_id)
    empty = ts.token()

    assert assert_thingspace_error(unavailable, 503, "REQUEST_FAILED.UnexpectedError") == (
        "Simulated fault: 503 Service Unavailable"
    )
    assert unavailable.headers["Retry-After"] == "5"
    assert gateway.status_code == 502
    assert "<title>502 Bad Gateway</title>" in gateway.text
    assert (empty.status_code, empty.content) == (500, b"")


def test_calls_are_counted_per_op_and_key(ts: ThingSpace, simulator: SimulatorControl) -> None:
    simulator.set_thingspace_completion_delay(0)
    request_id = ts.submit("suspend").json()["requestId"]
    ts.status(request_id)
    ts.status(request_id)
    ts.state(SUSPENDED_ICCID)
    ts.token("unknown-key", "x")

    assert simulator.calls()["thingspace"] == {
        "oauth_token": {ACCOUNT: 1, "": 1},  # the fixture's login, then an unknown key
        "session_login": {ACCOUNT: 1},
        "submit_action": {ICCID: 1},
        "request_status": {ICCID: 2},
        "list_devices": {SUSPENDED_ICCID: 1},
    }
    assert simulator.call_count("thingspace", "oauth_token") == 2


def test_the_rate_limit_is_per_account_with_retry_after(simulator: SimulatorControl) -> None:
    for name, key in ((ACCOUNT, CLIENT_KEY), (OTHER_ACCOUNT, "other-key")):
        simulator.add_thingspace_account(
            account_name=name,
            client_key=key,
            client_secret=CLIENT_SECRET,
            username=UWS_USER,
            password=UWS_PASSWORD,
            rate_limit=3,
        )
    limited = ThingSpace(simulator.thingspace_base_url)
    limited.log_in()  # two of the three requests this second

    first = limited.state(ICCID)
    throttled = limited.state(ICCID)
    other = ThingSpace(simulator.thingspace_base_url, account=OTHER_ACCOUNT)

    assert first.json()["devices"] == []  # counted against the limit, then answered
    assert assert_thingspace_error(throttled, 429, "REQUEST_FAILED.TooManyRequests").startswith(
        "Rate limit of 3 requests/s exceeded"
    )
    assert throttled.headers["Retry-After"] == "1"
    assert other.token("other-key", CLIENT_SECRET).status_code == 200


def test_reset_forgets_accounts_devices_tokens_and_config(
    ts: ThingSpace, simulator: SimulatorControl
) -> None:
    simulator.set_thingspace_completion_delay(None)

    simulator.reset()

    assert_thingspace_error(ts.state(), 401, "UnauthorizedAccess")
    with pytest.raises(SimulatorControlError, match="404"):
        simulator.thingspace_device(ICCID)
    assert simulator.set_thingspace_completion_delay(300) == {
        "completion_delay_ms": 300,
        "session_inactivity_seconds": 1200,
        "callback_retry_seconds": 300.0,
        "callback_attempts": 4,
    }
    assert simulator.thingspace_callbacks() == {"listeners": [], "deliveries": []}


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda s: s.set_thingspace_completion_delay(-1), id="negative-delay"),
        pytest.param(lambda s: s.expire_thingspace_tokens(kind="refresh"), id="unknown-kind"),
        pytest.param(
            lambda s: s.seed_thingspace_devices(account_name="nobody", devices=[]),
            id="unknown-account",
        ),
        pytest.param(
            lambda s: s.seed_thingspace_devices(
                account_name=ACCOUNT, devices=[{"iccid": ICCID, "state": "lost"}]
            ),
            id="unknown-state",
        ),
        pytest.param(lambda s: s.fail_thingspace_requests(iccid=ICCID, error=""), id="blank"),
        pytest.param(
            lambda s: s.set_thingspace_config(session_inactivity_seconds=0), id="zero-session"
        ),
        pytest.param(lambda s: s.set_thingspace_config(callback_attempts=0), id="no-attempts"),
        pytest.param(lambda s: s.set_thingspace_config(), id="no-knob"),
    ],
)
def test_control_calls_refuse_what_the_simulator_cannot_honour(
    ts: ThingSpace, simulator: SimulatorControl, call: Callable[[SimulatorControl], Any]
) -> None:
    with pytest.raises(SimulatorControlError, match="400"):
        call(simulator)
