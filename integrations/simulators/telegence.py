"""AT&T Telegence subscriber API as ``docs/carriers/telegence.md`` describes it.

Client base_url: ``http://127.0.0.1:{port}/telegence`` (paths under ``/sp/mobility/v1``).
Every call needs an account's ``app-id`` and ``app-secret`` headers. Lines are addressed by
MSISDN; a subscriber belongs to one app id and is invisible (404 ``SUB_404``) to the others.
Status changes are synchronous: the PATCH answers 200 with a new ``transactionId``.
``Cancelled`` is final (409 ``STATUS_CHANGE_NOT_ALLOWED`` for any change out of it); setting the
status a line already has is accepted. Errors carry Telegence's body
``{"errors": [{"code", "description"}]}``. The simulator does not de-duplicate on
``Idempotency-Key``: each accepted write is applied and counted, so a test sees repeats.
"""

from __future__ import annotations

import hmac
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from .carrier import Account, AdminError, CarrierError, CarrierSimulator
from .messages import SimResponse, json_response
from .payloads import InvalidPayload, one_of, optional_rate, required_str
from .ratelimit import bucket_for
from .routing import Call, Handler, Route

API_ROOT = "/sp/mobility/v1"

ACTIVE = "Active"
SUSPENDED = "Suspended"
CANCELLED = "Cancelled"
STATUSES = (ACTIVE, SUSPENDED, CANCELLED)

# Reason codes the simulated Telegence accepts; anything else is 400 INVALID_REASON.
REASON_CODES: Mapping[str, str] = {
    "CR": "customer request",
    "NP": "non-payment",
    "FR": "fraud",
    "LS": "lost or stolen",
    "SE": "seasonal",
}

SUB_404 = "SUB_404"
INVALID_STATUS = "INVALID_STATUS"
INVALID_REASON = "INVALID_REASON"
INVALID_REQUEST = "INVALID_REQUEST"
STATUS_CHANGE_NOT_ALLOWED = "STATUS_CHANGE_NOT_ALLOWED"

# Codes for errors the core answers (credentials, rate limit, faults, bad JSON, unrouted).
CODES_BY_STATUS: Mapping[int, str] = {
    400: INVALID_REQUEST,
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}

