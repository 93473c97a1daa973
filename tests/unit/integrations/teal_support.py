"""Shared facts and fakes of the Teal client tests (test_teal_contract.py, test_teal.py)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses

from integrations.base import CallRecord, Credentials, Progress, UpdateContext
from integrations.teal import TealProcessor

API_KEY = "teal-key-acme"
API_SECRET = "teal-secret-Qv93xk"
TOKEN = "cb-token-Zq81xLw02"
CALLBACK_URL = f"https://pondops.example.test/carriers/teal/callbacks/4/?token={TOKEN}"
BASE_URL = "https://integrationapi.teal.example.test/"  # one trailing slash is trimmed
API = "https://integrationapi.teal.example.test/api/v1"
EID = "89049032000000000000000000000001"
ICCID = "89148000000000000001"
REQUEST_ID = "3f0c4a5252f84f6e9a4b2d9f1d7e0c11"
CREDENTIALS = Credentials(
    integration_authentication_id=4,
    integration="TEAL",
    base_url=BASE_URL,
    account="Acme fleet",
    username=API_KEY,
    secret=API_SECRET,
    callback_url=CALLBACK_URL,
    callback_token=TOKEN,
)
ACCEPTED = {
    "success": True,
    "link": {
        "operationResult": {
            "href": f"http://teal.example/api/v1/operation-result?requestId={REQUEST_ID}"
        }
    },
}
RESULT_URL = re.compile(re.escape(f"{API}/operation-result") + r"\?.*")
SUBMIT_URL = re.compile(re.escape(f"{API}/esims/") + r"(enable|disable)\?.*")
INFO_URL = re.compile(re.escape(f"{API}/esims/info") + r"\?.*")
HEX_32 = re.compile(r"[0-9a-f]{32}")


def query_of(request: requests.PreparedRequest) -> dict[str, str]:
    assert request.url is not None
    return dict(parse_qsl(urlsplit(request.url).query, keep_blank_values=True))


def raw_query(request: requests.PreparedRequest) -> str:
    assert request.url is not None
    return urlsplit(request.url).query


def our_headers(request: requests.PreparedRequest) -> dict[str, str]:
    session_own = {"User-Agent", "Accept-Encoding", "Connection", "Content-Length"}
    return {name: value for name, value in request.headers.items() if name not in session_own}


GET_HEADERS = {"ApiKey": API_KEY, "ApiSecret": API_SECRET, "Accept": "application/json"}
BODY_HEADERS = {**GET_HEADERS, "Content-Type": "application/json"}


def done(*entries: dict[str, Any], success: bool = True, **extra: Any) -> dict[str, Any]:
    return {"success": success, "entries": list(entries), **extra}


def entry(eid: str = EID, success: bool = True, error: str | None = None) -> dict[str, Any]:
    return {"eid": eid, "success": success, "errorMessage": error}


def esim(**fields: Any) -> dict[str, Any]:
    base = {
        "eid": EID,
        "iccid": ICCID,
        "deviceStatus": "ONLINE",
        "active": True,
        "suspended": False,
        "planUuid": "p-1",
        "planName": "Global 1 GB",
        "planChangeStatus": "SUCCESS",
    }
    return {**base, **fields}


class FakeTime:
    """The processor's clock and sleep: sleeping moves the clock on, instantly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class ClosingSession(requests.Session):
    """Records how many requests had been answered each time its connections were closed."""

    def __init__(self, mocked: responses.RequestsMock) -> None:
        super().__init__()
        self.mocked = mocked
        self.closed_after: list[int] = []

    def close(self) -> None:
        self.closed_after.append(len(self.mocked.calls))
        super().close()


def processor_for_tests(
    audit: list[CallRecord], fake_time: FakeTime, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> TealProcessor:
    """A processor whose audit records go to ``audit``, its confirm budget 1 s of ``fake_time``."""
    settings.BULKCHANGE_CONFIRM_SECONDS = 1
    teal = TealProcessor(credentials=CREDENTIALS, on_call=audit.append, timeouts=(1, 1))
    monkeypatch.setattr(teal, "clock", fake_time.clock)
    monkeypatch.setattr(teal, "sleep", fake_time.sleep)
    return teal


def context(target: str = "enabled", **progress: Any) -> UpdateContext:
    return UpdateContext(
        device_change_id=77,
        bulk_change_id=5,
        iccid=ICCID,
        eid=EID,
        target_status=target,
        progress=Progress(**{"carrier_request_id": REQUEST_ID, **progress}),
    )
