"""Cisco IoT Control Center (Jasper) REST API v1 as ``docs/carriers/jasper.md`` describes it.

Client base_url: ``http://127.0.0.1:{port}/jasper`` (paths ``/rws/api/v1/devices/{iccid}``).
HTTP Basic ``username:api_key`` on every call. A device belongs to one account (username) and
is invisible (404) to the others.

Rules enforced:
- ``PUT`` takes exactly ``{"status": ...}`` with a settable status (``ACTIVATED``,
  ``DEACTIVATED``, ``ACTIVATION_READY``, ``TEST_READY``, ``INVENTORY``, ``RETIRED``); anything
  else — ``PURGED`` and ``REPLACED`` included, which exist only on reads — is a 400.
- Activating an ``ACTIVATED`` SIM is refused (400 ``10030000``); moving an ``ACTIVATED`` SIM
  back to ``ACTIVATION_READY`` or ``TEST_READY`` is refused (400 ``10000029``); transitions out
  of ``RETIRED`` are refused (400 ``10000024`` "Invalid status change"). The simulator also
  treats ``PURGED`` and ``REPLACED`` as final. Setting any other status a device already has is
  accepted and changes nothing.
- A PUT normally answers 200 ``{"iccid": ours}`` and the device shows the new status at once.

Knobs (``/_sim/jasper/...``):
- ``unconfirmed``: a device's next PUTs answer 202 (with or without the ICCID echo) or 200
  without an echo, and the change stays invisible to reads until the device has been read
  ``reads`` more times and ``seconds`` have passed (``reads: null``: until ``settle``).
- ``devices/{iccid}/settle``: apply a device's pending change now.
- ``tariff_limit``: the next matching calls answer ``40000029`` "Exceeding Tariff limits" with
  HTTP 400 or 429 (+ ``Retry-After``), as the account's calls-per-second limit does.
- ``wrong_echo``: a device's PUTs answer 200 with another ICCID and leave it unchanged, as the
  legacy ``UpdateDeviceStatusResult`` check exists to catch.

The simulator does not de-duplicate on ``Idempotency-Key``: each accepted PUT is applied and
counted, so a test sees repeats. Ops: ``get_device`` and ``update_device``, keyed by ICCID.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .carrier import Account, AdminError, CarrierError, CarrierSimulator
from .faults import FOREVER, checked_times, times_left
from .messages import SimResponse, empty_response, json_response
from .payloads import (
    InvalidPayload,
    one_of,
    optional_int,
    optional_rate,
    optional_text,
    required_list,
    required_str,
)
from .ratelimit import limit_for, rate_window
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
PRE_ACTIVATION_STATUSES = frozenset({"ACTIVATION_READY", "TEST_READY"})

# errorCodes from docs/carriers/jasper.md; other statuses get a simulator code (status·100000).
INVALID_CREDENTIALS = 10000001
INVALID_STATUS_CHANGE = 10000024
NOT_BACK_TO_PRE_ACTIVATION = 10000029
ALREADY_ACTIVATED = 10030000
INVALID_ICCID = 20000001
RATE_LIMIT_EXCEEDED = 40000029
DEFAULT_CODES = {
    400: INVALID_STATUS_CHANGE,
    401: INVALID_CREDENTIALS,
    404: INVALID_ICCID,
    429: RATE_LIMIT_EXCEEDED,
}
# Jasper's 40000029 message, whatever the cause (a 429 from the limiter or a fault, a knob).
RATE_LIMIT_MESSAGE = "Exceeding Tariff limits"
TARIFF_LIMIT_STATUSES = (400, 429)

# How an unconfirmed PUT is answered: (HTTP status, whether the body echoes the ICCID, whether
# there is a body at all).
UNCONFIRMED_ANSWERS = {
    "accepted": (202, True, True),  # 202 {"iccid": ours}
    "accepted-empty": (202, False, False),  # 202, empty body
    "no-echo": (200, False, True),  # 200 {}
    "empty": (200, False, False),  # 200, empty body
}


@dataclass
class JasperAccount(Account):
    username: str = ""
    api_key: str = ""


@dataclass
class PendingChange:
    """A status change Jasper accepted but does not show yet: reads see the old status until
    ``reads_left`` more reads have been answered (``None``: until settled) and ``due`` (a
    ``time.monotonic`` instant) has passed."""

    status: str
    reads_left: int | None
    due: float

    def visible_on_this_read(self) -> bool:
        """Count one read; True when this read shows the new status."""
        if self.reads_left is None:
            return False
        if self.reads_left > 0:
            self.reads_left -= 1
            return False
        return time.monotonic() >= self.due

    def describe(self) -> dict[str, Any]:
        return {"status": self.status, "reads_left": self.reads_left}


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
    pending: PendingChange | None = None

    def change_to(self, status: str) -> None:
        """Show ``status`` from now on (any pending change is superseded)."""
        self.pending = None
        if status != self.status:
            self.status = status
            self.date_updated = datetime.now(UTC)

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


@dataclass
class Unconfirmed:
    """How a device's next ``times`` PUTs are answered and how long their change stays hidden."""

    answer: str
    reads: int | None
    seconds: float
    times: int

    def describe(self, iccid: str) -> dict[str, Any]:
        return {
            "iccid": iccid,
            "answer": self.answer,
            "reads": self.reads,
            "seconds": self.seconds,
            "times": self.times,
        }


