"""Every carrier client against its contract (docs/carriers/*.md): each goes through the one
CarrierHttp — the throttle once per call, one audit record per call — and each of its main
operations sends exactly the contract's requests: method, URL, headers in wire order, body.

The mechanism itself (errors, Retry-After, redaction, …) is tested once, in test_http.py; what
each carrier parses out of its answers is tested in its own file.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses

from integrations.base import CallRecord, CarrierClient, CarrierHttp, Credentials, MemoryTokenStore
from integrations.jasper import JasperClient
from integrations.pond import Package, PondClient, SimStatus
from integrations.rev import RevClient
from integrations.teal import TealClient
from integrations.telegence import TelegenceClient
from integrations.thingspace import ThingSpaceClient
from tests.unit.integrations.rev_support import PRODUCT_BODY as REV_PRODUCT
from tests.unit.integrations.rev_support import SERVICE_BODY as REV_SERVICE
from tests.unit.integrations.support import RecordingThrottle, sent

ICCID = "89148000000000000001"
MSISDN = "2145550100"
EID = "89049032000000000000000000000001"
REQUEST_ID = "3f0c4a52-52f8-4f6e-9a4b-2d9f1d7e0c11"
SESSION_HEADERS = ("User-Agent", "Accept-Encoding", "Connection")  # the session's own, not ours
JSON = ("Content-Type", "application/json")
ACCEPT = ("Accept", "application/json")

POND = Credentials(
    integration_authentication_id=1,
    integration="POND",
    base_url="https://pond.example.test/ds/u/distributorPPUService/v1/",  # one "/" trimmed
    account="4242",
    secret="pond-key-Zx81q0",
)
JASPER = Credentials(
    integration_authentication_id=2,
    integration="JASPER",
    base_url="https://jasper.example.test",
    username="ops-api",
    secret="jasper-key-Q7w2e9Lk",
)
TELEGENCE = Credentials(
    integration_authentication_id=3,
    integration="TELEGENCE",
    base_url="https://telegence.example.test/att",
    account="287654321",
    username="pondops-app-7",
    secret="tg-secret-Qw81zz",
)
TEAL = Credentials(
    integration_authentication_id=4,
    integration="TEAL",
    base_url="https://teal.example.test",
    account="Acme fleet",
    username="teal-key-acme",
    secret="teal-secret-Qv93xk",
    callback_url="https://pondops.example.test/carriers/teal/callbacks/4/?token=cb-token-Zq81x",
    callback_token="cb-token-Zq81x",
)
THINGSPACE = Credentials(
    integration_authentication_id=5,
    integration="THINGSPACE",
    base_url="https://thingspace.example.test",
    account="0000123456-00001",
    client_id="ts-client-key-4412",
    secret="ts-client-secret-Qw93",
    username="pondops-uws",
    secret_2="uws-password-Lk27",
)
REV = Credentials(
    integration_authentication_id=6,
    integration="REV",
    base_url="https://rev.example.test/api",
    account="acme",
    username="api-user",
    secret="rev-pass-Qw93kd",
    secret_2="rev-apim-key-7Hq2",
)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def body(value: Any) -> bytes:
    """A JSON body as the clients send it."""
    return json.dumps(value).encode()


def length(content: bytes) -> tuple[str, str]:
    return ("Content-Length", str(len(content)))


@dataclass(frozen=True)
class Sent:
    """One request the operation must send, and the answer it gets."""

    description: str
    method: str
    url: str
    headers: list[tuple[str, str]]  # in wire order, without SESSION_HEADERS
    audit: str  # the request as its audit record shows it
    content: bytes | None = None
    answer: dict[str, Any] = field(default_factory=lambda: {"json": {}})


@dataclass(frozen=True)
class Case:
    client: Callable[..., CarrierClient]  # called with on_call and throttle
    operation: Callable[[Any], Any]
    sent: tuple[Sent, ...]
    returns: Any = None
    carrier: str = ""


def thingspace_with_tokens(**kwargs: Any) -> ThingSpaceClient:
    store = MemoryTokenStore()
    store.set("thingspace:5:access_token", "access-0", ttl=600)
    store.set("thingspace:5:session_token", "session-0", ttl=600)
    return ThingSpaceClient(credentials=THINGSPACE, token_store=store, timeouts=(1, 1), **kwargs)


def client_of(credentials: Credentials, cls: type[CarrierClient]) -> Callable[..., CarrierClient]:
    return lambda **kwargs: cls(credentials=credentials, timeouts=(1, 1), **kwargs)


POND_PATH = "/ds/u/distributorPPUService/v1/4242"
POND_ROOT = f"https://pond.example.test{POND_PATH}"
POND_KEY = ("x-api-key", "pond-key-Zx81q0")
POND_SIM = dict.fromkeys(
    ("sim_data_service_status", "sim_voice_service_status", "sim_sms_service_status"), "DISABLED"
)
POND_PACKAGE_ID = "6f1c2e0a-3b1d-4c47-9a55-1f0e8d2b7c10"
POND_SECOND_ID = "0b8e5a52-9d7c-4f0e-8c1a-3e6f2d9b4a71"


def pond_package(package_id: str, status: str) -> dict[str, Any]:
    return {"package_id": package_id, "sim_iccid": ICCID, "status": status, "package_type_id": 12}


def pond_page(offset: int, elements: list[dict[str, Any]]) -> Sent:
    """One page of a SIM's package list (3 packages in all, at most 2 a page)."""
    query = f"offset={offset}&count=100"
    return Sent(
        "List POND SIM packages",
        "GET",
        f"{POND_ROOT}/sim/{ICCID}/package/infos?{query}",
        [ACCEPT, POND_KEY, ("RequestId", "req-1")],
        f"GET {POND_PATH}/sim/{ICCID}/package/infos?{query}\n"
        "x-api-key: [REDACTED]\nAccept: application/json\nRequestId: req-1",
        answer={"json": {"total": 3, "offset": offset, "count": 2, "elements": elements}},
    )


