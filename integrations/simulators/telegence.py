"""AT&T Telegence's APEX line-configuration API as ``docs/carriers/telegence.md`` describes it.

Client base_url: ``http://127.0.0.1:{port}/telegence`` (the client appends
``/sp/mobility/lineconfig/api/v1/service/{subscriberNumber}``). Every call needs an app's
``app-id`` and ``app-secret`` headers. Lines are addressed by their 10-digit subscriber number;
a line belongs to one app and is invisible to the others.

- ``GET …/service/{subscriberNumber}`` answers the service record: ``subscriberNumber``,
  ``status`` (Active, Suspended, Cancelled) and ``serviceCharacteristic`` name/value pairs
  (``subscriberStatus`` A/S/C, ``statusEffectiveDate``, ``statusReasonCode``, ``sim``,
  ``singleUserCode``, ``billingAccountNumber``).
- ``PATCH …/service/{subscriberNumber}`` with ``{"effectiveDate", "serviceCharacteristic":
  [{"name": "subscriberStatus", "value": "A"|"S"|"C"}, {"name": "reasonCode", …}]}`` is
  accepted as an order: it applies at once (200, the new record) unless the completion config
  (admin ``POST /_sim/telegence/config``) says the line takes ``apply_after_reads`` reads
  and/or ``apply_after_seconds`` seconds (``"never"``: until ``…/subscribers/{n}/apply``) to
  show it — then 202 with the record still showing the old status. A newer PATCH replaces a
  pending one. Setting the status a line already has is accepted; a cancelled line refuses
  every other status. No transaction id is answered; writes are never de-duplicated.
- Errors as the gateway answers them: 404 ``{"id", "description": "/service/"}`` for an
  unknown line or a change the line does not allow (out of Cancelled), its ``id`` counted from
  ``…-000000000001`` after each reset; every other error (400 bad body, 401 credentials, 429,
  faults) ``{"errorDescription"}``.
"""

from __future__ import annotations

import hmac
import itertools
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from .carrier import Account, AdminError, CarrierError, CarrierSimulator
from .messages import SimResponse, json_response
from .payloads import InvalidPayload, one_of, optional_rate, required_str
from .ratelimit import limit_for, rate_window
from .routing import Call, Handler, Route

LINE = "/sp/mobility/lineconfig/api/v1/service/{msisdn}"

ACTIVE = "Active"
SUSPENDED = "Suspended"
CANCELLED = "Cancelled"
STATUSES = (ACTIVE, SUSPENDED, CANCELLED)
CODES = {ACTIVE: "A", SUSPENDED: "S", CANCELLED: "C"}
STATUS_OF_CODE = {code: status for status, code in CODES.items()}

# Reason codes the simulated gateway accepts; anything else is a 400.
REASON_CODES: Mapping[str, str] = {
    "CR": "customer request",
    "CAN": "cancel",
    "NP": "non-payment",
    "FR": "fraud",
    "LS": "lost or stolen",
    "SE": "seasonal",
}

NOT_FOUND_DESCRIPTION = "/service/"
# The 404's ``id`` is a trace id; the simulator counts them (…-000000000001 first) after a reset.
ERROR_ID_PREFIX = "306760c0-4c63-11f0-8b71-"
NEVER = "never"
DEFAULT_RATE_LIMIT = 50.0
FIRST_SINGLE_USER_CODE = 40_100
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _today() -> str:
    return datetime.now(UTC).date().isoformat() + "Z"


class LineRefused(Exception):
    """Answer the current request with the gateway's 404 ``/service/`` body."""


@dataclass
class Completion:
    """How long an accepted change takes to show on the line: reads that still show the old
    status, and seconds (None: never, until applied through the admin API)."""

    apply_after_reads: int = 0
    apply_after_seconds: float | None = 0.0

    def as_json(self) -> dict[str, Any]:
        seconds = NEVER if self.apply_after_seconds is None else self.apply_after_seconds
        return {"apply_after_reads": self.apply_after_reads, "apply_after_seconds": seconds}

    @property
    def immediate(self) -> bool:
        return self.apply_after_reads == 0 and self.apply_after_seconds == 0


@dataclass
class TelegenceAccount(Account):
    app_id: str = ""
    app_secret: str = ""
    billing_account: str = ""


@dataclass
class PendingChange:
    status: str
    reason_code: str
    effective_date: str
    accepted_at: float
    reads: int = 0