DEFAULT_RATE_LIMIT = 50.0
FIRST_TRANSACTION = 77_800
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class TelegenceRefusal(Exception):
    """Answer the current carrier request with one of Telegence's own error codes."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description


@dataclass
class TelegenceAccount(Account):
    app_id: str = ""
    app_secret: str = ""
    billing_account: str = ""


@dataclass
class TelegenceSubscriber:
    msisdn: str
    iccid: str
    app_id: str
    service_status: str
    last_updated: str = field(default_factory=_timestamp)
    changes: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, str]:
        return {
            "subscriberNumber": self.msisdn,
            "iccid": self.iccid,
            "serviceStatus": self.service_status,
            "lastUpdated": self.last_updated,
        }


class TelegenceSimulator(CarrierSimulator):
    name = "telegence"
    prefix = "/telegence"

    def reset(self) -> None:
        self._accounts: dict[str, TelegenceAccount] = {}
        self._subscribers: dict[str, TelegenceSubscriber] = {}
        self._transactions: Iterator[int] = itertools.count(FIRST_TRANSACTION)

    # -- contract ---------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        return [
            Route(
                "GET",
                f"{API_ROOT}/subscribers/{{msisdn}}",
                self._refusals_answered(self._get_subscriber),
                op="get_subscriber",
                key=_msisdn_key,
            ),
            Route(
                "PATCH",
                f"{API_ROOT}/subscribers/{{msisdn}}",
                self._refusals_answered(self._update_status),
                op="update_status",
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
        return _errors(status, CODES_BY_STATUS.get(status, f"HTTP_{status}"), message, headers)

    def _refusals_answered(self, handler: Handler) -> Handler:
        def answer(call: Call) -> SimResponse:
            try:
                return handler(call)
            except TelegenceRefusal as refusal:
                return _errors(refusal.status, refusal.code, refusal.description)

        return answer

    def _get_subscriber(self, call: Call) -> SimResponse:
        return json_response(200, self._subscriber(call).as_json())

    def _update_status(self, call: Call) -> SimResponse:
        subscriber = self._subscriber(call)
        payload = call.request.json_object()
        new_status = payload.get("serviceStatus")
        if new_status not in STATUSES:
            raise TelegenceRefusal(
                400,
                INVALID_STATUS,
                f"serviceStatus must be one of {', '.join(STATUSES)}, not {new_status!r}",
            )
        reason_code = payload.get("reasonCode")
        if reason_code not in REASON_CODES:
            raise TelegenceRefusal(
                400,
                INVALID_REASON,
                f"reasonCode must be one of {', '.join(REASON_CODES)}, not {reason_code!r}",
            )
        effective_date = _effective_date(payload)
        if subscriber.service_status == CANCELLED and new_status != CANCELLED:
            raise TelegenceRefusal(
                409,
                STATUS_CHANGE_NOT_ALLOWED,
                f"Subscriber {subscriber.msisdn} is Cancelled; its status cannot change",
            )
        transaction_id = f"T-{next(self._transactions)}"
        subscriber.service_status = str(new_status)
        subscriber.last_updated = _timestamp()
        subscriber.changes.append(
            {
                "serviceStatus": str(new_status),
                "reasonCode": str(reason_code),
                "effectiveDate": effective_date,
                "transactionId": transaction_id,
            }
        )
        return json_response(
            200,
            {
                "subscriberNumber": subscriber.msisdn,
                "serviceStatus": subscriber.service_status,
                "transactionId": transaction_id,
            },
        )

    def _subscriber(self, call: Call) -> TelegenceSubscriber:
        subscriber = self._subscribers.get(call.params["msisdn"])
        if subscriber is None or subscriber.app_id != _telegence_account(call).app_id:
            raise TelegenceRefusal(404, SUB_404, "Subscriber not found")
        return subscriber

    # -- admin ------------------------------------------------------------------------------

    def admin_routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/accounts", self._add_account),
            Route("POST", "/subscribers", self._seed_subscribers),
            Route("GET", "/subscribers/{msisdn}", self._show_subscriber),
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
            bucket=bucket_for(rate_limit),
            app_id=app_id,
            app_secret=required_str(payload, "app_secret"),
            billing_account=billing_account,
        )
        return json_response(201, {"app_id": app_id, "rate_limit": rate_limit})

    def _seed_subscribers(self, call: Call) -> SimResponse:
        """Create or replace subscribers; validated in full before any is stored."""
        payload = call.request.json_object()
        app_id = required_str(payload, "app_id")
        if app_id not in self._accounts:
            raise InvalidPayload(f"no Telegence account {app_id!r}; add it first")
        entries = payload.get("subscribers")
        if not isinstance(entries, list):
            raise InvalidPayload("subscribers must be a list")
        subscribers = [_new_subscriber(app_id, entry) for entry in entries]
        numbers = [subscriber.msisdn for subscriber in subscribers]
        if len(set(numbers)) != len(numbers):
            raise InvalidPayload("each msisdn may appear once")
        for subscriber in subscribers:
            self._subscribers[subscriber.msisdn] = subscriber
        return json_response(201, {"seeded": len(subscribers)})

    def _show_subscriber(self, call: Call) -> SimResponse:
        subscriber = self._subscribers.get(call.params["msisdn"])
        if subscriber is None:
            raise AdminError(404, f"no subscriber {call.params['msisdn']}")
        return json_response(
            200,
            {**subscriber.as_json(), "app_id": subscriber.app_id, "changes": subscriber.changes},
        )


def _errors(
    status: int, code: str, description: str, headers: dict[str, str] | None = None
) -> SimResponse:
    return json_response(status, {"errors": [{"code": code, "description": description}]}, headers)


def _telegence_account(call: Call) -> TelegenceAccount:
    assert isinstance(call.account, TelegenceAccount)
    return call.account


def _msisdn_key(call: Call) -> str:
    return call.params["msisdn"]


def _effective_date(payload: Mapping[str, Any]) -> str:
    value = payload.get("effectiveDate")
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise TelegenceRefusal(
            400, INVALID_REQUEST, f"effectiveDate must be a YYYY-MM-DD date, not {value!r}"
        )
    try:
        date.fromisoformat(value)
    except ValueError as error:
        raise TelegenceRefusal(
            400, INVALID_REQUEST, f"effectiveDate {value!r} is not a date"
        ) from error
    return value


def _new_subscriber(app_id: str, entry: Any) -> TelegenceSubscriber:
    if not isinstance(entry, dict):
        raise InvalidPayload("each subscriber must be an object")
    msisdn = required_str(entry, "msisdn")
    if not msisdn.isdigit():
        raise InvalidPayload(f"msisdn must be digits, not {msisdn!r}")
    return TelegenceSubscriber(
        msisdn=msisdn,
        iccid=required_str(entry, "iccid"),
        app_id=app_id,
        service_status=one_of(entry, "status", STATUSES) if "status" in entry else ACTIVE,
    )
