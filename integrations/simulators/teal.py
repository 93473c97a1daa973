"""Teal's eSIM API as ``docs/carriers/teal.md`` describes it: the routes and the admin API.
eSIMs and the operations that change them are :mod:`.teal_operations`'s.

Client base_url: ``http://127.0.0.1:{port}/teal`` (the client appends ``/api/v1``). Every call
needs an account's ``ApiKey`` and ``ApiSecret`` headers; an eSIM belongs to one account and is
invisible (404 ESIM_NOT_FOUND) to the others. Errors are ``{"errorCode", "message"}``.

State changes are asynchronous operations named by the caller's ``requestId``:

- ``POST /esims/enable|disable?requestId=…&callbackUrl=…`` answers 202 QUEUED. A ``requestId``
  seen before (same account, action and EIDs) creates nothing: it answers the same operation,
  so a test sees a client that re-submits under a *new* id (a second operation on the same
  eSIM, which Teal refuses with 409 FLOW_RESTRICTED_ERROR while the first is running).
- ``GET /operations/{requestId}`` answers PROCESSING until ``completion_seconds`` (admin config;
  ``"never"`` keeps operations running) have passed, then COMPLETED or FAILED (the rules are
  :mod:`.teal_operations`'s). With ``interim_polls`` = N, each operation's first N polls are
  answered with a bare HTTP 102.

The per-account rate limit is per minute (1,000 by default, Teal's published service level):
a bucket of that many calls, refilled continuously; an empty bucket answers 429 Retry-After 1.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from .carrier import Account, AdminError, CarrierError, CarrierSimulator
from .messages import SimResponse, empty_response, json_response
from .payloads import InvalidPayload, optional_rate, optional_text, required_list, required_str
from .ratelimit import minute_bucket_for
from .routing import Call, Route
from .teal_operations import (
    ESIM_STATES,
    NEVER,
    ONLINE,
    PROCESSING,
    QUEUED,
    EsimOperations,
    TealEsim,
)

API = "/api/v1"
DEFAULT_CALLS_PER_MINUTE = 1000.0
DEFAULT_PLAN = "teal-global-1gb"


class ErrorCode(IntEnum):
    """Teal's ``errorCode`` values; the int rides on :class:`CarrierError`'s ``code``."""

    GENERIC_ERROR = 1
    UNAUTHORIZED = 2
    ESIM_NOT_FOUND = 3
    VALIDATION_ERROR = 4
    FLOW_RESTRICTED_ERROR = 5


DEFAULT_CODES = {
    400: ErrorCode.VALIDATION_ERROR,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.UNAUTHORIZED,
    409: ErrorCode.FLOW_RESTRICTED_ERROR,
}


@dataclass
class TealAccount(Account):
    api_key: str = ""
    api_secret: str = ""
    label: str = ""


class TealSimulator(CarrierSimulator):
    name = "teal"
    prefix = "/teal"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        super().__init__()

    def reset(self) -> None:
        self._accounts: dict[str, TealAccount] = {}
        self._state = EsimOperations(self._clock)

    # -- contract ---------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        return [
            Route("GET", f"{API}/esims/{{eid}}", self._read_esim, op="read_esim", key=_eid_key),
            Route(
                "POST",
                f"{API}/esims/enable",
                self._enable,
                op="enable",
                key=_posted_eid,
            ),
            Route(
                "POST",
                f"{API}/esims/disable",
                self._disable,
                op="disable",
                key=_posted_eid,
            ),
            Route(
                "GET",
                f"{API}/operations/{{request_id}}",
                self._read_operation,
                op="operation",
                key=_request_id_key,
            ),
        ]

    def authenticate(self, call: Call) -> Account:
        api_key = call.request.header("ApiKey") or ""
        api_secret = call.request.header("ApiSecret") or ""
        account = self._accounts.get(api_key)
        if account is None or not hmac.compare_digest(
            api_secret.encode(), account.api_secret.encode()
        ):
            raise CarrierError(
                401, "Invalid ApiKey or ApiSecret", code=ErrorCode.UNAUTHORIZED.value
            )
        return account

    def error_response(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> SimResponse:
        error_code = (
            ErrorCode(code)
            if code is not None
            else DEFAULT_CODES.get(status, ErrorCode.GENERIC_ERROR)
        )
        return json_response(status, {"errorCode": error_code.name, "message": message}, headers)

    def _read_esim(self, call: Call) -> SimResponse:
        self._state.settle_due()
        return json_response(200, self._esim(call, call.params["eid"]).as_json())

    def _enable(self, call: Call) -> SimResponse:
        return self._change_state(call, "enable")

    def _disable(self, call: Call) -> SimResponse:
        return self._change_state(call, "disable")

    def _change_state(self, call: Call, action: str) -> SimResponse:
        account = _teal_account(call)
        query = call.request.query
        request_id = query.get("requestId", "")
        if not _is_uuid(request_id):
            raise _validation(f"requestId must be a UUID, not {request_id!r}")
        if "callbackUrl" not in query:
            raise _validation("callbackUrl is required (it may be empty)")
        eids = _entries(call)
        self._state.settle_due()
        for eid in eids:
            self._esim(call, eid)
        existing = self._state.operations.get(request_id)
        if existing is not None:
            if (existing.api_key, existing.action, existing.eids) != (
                account.api_key,
                action,
                eids,
            ):
                raise CarrierError(
                    409,
                    f"requestId {request_id} was already used for another request",
                    code=ErrorCode.FLOW_RESTRICTED_ERROR.value,
                )
            existing.submissions += 1
            return json_response(202, {"requestId": request_id, "status": existing.status})
        for eid in eids:
            busy = self._state.running_on(eid)
            if busy is not None:
                raise CarrierError(
                    409,
                    f"eSIM {eid} has an operation in progress (requestId {busy.request_id})",
                    code=ErrorCode.FLOW_RESTRICTED_ERROR.value,
                )
        self._state.start(
            request_id=request_id,
            api_key=account.api_key,
            action=action,
            eids=eids,
            callback_url=query["callbackUrl"],
        )
        return json_response(202, {"requestId": request_id, "status": QUEUED})

    def _read_operation(self, call: Call) -> SimResponse:
        account = _teal_account(call)
        request_id = call.params["request_id"]
        operation = self._state.operations.get(request_id)
        if operation is None or operation.api_key != account.api_key:
            raise CarrierError(404, f"Operation {request_id} not found")
        operation.polls += 1
        self._state.settle(operation)
        if operation.polls <= self._state.config.interim_polls:
            return empty_response(102)
        if operation.status == QUEUED:
            operation.status = PROCESSING
        return json_response(200, operation.as_json())

    def _esim(self, call: Call, eid: str) -> TealEsim:
        esim = self._state.esims.get(eid)
        if esim is None or esim.api_key != _teal_account(call).api_key:
            raise CarrierError(404, f"eSIM {eid} not found", code=ErrorCode.ESIM_NOT_FOUND.value)
        return esim

    # -- admin ------------------------------------------------------------------------------

    def admin_routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/accounts", self._add_account),
            Route("POST", "/esims", self._seed_esims),
            Route("GET", "/esims/{eid}", self._show_esim),
            Route("POST", "/esims/{eid}/errors", self._set_errors),
            Route("GET", "/config", self._show_config),
            Route("POST", "/config", self._update_config),
            Route("GET", "/operations", self._show_operations),
        ]

    def _add_account(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        api_key = required_str(payload, "api_key")
        label = str(payload.get("label") or api_key)
        # Calls a minute for the account: default 1,000; ``0``/``null`` means unlimited.
        per_minute = optional_rate(payload, "calls_per_minute", DEFAULT_CALLS_PER_MINUTE) or None
        self._accounts[api_key] = TealAccount(
            name=f"Teal account {label}",
            bucket=minute_bucket_for(per_minute),
            api_key=api_key,
            api_secret=required_str(payload, "api_secret"),
            label=label,
        )
        return json_response(201, {"api_key": api_key, "calls_per_minute": per_minute})

    def _seed_esims(self, call: Call) -> SimResponse:
        """Create or replace eSIMs of an account; validated in full before any is stored."""
        payload = call.request.json_object()
        api_key = required_str(payload, "api_key")
        if api_key not in self._accounts:
            raise InvalidPayload(f"no Teal account {api_key!r}; add it first")
        esims = [_new_esim(api_key, entry) for entry in required_list(payload, "esims")]
        for esim in esims:
            self._state.esims[esim.eid] = esim
        return json_response(201, {"seeded": len(esims)})

    def _show_esim(self, call: Call) -> SimResponse:
        self._state.settle_due()
        esim = self._admin_esim(call)
        return json_response(
            200,
            {
                **esim.as_json(),
                "account": self._accounts[esim.api_key].label,
                "entry_error": esim.entry_error,
                "operation_error": esim.operation_error,
            },
        )

    def _set_errors(self, call: Call) -> SimResponse:
        esim = self._admin_esim(call)
        payload = call.request.json_object()
        esim.entry_error = optional_text(payload, "entry_error")
        esim.operation_error = optional_text(payload, "operation_error")
        return json_response(
            200, {"entry_error": esim.entry_error, "operation_error": esim.operation_error}
        )

    def _show_config(self, call: Call) -> SimResponse:
        return json_response(200, self._state.config.as_json())

    def _update_config(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        config = self._state.config
        if "completion_seconds" in payload:
            value = payload["completion_seconds"]
            if value == NEVER:
                config.completion_seconds = None
            elif isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                config.completion_seconds = float(value)
            else:
                raise InvalidPayload('completion_seconds must be a non-negative number or "never"')
        if "interim_polls" in payload:
            polls = payload["interim_polls"]
            if isinstance(polls, bool) or not isinstance(polls, int) or polls < 0:
                raise InvalidPayload("interim_polls must be a non-negative integer")
            config.interim_polls = polls
        return json_response(200, config.as_json())

    def _show_operations(self, call: Call) -> SimResponse:
        self._state.settle_due()
        return json_response(
            200, {"operations": [op.describe() for op in self._state.operations.values()]}
        )

    def _admin_esim(self, call: Call) -> TealEsim:
        esim = self._state.esims.get(call.params["eid"])
        if esim is None:
            raise AdminError(404, f"no eSIM {call.params['eid']}")
        return esim


def _teal_account(call: Call) -> TealAccount:
    assert isinstance(call.account, TealAccount)
    return call.account


def _validation(message: str) -> CarrierError:
    return CarrierError(400, message, code=ErrorCode.VALIDATION_ERROR.value)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _entries(call: Call) -> tuple[str, ...]:
    entries = call.request.json_object().get("entries")
    if (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(eid, str) and eid for eid in entries)
    ):
        raise _validation("entries must be a non-empty list of EIDs")
    return tuple(entries)


def _eid_key(call: Call) -> str:
    return call.params["eid"]


def _request_id_key(call: Call) -> str:
    return call.params["request_id"]


def _posted_eid(call: Call) -> str | None:
    """Enable/disable calls are counted and faulted under the (first) EID they name."""
    entries = call.request.json_object().get("entries")
    if isinstance(entries, list) and entries and isinstance(entries[0], str):
        return entries[0]
    return None


def _new_esim(api_key: str, entry: Any) -> TealEsim:
    if not isinstance(entry, dict):
        raise InvalidPayload("each eSIM must be an object")
    status = entry.get("status", ONLINE)
    if status not in ESIM_STATES:
        raise InvalidPayload(f"status must be one of {', '.join(ESIM_STATES)}, not {status!r}")
    return TealEsim(
        eid=required_str(entry, "eid"),
        iccid=required_str(entry, "iccid"),
        api_key=api_key,
        status=status,
        plan=str(entry.get("plan") or DEFAULT_PLAN),
    )