JASPER_DEVICE = f"https://jasper.example.test/rws/api/v1/devices/{ICCID}"
JASPER_BASIC = basic("ops-api", "jasper-key-Q7w2e9Lk")
TELEGENCE_LINE = (
    f"https://telegence.example.test/att/sp/mobility/lineconfig/api/v1/service/{MSISDN}"
)
TELEGENCE_PATH = f"/att/sp/mobility/lineconfig/api/v1/service/{MSISDN}"
TELEGENCE_CHANGE = {
    "effectiveDate": "2026-11-22",
    "serviceCharacteristic": [
        {"name": "subscriberStatus", "value": "S"},
        {"name": "reasonCode", "value": "CR"},
    ],
}
TELEGENCE_RECORD = {
    "subscriberNumber": MSISDN,
    "status": "Active",
    "serviceCharacteristic": [{"name": "subscriberStatus", "value": "A"}],
}
TEAL_API = "https://teal.example.test/api/v1"
TEAL_REQUEST_ID = "3f0c4a5252f84f6e9a4b2d9f1d7e0c11"
TEAL_CALLBACK = (  # URL-encoded as a query parameter
    "https%3A%2F%2Fpondops.example.test%2Fcarriers%2Fteal%2Fcallbacks%2F4%2F%3Ftoken%3Dcb-token-Zq81x"
)
TEAL_CALLBACK_AUDIT = "https://pondops.example.test/carriers/teal/callbacks/4/?token=[REDACTED]"
TEAL_ACCEPTED = {"success": True, "link": {"operationResult": {"href": "https://x.test/"}}}
TS = "https://thingspace.example.test"
TS_LIST = {"accountName": "0000123456-00001", "deviceId": {"kind": "iccid", "id": ICCID}}
TS_SUSPEND = {
    "accountName": "0000123456-00001",
    "devices": [{"deviceIds": [{"kind": "iccid", "id": ICCID}]}],
}
TS_TOKENS = [("Authorization", "Bearer access-0"), ("VZ-M2M-Token", "session-0")]
TS_STATUS = f"{TS}/api/m2m/v1/accounts/0000123456-00001/requests/{REQUEST_ID}/status"
REV_BASIC = basic("api-user@acme", "rev-pass-Qw93kd")
REV_KEY = ("Ocp-Apim-Subscription-Key", "rev-apim-key-7Hq2")
REV_KEY_AUDIT = "Ocp-Apim-Subscription-Key: [REDACTED]\n"