@dataclass
class TelegenceLine:
    msisdn: str
    iccid: str
    app_id: str
    status: str
    billing_account: str
    single_user_code: str
    reason_code: str = "CR"
    effective_date: str = field(default_factory=_today)
    pending: PendingChange | None = None
    reads: int = 0
    changes: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        characteristics = [
            ("subscriberStatus", CODES[self.status]),
            ("statusEffectiveDate", self.effective_date),
            ("statusReasonCode", self.reason_code),
            ("sim", self.iccid),
            ("singleUserCode", self.single_user_code),
            ("billingAccountNumber", self.billing_account),
        ]
        return {
            "subscriberNumber": self.msisdn,
            "status": self.status,
            "serviceCharacteristic": [
                {"name": name, "value": value} for name, value in characteristics
            ],
        }

    def apply(self) -> None:
        """The pending change shows on the line (AT&T completed the order)."""
        if self.pending is not None:
            self.status = self.pending.status
            self.reason_code = self.pending.reason_code
            self.effective_date = self.pending.effective_date + "Z"
            self.pending = None


class TelegenceSimulator(CarrierSimulator):
    name = "telegence"
    prefix = "/telegence"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        super().__init__()

    def reset(self) -> None:
        self._accounts: dict[str, TelegenceAccount] = {}
        self._lines: dict[str, TelegenceLine] = {}
        self._single_user_codes: Iterator[int] = itertools.count(FIRST_SINGLE_USER_CODE)
        self.completion = Completion()
        self._error_ids: Iterator[int] = itertools.count(1)

    # -- contract ---------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", LINE, self._refusals(self._read_line), op="read_line", key=_msisdn_key),
            Route(
                "PATCH",
                LINE,
                self._refusals(self._change_line),
                op="change_line",
                key=_msisdn_key,
            ),
        ]

    def authenticate(self, call: Call) -> Account:
        app_id = call.request.header("app-id") or ""
        app_secret = call.request.header("app-secret") or ""
        if not app_id or not app_secret:
            raise CarrierError(401, "app-id and app-secret headers are required")
        account = self._accounts.get(app_id)
        if account is None or not hmac.compare_digest(
            app_secret.encode(), account.app_secret.encode()
        ):
            raise CarrierError(401, f"Invalid app-id or app-secret for app {app_id}")
        return account

    def error_response(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> SimResponse:
        return json_response(status, {"errorDescription": message}, headers)

    def _refusals(self, handler: Handler) -> Handler:
        def answer(call: Call) -> SimResponse:
            try:
                return handler(call)
            except LineRefused:
                error_id = f"{ERROR_ID_PREFIX}{next(self._error_ids):012d}"
                return json_response(404, {"id": error_id, "description": NOT_FOUND_DESCRIPTION})

        return answer

    def _read_line(self, call: Call) -> SimResponse:
        line = self._line(call)
        line.reads += 1
        if line.pending is not None:
            line.pending.reads += 1
            self._settle(line)
        return json_response(200, line.as_json())

    def _change_line(self, call: Call) -> SimResponse:
        line = self._line(call)
        payload = call.request.json_object()
        effective_date = _effective_date(payload)
        characteristics = _characteristics(payload)
        code = characteristics.get("subscriberStatus")
        if code not in STATUS_OF_CODE:
            raise CarrierError(400, f"subscriberStatus must be one of A, S, C, not {code!r}")
        reason_code = characteristics.get("reasonCode")
        if reason_code not in REASON_CODES:
            raise CarrierError(
                400, f"reasonCode must be one of {', '.join(REASON_CODES)}, not {reason_code!r}"
            )
        code, reason_code = str(code), str(reason_code)
        new_status = STATUS_OF_CODE[code]
        if line.status == CANCELLED and new_status != CANCELLED:
            raise LineRefused
        line.changes.append(
            {"subscriberStatus": code, "reasonCode": reason_code, "effectiveDate": effective_date}
        )
        line.pending = PendingChange(
            status=new_status,
            reason_code=reason_code,
            effective_date=effective_date,
            accepted_at=self._clock(),
        )
        if self.completion.immediate:
            line.apply()
            return json_response(200, line.as_json())
        return json_response(202, line.as_json())

    def _settle(self, line: TelegenceLine) -> None:
        pending, completion = line.pending, self.completion
        if pending is None or completion.apply_after_seconds is None:
            return
        waited = self._clock() - pending.accepted_at
        if (
            pending.reads > completion.apply_after_reads
            and waited >= completion.apply_after_seconds
        ):
            line.apply()

    def _line(self, call: Call) -> TelegenceLine:
        line = self._lines.get(call.params["msisdn"])
        if line is None or line.app_id != _telegence_account(call).app_id:
            raise LineRefused
        return line

    # -- admin ------------------------------------------------------------------------------

    def admin_routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/accounts", self._add_account),
            Route("POST", "/subscribers", self._seed_lines),
            Route("GET", "/subscribers/{msisdn}", self._show_line),
            Route("POST", "/subscribers/{msisdn}/apply", self._apply_line),
            Route("GET", "/config", self._show_config),
            Route("POST", "/config", self._update_config),
        ]

    def _add_account(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        app_id = required_str(payload, "app_id")
        rate_limit = optional_rate(payload, "rate_limit", DEFAULT_RATE_LIMIT)
        billing_account = payload.get("billing_account") or ""
        if not isinstance(billing_account, str):
            raise InvalidPayload("billing_account must be a string")
        self._accounts[app_id] = TelegenceAccount(
            name=f"app {app_id}",
            limit=limit_for(rate_limit, rate_window(payload)),
            app_id=app_id,
            app_secret=required_str(payload, "app_secret"),
            billing_account=billing_account,
        )
        return json_response(201, {"app_id": app_id, "rate_limit": rate_limit})

    def _seed_lines(self, call: Call) -> SimResponse:
        """Create or replace lines; validated in full before any is stored."""
        payload = call.request.json_object()
        app_id = required_str(payload, "app_id")
        account = self._accounts.get(app_id)
        if account is None:
            raise InvalidPayload(f"no Telegence account {app_id!r}; add it first")
        entries = payload.get("subscribers")
        if not isinstance(entries, list):
            raise InvalidPayload("subscribers must be a list")
        lines = [self._new_line(account, entry) for entry in entries]
        numbers = [line.msisdn for line in lines]
        if len(set(numbers)) != len(numbers):
            raise InvalidPayload("each msisdn may appear once")
        for line in lines:
            self._lines[line.msisdn] = line
        return json_response(201, {"seeded": len(lines)})

    def _new_line(self, account: TelegenceAccount, entry: Any) -> TelegenceLine:
        if not isinstance(entry, dict):
            raise InvalidPayload("each subscriber must be an object")
        msisdn = required_str(entry, "msisdn")
        if not (len(msisdn) == 10 and msisdn.isdigit()):
            raise InvalidPayload(f"msisdn must be 10 digits, not {msisdn!r}")
        return TelegenceLine(
            msisdn=msisdn,
            iccid=required_str(entry, "iccid"),
            app_id=account.app_id,
            status=one_of(entry, "status", STATUSES) if "status" in entry else ACTIVE,
            billing_account=account.billing_account,
            single_user_code=str(next(self._single_user_codes)),
        )

    def _show_line(self, call: Call) -> SimResponse:
        line = self._admin_line(call)
        pending = line.pending
        return json_response(
            200,
            {
                **line.as_json(),
                "app_id": line.app_id,
                "reads": line.reads,
                "pending": None if pending is None else {"status": pending.status},
                "changes": line.changes,
            },
        )

    def _apply_line(self, call: Call) -> SimResponse:
        line = self._admin_line(call)
        line.apply()
        return json_response(200, line.as_json())

    def _show_config(self, call: Call) -> SimResponse:
        return json_response(200, self.completion.as_json())

    def _update_config(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        if "apply_after_reads" in payload:
            reads = payload["apply_after_reads"]
            if isinstance(reads, bool) or not isinstance(reads, int) or reads < 0:
                raise InvalidPayload("apply_after_reads must be a non-negative integer")
            self.completion.apply_after_reads = reads
        if "apply_after_seconds" in payload:
            seconds = payload["apply_after_seconds"]
            if seconds == NEVER:
                self.completion.apply_after_seconds = None
            elif (
                isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0
            ):
                self.completion.apply_after_seconds = float(seconds)
            else:
                raise InvalidPayload('apply_after_seconds must be a non-negative number or "never"')
        return json_response(200, self.completion.as_json())

    def _admin_line(self, call: Call) -> TelegenceLine:
        line = self._lines.get(call.params["msisdn"])
        if line is None:
            raise AdminError(404, f"no subscriber {call.params['msisdn']}")
        return line


def _telegence_account(call: Call) -> TelegenceAccount:
    assert isinstance(call.account, TelegenceAccount)
    return call.account


def _msisdn_key(call: Call) -> str:
    return call.params["msisdn"]


def _characteristics(payload: Mapping[str, Any]) -> dict[str, Any]:
    entries = payload.get("serviceCharacteristic")
    if not isinstance(entries, list) or not all(
        isinstance(entry, dict) and isinstance(entry.get("name"), str) for entry in entries
    ):
        raise CarrierError(400, "serviceCharacteristic must be a list of {name, value} objects")
    return {entry["name"]: entry.get("value") for entry in entries}


def _effective_date(payload: Mapping[str, Any]) -> str:
    value = payload.get("effectiveDate")
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise CarrierError(400, f"effectiveDate must be a YYYY-MM-DD date, not {value!r}")
    try:
        date.fromisoformat(value)
    except ValueError as error:
        raise CarrierError(400, f"effectiveDate {value!r} is not a date") from error
    return value
