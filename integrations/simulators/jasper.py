"""Cisco Jasper Control Center REST API v1 as ``docs/carriers/jasper.md`` describes it.

Client base_url: ``http://127.0.0.1:{port}/jasper`` (paths ``/rws/api/v1/devices/{iccid}``).
HTTP Basic ``username:api_key`` on every call. A device belongs to one account (username) and
is invisible (404) to the others.

Rules enforced:
- ``PUT`` takes exactly ``{"status": ...}`` with a settable status (``ACTIVATED``,
  ``DEACTIVATED``, ``ACTIVATION_READY``, ``TEST_READY``, ``INVENTORY``, ``RETIRED``); anything
  else — ``PURGED`` and ``REPLACED`` included, which exist only on reads — is a 400.
- Transitions out of ``RETIRED`` are refused (400 ``10000024`` "Invalid status change"). The
  simulator also treats ``PURGED`` and ``REPLACED`` as final (a purged or replaced SIM cannot
  be brought back); setting the status a device already has is accepted and changes nothing.
- The "wrong echo" fault (``POST /_sim/jasper/wrong_echo``) makes a device's PUT answer 200
  with another ICCID and leave the device unchanged, as the legacy ``UpdateDeviceStatusResult``
  check exists to catch.

The simulator does not de-duplicate on ``Idempotency-Key``: each accepted PUT is applied and
counted, so a test sees repeats. Ops: ``get_device`` and ``update_device``, keyed by ICCID.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .carrier import Account, AdminError, CarrierError, CarrierSimulator
from .faults import FOREVER, checked_times, times_left
from .messages import SimResponse, json_response
from .payloads import (
    InvalidPayload,
    one_of,
    optional_int,
    optional_rate,
    required_list,
    required_str,
)
from .ratelimit import bucket_for
from .routing import Call, Route

API_ROOT = "/rws/api/v1"
DEFAULT_RATE_LIMIT = 50.0

SETTABLE_STATUSES = (
    "ACTIVATED",
    "DEACTIVATED",
    "ACTIVATION_READY",
    "TEST_READY",
    "INVENTORY",
    "RETIRED",
)
READ_ONLY_STATUSES = ("PURGED", "REPLACED")
ALL_STATUSES = SETTABLE_STATUSES + READ_ONLY_STATUSES
FINAL_STATUSES = frozenset({"RETIRED", "PURGED", "REPLACED"})

# errorCodes from docs/carriers/jasper.md; other statuses get a simulator code (status·100000).
INVALID_CREDENTIALS = 10000001
INVALID_STATUS_CHANGE = 10000024
INVALID_ICCID = 20000001
RATE_LIMIT_EXCEEDED = 40000029
DEFAULT_CODES = {
    400: INVALID_STATUS_CHANGE,
    401: INVALID_CREDENTIALS,
    404: INVALID_ICCID,
    429: RATE_LIMIT_EXCEEDED,
}
RATE_LIMIT_MESSAGE = "Rate Limit Exceeded"  # Jasper's fixed 429 body, whatever the cause


@dataclass
class JasperAccount(Account):
    username: str = ""
    api_key: str = ""


@dataclass
class JasperDevice:
    iccid: str
    username: str
    status: str
    imsi: str
    msisdn: str
    rate_plan: str
    communication_plan: str
    date_updated: datetime

    def as_json(self) -> dict[str, str]:
        """The ``GET /devices/{iccid}`` body."""
        return {
            "iccid": self.iccid,
            "imsi": self.imsi,
            "msisdn": self.msisdn,
            "status": self.status,
            "ratePlan": self.rate_plan,
            "communicationPlan": self.communication_plan,
            "dateUpdated": _jasper_time(self.date_updated),
        }


@dataclass
class WrongEcho:
    echo: str
    times: int


class JasperSimulator(CarrierSimulator):
    name = "jasper"
    prefix = "/jasper"

    def reset(self) -> None:
        self._accounts: dict[str, JasperAccount] = {}
        self._devices: dict[str, JasperDevice] = {}
        self._wrong_echoes: dict[str, WrongEcho] = {}

    # -- contract ---------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        return [
            Route(
                "GET",
                f"{API_ROOT}/devices/{{iccid}}",
                self._get_device,
                op="get_device",
                key=_iccid_key,
            ),
            Route(
                "PUT",
                f"{API_ROOT}/devices/{{iccid}}",
                self._update_device,
                op="update_device",
                key=_iccid_key,
            ),
        ]

    def authenticate(self, call: Call) -> Account:
        credentials = call.request.basic_credentials()
        account = self._accounts.get(credentials[0]) if credentials is not None else None
        if (
            credentials is None
            or account is None
            or not hmac.compare_digest(credentials[1].encode(), account.api_key.encode())
        ):
            raise CarrierError(401, "Invalid credentials", code=INVALID_CREDENTIALS)
        return account

    def error_response(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> SimResponse:
        """Jasper's ``{"errorCode": "...", "errorMessage": "..."}`` (codes are strings)."""
        error_code = code if code is not None else DEFAULT_CODES.get(status, status * 100_000)
        if status == 429:
            message = RATE_LIMIT_MESSAGE
        body = {"errorCode": str(error_code), "errorMessage": message}
        return json_response(status, body, headers)

    def _get_device(self, call: Call) -> SimResponse:
        return json_response(200, self._device(call).as_json())

    def _update_device(self, call: Call) -> SimResponse:
        device = self._device(call)
        payload = call.request.json_object()
        unknown = sorted(set(payload) - {"status"})
        if unknown:
            raise InvalidPayload(f"Unsupported device field(s): {', '.join(unknown)}")
        status = one_of(payload, "status", SETTABLE_STATUSES)
        wrong_echo = self._wrong_echoes.get(device.iccid)
        if wrong_echo is not None:
            wrong_echo.times = times_left(wrong_echo.times)
            if wrong_echo.times == 0:
                del self._wrong_echoes[device.iccid]
            return json_response(200, {"iccid": wrong_echo.echo})
        if device.status in FINAL_STATUSES and status != device.status:
            raise CarrierError(400, "Invalid status change", code=INVALID_STATUS_CHANGE)
        if status != device.status:
            device.status = status
            device.date_updated = datetime.now(UTC)
        return json_response(200, {"iccid": device.iccid})

    def _device(self, call: Call) -> JasperDevice:
        account = call.account
        assert isinstance(account, JasperAccount)
        device = self._devices.get(call.params["iccid"])
        if device is None or device.username != account.username:
            raise CarrierError(404, "Resource not found - Invalid ICCID", code=INVALID_ICCID)
        return device

    # -- admin ------------------------------------------------------------------------------

    def admin_routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/accounts", self._add_account),
            Route("POST", "/devices", self._seed_devices),
            Route("GET", "/devices/{iccid}", self._show_device),
            Route("POST", "/wrong_echo", self._add_wrong_echo),
        ]

    def _add_account(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        username = required_str(payload, "username")
        rate_limit = optional_rate(payload, "rate_limit", DEFAULT_RATE_LIMIT)
        self._accounts[username] = JasperAccount(
            name=f"Jasper account {username}",
            bucket=bucket_for(rate_limit),
            username=username,
            api_key=required_str(payload, "api_key"),
        )
        return json_response(201, {"username": username, "rate_limit": rate_limit})

    def _seed_devices(self, call: Call) -> SimResponse:
        """Create or replace devices of one account; validated in full before any is stored."""
        payload = call.request.json_object()
        username = required_str(payload, "username")
        devices = [_new_device(username, entry) for entry in required_list(payload, "devices")]
        for device in devices:
            self._devices[device.iccid] = device
        return json_response(201, {"seeded": len(devices)})

    def _show_device(self, call: Call) -> SimResponse:
        device = self._devices.get(call.params["iccid"])
        if device is None:
            raise AdminError(404, f"no Jasper device {call.params['iccid']}")
        return json_response(200, {**device.as_json(), "username": device.username})

    def _add_wrong_echo(self, call: Call) -> SimResponse:
        """Make the next ``times`` PUTs for ``iccid`` (default: all) echo ``echo`` instead."""
        payload = call.request.json_object()
        iccid = required_str(payload, "iccid")
        echo = payload.get("echo")
        if echo is None:
            echo = _another_iccid(iccid)
        if not isinstance(echo, str) or not echo or echo == iccid:
            raise InvalidPayload("echo must be a non-empty string other than the iccid")
        times = optional_int(payload, "times")
        times = checked_times(FOREVER if times is None else times)
        self._wrong_echoes[iccid] = WrongEcho(echo=echo, times=times)
        return json_response(201, {"iccid": iccid, "echo": echo, "times": times})


def _iccid_key(call: Call) -> str:
    return call.params["iccid"]


def _new_device(username: str, entry: Any) -> JasperDevice:
    if not isinstance(entry, dict):
        raise InvalidPayload("each device must be an object")
    iccid = required_str(entry, "iccid")
    status = one_of(entry, "status", ALL_STATUSES) if "status" in entry else "ACTIVATED"
    return JasperDevice(
        iccid=iccid,
        username=username,
        status=status,
        imsi=_optional_str(entry, "imsi", "310170" + iccid[-9:]),
        msisdn=_optional_str(entry, "msisdn", "1" + iccid[-10:]),
        rate_plan=_optional_str(entry, "ratePlan", "IoT Basic 1MB"),
        communication_plan=_optional_str(entry, "communicationPlan", "Data Only"),
        date_updated=datetime.now(UTC),
    )


def _optional_str(entry: dict[str, Any], name: str, default: str) -> str:
    value = entry.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidPayload(f"{name} must be a string")
    return value


def _another_iccid(iccid: str) -> str:
    """A plausible ICCID that is not ``iccid``: its last digit moved on by one."""
    last = iccid[-1]
    if last.isdigit():
        return iccid[:-1] + str((int(last) + 1) % 10)
    return iccid + "0"


def _jasper_time(moment: datetime) -> str:
    """Jasper's ``dateUpdated`` format: ``2026-11-20 10:11:12.000+0000``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"