CASES = {
    "pond-read-sim": Case(
        client_of(POND, PondClient),
        lambda client: client.read_sim(iccid=ICCID, request_id="req-1"),
        (
            Sent(
                "Read POND SIM status",
                "GET",
                f"{POND_ROOT}/sim/{ICCID}/status",
                [ACCEPT, POND_KEY, ("RequestId", "req-1")],
                f"GET {POND_PATH}/sim/{ICCID}/status\n"
                "x-api-key: [REDACTED]\nAccept: application/json\nRequestId: req-1",
                answer={
                    "json": {
                        "sim_data_service_status": "ENABLED",
                        "sim_voice_service_status": "ENABLED",
                        "sim_sms_service_status": "DISABLED",
                        "status_of_sim": "In-Service",
                        "status": "ACTIVE",
                    }
                },
            ),
        ),
        returns=SimStatus("ENABLED", "ENABLED", "DISABLED", "In-Service"),
        carrier="POND",
    ),
    "pond-set-sim-services": Case(
        client_of(POND, PondClient),
        lambda client: client.set_sim_services(
            iccid=ICCID,
            value="DISABLED",
            idempotency_key="pondops-7-carrier_status",
            request_id="req-1",
        ),
        (
            Sent(
                "Update POND SIM status",
                "POST",
                f"{POND_ROOT}/sim/{ICCID}/status",
                [
                    ACCEPT,
                    POND_KEY,
                    ("RequestId", "req-1"),
                    ("Idempotency-Key", "pondops-7-carrier_status"),
                    JSON,
                    length(body(POND_SIM)),
                ],
                f"POST {POND_PATH}/sim/{ICCID}/status\nx-api-key: [REDACTED]\n"
                "Accept: application/json\nRequestId: req-1\n"
                "Idempotency-Key: pondops-7-carrier_status\n"
                f"Content-Type: application/json\n\n{json.dumps(POND_SIM)}",
                content=body(POND_SIM),
                answer={"status": 204},
            ),
        ),
        carrier="POND",
    ),
    "pond-list-packages-every-page": Case(
        client_of(POND, PondClient),
        lambda client: client.list_packages(iccid=ICCID, request_id="req-1"),
        (
            pond_page(
                0,
                [  # POND may hold a page to fewer packages than asked
                    pond_package(POND_PACKAGE_ID, "ACTIVE"),
                    pond_package(POND_SECOND_ID, "TERMINATED"),
                ],
            ),
            pond_page(2, [{"package_id": "p-3", "status": "NOT_ACTIVE"}]),
        ),
        returns=[
            Package(POND_PACKAGE_ID, "ACTIVE", 12),
            Package(POND_SECOND_ID, "TERMINATED", 12),
            Package("p-3", "NOT_ACTIVE", None),
        ],
        carrier="POND",
    ),
    "pond-set-package-status": Case(
        client_of(POND, PondClient),
        lambda client: client.set_package_status(
            package_id=POND_PACKAGE_ID,
            value="NOT_ACTIVE",
            idempotency_key="k-1",
            request_id="req-1",
        ),
        (
            Sent(
                "Update POND package status",
                "POST",
                f"{POND_ROOT}/package/{POND_PACKAGE_ID}/status",
                [
                    ACCEPT,
                    POND_KEY,
                    ("RequestId", "req-1"),
                    ("Idempotency-Key", "k-1"),
                    JSON,
                    length(body({"package_status": "NOT_ACTIVE"})),
                ],
                f"POST {POND_PATH}/package/{POND_PACKAGE_ID}/status\nx-api-key: [REDACTED]\n"
                "Accept: application/json\nRequestId: req-1\nIdempotency-Key: k-1\n"
                'Content-Type: application/json\n\n{"package_status": "NOT_ACTIVE"}',
                content=body({"package_status": "NOT_ACTIVE"}),
                answer={"status": 204},
            ),
        ),
        carrier="POND",
    ),
    "jasper-get-device": Case(
        client_of(JASPER, JasperClient),
        lambda client: client.get_device(iccid=ICCID),
        (
            Sent(
                "Read Jasper device",
                "GET",
                JASPER_DEVICE,
                [ACCEPT, ("Authorization", JASPER_BASIC)],
                f"GET /rws/api/v1/devices/{ICCID}\nAccept: application/json",
                answer={"json": {"iccid": ICCID, "status": "ACTIVATED"}},
            ),
        ),
        returns={"iccid": ICCID, "status": "ACTIVATED"},
        carrier="Jasper",
    ),
    "jasper-set-status": Case(
        client_of(JASPER, JasperClient),
        lambda client: (
            client.set_status(
                iccid=ICCID, status="DEACTIVATED", idempotency_key="pondops-9-submit"
            ).confirmed
        ),
        (
            Sent(
                "Update Jasper device status",
                "PUT",
                JASPER_DEVICE,
                [
                    ACCEPT,
                    ("Idempotency-Key", "pondops-9-submit"),
                    JSON,
                    length(body({"status": "DEACTIVATED"})),
                    ("Authorization", JASPER_BASIC),
                ],
                f"PUT /rws/api/v1/devices/{ICCID}\nAccept: application/json\n"
                "Idempotency-Key: pondops-9-submit\nContent-Type: application/json\n\n"
                '{"status": "DEACTIVATED"}',
                content=body({"status": "DEACTIVATED"}),
                answer={"json": {"iccid": ICCID}},
            ),
        ),
        returns=True,
        carrier="Jasper",
    ),
    "telegence-read-line": Case(
        client_of(TELEGENCE, TelegenceClient),
        lambda client: client.read_line(msisdn=MSISDN).target,
        (
            Sent(
                "Read Telegence line",
                "GET",
                TELEGENCE_LINE,
                [ACCEPT, ("app-id", "pondops-app-7"), ("app-secret", "tg-secret-Qw81zz")],
                f"GET {TELEGENCE_PATH}\napp-id: pondops-app-7\n"
                "app-secret: [REDACTED]\nAccept: application/json",
                answer={"json": TELEGENCE_RECORD},
            ),
        ),
        returns="Active",
        carrier="Telegence",
    ),
    "telegence-change-status": Case(
        client_of(TELEGENCE, TelegenceClient),
        lambda client: client.change_status(
            msisdn=MSISDN,
            subscriber_status="S",
            reason_code="CR",
            effective_date=date(2026, 11, 22),
            idempotency_key="pondops-77-submit",
        ),
        (
            Sent(
                "Change Telegence line status",
                "PATCH",
                TELEGENCE_LINE,
                [
                    ACCEPT,
                    ("app-id", "pondops-app-7"),
                    ("app-secret", "tg-secret-Qw81zz"),
                    ("Idempotency-Key", "pondops-77-submit"),
                    JSON,
                    length(body(TELEGENCE_CHANGE)),
                ],
                f"PATCH {TELEGENCE_PATH}\napp-id: pondops-app-7\n"
                "app-secret: [REDACTED]\nAccept: application/json\n"
                "Idempotency-Key: pondops-77-submit\nContent-Type: application/json\n\n"
                + json.dumps(TELEGENCE_CHANGE),
                content=body(TELEGENCE_CHANGE),
                answer={"json": TELEGENCE_RECORD},
            ),
        ),
        returns=TELEGENCE_RECORD,
        carrier="Telegence",
    ),
    "teal-change-state": Case(
        client_of(TEAL, TealClient),
        lambda client: (
            client.change_state(
                action="enable",
                eid=EID,
                request_id=TEAL_REQUEST_ID,
                callback_url=TEAL.callback_url,
            ).response_status
        ),
        (
            Sent(
                "Change Teal eSIM state",
                "POST",
                f"{TEAL_API}/esims/enable?requestId={TEAL_REQUEST_ID}&callbackUrl={TEAL_CALLBACK}",
                [
                    ACCEPT,
                    ("ApiKey", "teal-key-acme"),
                    ("ApiSecret", "teal-secret-Qv93xk"),
                    JSON,
                    length(body({"entries": [EID]})),
                ],
                f"POST /api/v1/esims/enable?requestId={TEAL_REQUEST_ID}"
                f"&callbackUrl={TEAL_CALLBACK_AUDIT}\n"
                "ApiKey: teal-key-acme\nApiSecret: [REDACTED]\nAccept: application/json\n"
                "Content-Type: application/json\n\n"
                f'{{"entries": ["{EID}"]}}',
                content=body({"entries": [EID]}),
                answer={"json": TEAL_ACCEPTED},
            ),
        ),
        returns=200,
        carrier="Teal",
    ),
    "teal-operation-result": Case(
        client_of(TEAL, TealClient),
        lambda client: client.operation_result(request_id=TEAL_REQUEST_ID).done,
        (
            Sent(
                "Read Teal operation result",
                "GET",
                f"{TEAL_API}/operation-result?requestId={TEAL_REQUEST_ID}",
                [ACCEPT, ("ApiKey", "teal-key-acme"), ("ApiSecret", "teal-secret-Qv93xk")],
                f"GET /api/v1/operation-result?requestId={TEAL_REQUEST_ID}\n"
                "ApiKey: teal-key-acme\nApiSecret: [REDACTED]\nAccept: application/json",
                answer={"json": {"success": True, "entries": []}},
            ),
        ),
        returns=True,
        carrier="Teal",
    ),
    "teal-request-info": Case(
        client_of(TEAL, TealClient),
        lambda client: (
            client.request_info(
                eid=EID, request_id=TEAL_REQUEST_ID, callback_url=TEAL.callback_url
            ).response_status
        ),
        (
            Sent(
                "Request Teal eSIM info",
                "GET",
                f"{TEAL_API}/esims/info?eid={EID}&limit=1&requestId={TEAL_REQUEST_ID}"
                f"&callbackUrl={TEAL_CALLBACK}",
                [ACCEPT, ("ApiKey", "teal-key-acme"), ("ApiSecret", "teal-secret-Qv93xk")],
                f"GET /api/v1/esims/info?eid={EID}&limit=1&requestId={TEAL_REQUEST_ID}"
                f"&callbackUrl={TEAL_CALLBACK_AUDIT}\n"
                "ApiKey: teal-key-acme\nApiSecret: [REDACTED]\nAccept: application/json",
                answer={"json": {"success": True}},
            ),
        ),
        returns=200,
        carrier="Teal",
    ),
    "thingspace-login-then-read-device": Case(
        client_of(THINGSPACE, ThingSpaceClient),
        lambda client: client.read_device(iccid=ICCID),
        (
            Sent(
                "Get ThingSpace OAuth token",
                "POST",
                f"{TS}/api/ts/v1/oauth2/token",
                [
                    ACCEPT,
                    ("Authorization", basic("ts-client-key-4412", "ts-client-secret-Qw93")),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    ("Content-Length", "29"),
                ],
                "POST /api/ts/v1/oauth2/token\nAuthorization: [REDACTED]\n"
                "Accept: application/json\nContent-Type: application/x-www-form-urlencoded\n\n"
                "grant_type=client_credentials",
                content=b"grant_type=client_credentials",
                answer={"json": {"access_token": "access-0", "expires_in": 3600}},
            ),
            Sent(
                "Start ThingSpace session",
                "POST",
                f"{TS}/api/m2m/v1/session/login",
                [
                    ACCEPT,
                    ("Authorization", "Bearer access-0"),
                    JSON,
                    length(body({"username": "pondops-uws", "password": "uws-password-Lk27"})),
                ],
                "POST /api/m2m/v1/session/login\nAuthorization: [REDACTED]\n"
                "Accept: application/json\nContent-Type: application/json\n\n"
                '{"username": "pondops-uws", "password": "[REDACTED]"}',
                content=body({"username": "pondops-uws", "password": "uws-password-Lk27"}),
                answer={"json": {"sessionToken": "session-0"}},
            ),
            Sent(
                "Read ThingSpace device",
                "POST",
                f"{TS}/api/m2m/v1/devices/actions/list",
                [ACCEPT, *TS_TOKENS, JSON, length(body(TS_LIST))],
                "POST /api/m2m/v1/devices/actions/list\nAuthorization: [REDACTED]\n"
                "VZ-M2M-Token: [REDACTED]\nAccept: application/json\n"
                f"Content-Type: application/json\n\n{json.dumps(TS_LIST)}",
                content=body(TS_LIST),
                answer={"json": {"devices": []}},
            ),
        ),
        returns=None,
        carrier="ThingSpace",
    ),
    "thingspace-submit-action": Case(
        thingspace_with_tokens,
        lambda client: client.submit_action(
            action="suspend",
            device_ids=[{"kind": "iccid", "id": ICCID}],
            idempotency_key="pondops-77-submit",
        ),
        (
            Sent(
                "Submit ThingSpace status change",
                "POST",
                f"{TS}/api/m2m/v1/devices/actions/suspend",
                [
                    ACCEPT,
                    *TS_TOKENS,
                    JSON,
                    ("Idempotency-Key", "pondops-77-submit"),
                    length(body(TS_SUSPEND)),
                ],
                "POST /api/m2m/v1/devices/actions/suspend\nAuthorization: [REDACTED]\n"
                "VZ-M2M-Token: [REDACTED]\nAccept: application/json\n"
                "Content-Type: application/json\nIdempotency-Key: pondops-77-submit\n\n"
                + json.dumps(TS_SUSPEND),
                content=body(TS_SUSPEND),
                answer={"status": 202, "json": {"requestId": REQUEST_ID}},
            ),
        ),
        returns=REQUEST_ID,
        carrier="ThingSpace",
    ),
    "thingspace-request-status": Case(
        thingspace_with_tokens,
        lambda client: client.request_status(request_id=REQUEST_ID).status,
        (
            Sent(
                "Check ThingSpace request status",
                "GET",
                TS_STATUS,
                [ACCEPT, *TS_TOKENS, JSON],
                f"GET /api/m2m/v1/accounts/0000123456-00001/requests/{REQUEST_ID}/status\n"
                "Authorization: [REDACTED]\nVZ-M2M-Token: [REDACTED]\nAccept: application/json\n"
                "Content-Type: application/json",
                answer={"json": {"requestId": REQUEST_ID, "status": "Pending"}},
            ),
        ),
        returns="Pending",
        carrier="ThingSpace",
    ),
    "rev-find-service": Case(
        client_of(REV, RevClient),
        lambda client: client.find_service(number=MSISDN, customer_id=42),
        (
            Sent(
                "Find Rev.io service",
                "GET",
                f"https://rev.example.test/api/v1/Services?search.number={MSISDN}"
                "&search.customer_id=42&page_size=100",
                [ACCEPT, REV_KEY, ("Authorization", REV_BASIC)],
                f"GET /api/v1/Services?search.number={MSISDN}&search.customer_id=42"
                f"&page_size=100\n{REV_KEY_AUDIT}Accept: application/json",
                answer={
                    "json": {
                        "ok": True,
                        "has_more": False,
                        "record_count": 1,
                        "records": [{"service_id": 812, "number": MSISDN, "customer_id": 42}],
                    }
                },
            ),
        ),
        returns=812,
        carrier="Rev.io",
    ),
    "rev-create-service": Case(
        client_of(REV, RevClient),
        lambda client: client.create_service(
            customer_id=42,
            service_type_id=7,
            number=MSISDN,
            number2=ICCID,
            provider_id=3,
            activated_date=date(2026, 11, 22),
            idempotency_key="pondops-77-rev_service",
        ),
        (
            Sent(
                "Create Rev.io service",
                "POST",
                "https://rev.example.test/api/v1/Services",
                [
                    ACCEPT,
                    REV_KEY,
                    ("Idempotency-Key", "pondops-77-rev_service"),
                    JSON,
                    length(body(REV_SERVICE)),
                    ("Authorization", REV_BASIC),
                ],
                f"POST /api/v1/Services\n{REV_KEY_AUDIT}Accept: application/json\n"
                "Idempotency-Key: pondops-77-rev_service\nContent-Type: application/json\n\n"
                + json.dumps(REV_SERVICE),
                content=body(REV_SERVICE),
                answer={"status": 201, "json": {"ok": True, "id": 812}},
            ),
        ),
        returns=812,
        carrier="Rev.io",
    ),
    "rev-find-service-products": Case(
        client_of(REV, RevClient),
        lambda client: client.find_service_products(service_id=812),
        (
            Sent(
                "Find Rev.io service products",
                "GET",
                "https://rev.example.test/api/v1/ServiceProducts?search.service_id=812"
                "&page_size=500",
                [ACCEPT, REV_KEY, ("Authorization", REV_BASIC)],
                "GET /api/v1/ServiceProducts?search.service_id=812&page_size=500\n"
                f"{REV_KEY_AUDIT}Accept: application/json",
                answer={
                    "json": {
                        "ok": True,
                        "has_more": False,
                        "record_count": 3,
                        "records": [
                            {"service_product_id": 9901, "service_id": 812, "product_id": 55},
                            {"service_product_id": 9902, "service_id": 812, "product_id": 56},
                            {"service_product_id": 9999, "service_id": 813, "product_id": 57},
                        ],
                    }
                },
            ),
        ),
        returns={55: 9901, 56: 9902},  # another service's product is not this one's
        carrier="Rev.io",
    ),
    "rev-create-service-product": Case(
        client_of(REV, RevClient),
        lambda client: client.create_service_product(
            service_id=812,
            customer_id=42,
            product_id=55,
            rate=Decimal("4.50"),
            prorate=False,
            activated_date=date(2026, 11, 22),
            idempotency_key="pondops-77-rev_products-55",
        ),
        (
            Sent(
                "Create Rev.io service product",
                "POST",
                "https://rev.example.test/api/v1/ServiceProducts",
                [
                    ACCEPT,
                    REV_KEY,
                    ("Idempotency-Key", "pondops-77-rev_products-55"),
                    JSON,
                    length(body(REV_PRODUCT)),
                    ("Authorization", REV_BASIC),
                ],
                f"POST /api/v1/ServiceProducts\n{REV_KEY_AUDIT}Accept: application/json\n"
                "Idempotency-Key: pondops-77-rev_products-55\nContent-Type: application/json\n\n"
                + json.dumps(REV_PRODUCT),
                content=body(REV_PRODUCT),
                answer={"status": 201, "json": {"ok": True, "id": 9901}},
            ),
        ),
        returns=9901,
        carrier="Rev.io",
    ),
}