@dataclass
class TariffLimit:
    """The next ``times`` calls of ``op`` (for ``iccid``; ``None``: any) answer 40000029."""

    op: str
    iccid: str | None
    status: int
    retry_after: str | None
    times: int

    def matches(self, op: str, iccid: str) -> bool:
        return self.op == op and self.iccid in (None, iccid)


class JasperSimulator(CarrierSimulator):
    name = "jasper"
    prefix = "/jasper"

    def reset(self) -> None:
        self._accounts: dict[str, JasperAccount] = {}
        self._devices: dict[str, JasperDevice] = {}
        self._wrong_echoes: dict[str, WrongEcho] = {}
        self._unconfirmed: dict[str, Unconfirmed] = {}
        self._tariff_limits: list[TariffLimit] = []

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
        limited = self._tariff_limited("get_device", call)
        if limited is not None:
            return limited
        device = self._device(call)
        pending = device.pending
        if pending is not None and pending.visible_on_this_read():
            device.change_to(pending.status)
        return json_response(200, device.as_json())

    def _update_device(self, call: Call) -> SimResponse:
        limited = self._tariff_limited("update_device", call)
        if limited is not None:
            return limited
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
        _check_transition(device.status, status)
        unconfirmed = self._unconfirmed.get(device.iccid)
        if unconfirmed is None:
            device.change_to(status)
            return json_response(200, {"iccid": device.iccid})
        unconfirmed.times = times_left(unconfirmed.times)
        if unconfirmed.times == 0:
            del self._unconfirmed[device.iccid]
        device.pending = None  # a newer PUT supersedes a change still pending
        if status != device.status:
            due = time.monotonic() + unconfirmed.seconds
            device.pending = PendingChange(status, unconfirmed.reads, due)
        http_status, echoes, has_body = UNCONFIRMED_ANSWERS[unconfirmed.answer]
        if not has_body:
            return empty_response(http_status)
        return json_response(http_status, {"iccid": device.iccid} if echoes else {})

    def _tariff_limited(self, op: str, call: Call) -> SimResponse | None:
        """The 40000029 answer of the first matching tariff-limit knob (using up one of its
        ``times``), or None."""
        iccid = call.params["iccid"]
        for index, limit in enumerate(self._tariff_limits):
            if limit.matches(op, iccid):
                limit.times = times_left(limit.times)
                if limit.times == 0:
                    del self._tariff_limits[index]
                headers = {} if limit.retry_after is None else {"Retry-After": limit.retry_after}
                return self.error_response(
                    limit.status, RATE_LIMIT_MESSAGE, code=RATE_LIMIT_EXCEEDED, headers=headers
                )
        return None

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
            Route("POST", "/devices/{iccid}/settle", self._settle_device),
            Route("POST", "/wrong_echo", self._add_wrong_echo),
            Route("POST", "/unconfirmed", self._add_unconfirmed),
            Route("POST", "/tariff_limit", self._add_tariff_limit),
        ]

    def _add_account(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        username = required_str(payload, "username")
        rate_limit = optional_rate(payload, "rate_limit", DEFAULT_RATE_LIMIT)
        self._accounts[username] = JasperAccount(
            name=f"Jasper account {username}",
            limit=limit_for(rate_limit, rate_window(payload)),
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
        """The device as a read shows it (without counting as a read), its owner, and the
        change still pending on it (``null`` when none)."""
        device = self._admin_device(call)
        pending = None if device.pending is None else device.pending.describe()
        return json_response(
            200, {**device.as_json(), "username": device.username, "pending": pending}
        )

    def _settle_device(self, call: Call) -> SimResponse:
        """Apply the device's pending change now (nothing when none is pending)."""
        device = self._admin_device(call)
        if device.pending is not None:
            device.change_to(device.pending.status)
        return json_response(200, device.as_json())

    def _admin_device(self, call: Call) -> JasperDevice:
        device = self._devices.get(call.params["iccid"])
        if device is None:
            raise AdminError(404, f"no Jasper device {call.params['iccid']}")
        return device

    def _add_unconfirmed(self, call: Call) -> SimResponse:
        """Make the next ``times`` PUTs for ``iccid`` (default: all) answer ``answer`` (default
        ``accepted``: 202 echoing the ICCID) and keep their change hidden from the next
        ``reads`` reads (default 0; ``null``: until settled) and for ``seconds`` (default 0)."""
        payload = call.request.json_object()
        iccid = required_str(payload, "iccid")
        answer = optional_text(payload, "answer") or "accepted"
        if answer not in UNCONFIRMED_ANSWERS:
            raise InvalidPayload(f"answer must be one of {sorted(UNCONFIRMED_ANSWERS)}")
        reads = optional_int(payload, "reads") if "reads" in payload else 0
        if reads is not None and reads < 0:
            raise InvalidPayload("reads must be a non-negative count or null (until settled)")
        seconds = payload.get("seconds", 0)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise InvalidPayload("seconds must be a non-negative number")
        times = optional_int(payload, "times")
        unconfirmed = Unconfirmed(
            answer=answer,
            reads=reads,
            seconds=float(seconds),
            times=checked_times(FOREVER if times is None else times),
        )
        self._unconfirmed[iccid] = unconfirmed
        return json_response(201, unconfirmed.describe(iccid))

    def _add_tariff_limit(self, call: Call) -> SimResponse:
        """Make the next ``times`` (default 1) calls of ``op`` (default ``update_device``) for
        ``iccid`` (default: any) answer ``40000029`` with HTTP ``status`` (400 or 429, default
        429) and ``Retry-After: retry_after`` when given."""
        payload = call.request.json_object()
        op = optional_text(payload, "op") or "update_device"
        if op not in ("get_device", "update_device"):
            raise InvalidPayload("op must be get_device or update_device")
        status = optional_int(payload, "status") or 429
        if status not in TARIFF_LIMIT_STATUSES:
            raise InvalidPayload("status must be 400 or 429")
        retry_after = payload.get("retry_after")
        times = optional_int(payload, "times")
        limit = TariffLimit(
            op=op,
            iccid=optional_text(payload, "iccid"),
            status=status,
            retry_after=None if retry_after is None else str(retry_after),
            times=checked_times(1 if times is None else times),
        )
        self._tariff_limits.append(limit)
        return json_response(
            201,
            {
                "op": limit.op,
                "iccid": limit.iccid,
                "status": limit.status,
                "retry_after": limit.retry_after,
                "times": limit.times,
            },
        )

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


def _check_transition(current: str, target: str) -> None:
    """Jasper's refusals (docs/carriers/jasper.md "Statuses"), as CarrierErrors."""
    if current in FINAL_STATUSES and target != current:
        raise CarrierError(400, "Invalid status change", code=INVALID_STATUS_CHANGE)
    if current == "ACTIVATED" and target == "ACTIVATED":
        raise CarrierError(
            400, "Cannot activate a SIM which is already activated", code=ALREADY_ACTIVATED
        )
    if current == "ACTIVATED" and target in PRE_ACTIVATION_STATUSES:
        raise CarrierError(
            400,
            "This SIM may not be moved back to a Pre Activation status",
            code=NOT_BACK_TO_PRE_ACTIVATION,
        )


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