def wire_headers(request: requests.PreparedRequest) -> list[tuple[str, str]]:
    return [(name, value) for name, value in request.headers.items() if name not in SESSION_HEADERS]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_client_sends_exactly_its_contracts_requests_through_carrier_http(
    case: Case,
    mocked: responses.RequestsMock,
    audit: list[CallRecord],
    throttle: RecordingThrottle,
) -> None:
    client = case.client(on_call=audit.append, throttle=throttle)
    for expected in case.sent:
        mocked.add(expected.method, expected.url, **expected.answer)

    assert case.operation(client) == case.returns

    assert isinstance(client.http, CarrierHttp)
    assert client.http.carrier == case.carrier
    assert len(mocked.calls) == len(case.sent)
    for index, expected in enumerate(case.sent):
        request = sent(mocked, index)
        assert (request.method, request.url) == (expected.method, expected.url)
        assert wire_headers(request) == expected.headers
        assert request.body == expected.content
    assert throttle.acquired == len(case.sent)  # each call once through the throttle
    assert throttle.penalties == []
    assert [call.description for call in audit] == [s.description for s in case.sent]
    assert [call.request_text for call in audit] == [s.audit for s in case.sent]
    assert [call.url for call in audit] == [s.url.split("?")[0] for s in case.sent]
    assert [call.response_status for call in audit] == [
        s.answer.get("status", 200) for s in case.sent
    ]
