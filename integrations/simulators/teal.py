"""Teal's eSIM API as ``docs/carriers/teal.md`` describes it: the routes and the admin API.
eSIMs and the operations on them are :mod:`.teal_operations`'s; the callbacks Teal sends when an
operation completes are :mod:`.teal_callbacks`'.

Client base_url: ``http://127.0.0.1:{port}/teal`` (the client appends ``/api/v1``). Every call
needs an account's ``ApiKey`` and ``ApiSecret`` headers; an eSIM belongs to one account and is
invisible (404 ESIM_NOT_FOUND) to the others. Errors are ``{"success": false, "errorCode",
"message"}``.

Every operation is asynchronous and named by the caller's ``requestId`` (exactly 32 letters or
digits) with a non-empty ``callbackUrl``, both required (400 VALIDATION_ERROR otherwise):

- ``POST /esims/enable|disable?requestId=…&callbackUrl=…`` with ``{"entries": [eid, …]}`` and
  ``GET /esims/info?eid=…&limit=1&requestId=…&callbackUrl=…`` answer 200 ``{"success": true,
  "link": {"operationResult": {"href": …}}}`` at once. A requestId used before starts a new
  operation (Teal documents no de-duplication): ``submissions`` shows a client that repeats
  one. A second change of an eSIM while one is running → 409 FLOW_RESTRICTED_ERROR.
- ``GET /operation-result?requestId=…`` while running answers a real HTTP **102 Processing**
  interim response and then, ``final_delay_seconds`` later on the same connection, a final
  ``200 {"success": true, "entries": []}``: a client that reads the 102 as its answer and keeps
  the connection reads that stale answer as the answer to its next request. Done → 200
  ``{"success", "entries", "message"?}``; unknown requestId → 404 VALIDATION_ERROR.
- Operations complete ``completion_seconds`` after they were created (``"never"`` keeps them
  running); a timer completes them on time and invokes their callbackUrl with ``requestId``
  appended (``callback_method`` GET, or POST with a small JSON body).

The per-account rate limit is per minute (1,000 by default, Teal's published service level):
a bucket of that many calls, refilled continuously; an empty bucket answers 429 Retry-After 1.
"""

from __future__ import annotations

import hmac
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from .carrier import Account, AdminError, CarrierError, CarrierSimulator
from .messages import SimResponse, json_response
from .payloads import InvalidPayload, optional_rate, optional_text, required_list, required_str
from .ratelimit import minute_limit_for, rate_window
from .routing import Call, Route
from .teal_callbacks import send_callback
from .teal_operations import (
    CALLBACK_METHODS,
    ESIM_STATES,
    NEVER,
    ONLINE,
    READ,
    STUCK_STATES,
    EsimOperations,
    TealEsim,
    TealOperation,
)

API = "/api/v1"
DEFAULT_CALLS_PER_MINUTE = 1000.0
DEFAULT_PLAN = "teal-global-1gb"
REQUEST_ID = re.compile(r"[A-Za-z0-9]{32}")
STALE_FINAL_ANSWER = {"success": True, "entries": []}


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
    404: ErrorCode.VALIDATION_ERROR,
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
        self._timer: threading.Timer | None = None
        super().__init__()

    def reset(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._accounts: dict[str, TealAccount] = {}
        self._state = EsimOperations(self._clock)

    # -- contract ---------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", f"{API}/esims/enable", self._enable, op="enable", key=_posted_eid),
            Route("POST", f"{API}/esims/disable", self._disable, op="disable", key=_posted_eid),
            Route("GET", f"{API}/esims/info", self._info, op="esim_info", key=_queried_eid),
            Route(
                "GET",
                f"{API}/operation-result",
                self._operation_result,
                op="operation_result",
                key=_queried_request_id,
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
        body = {"success": False, "errorCode": error_code.name, "message": message}
        return json_response(status, body, headers)

    def _enable(self, call: Call) -> SimResponse:
        return self._queue(call, "enable", _entries(call))

    def _disable(self, call: Call) -> SimResponse:
        return self._queue(call, "disable", _entries(call))

    def _info(self, call: Call) -> SimResponse:
        eid = call.request.query.get("eid", "")
        if not eid:
            raise _validation("eid is required")
        return self._queue(call, READ, (eid,))

    def _queue(self, call: Call, action: str, eids: tuple[str, ...]) -> SimResponse:
        account = _teal_account(call)
        query = call.request.query
        request_id = query.get("requestId", "")
        if not REQUEST_ID.fullmatch(request_id):
            raise _validation(f"requestId must be 32 alphanumeric characters, not {request_id!r}")
        callback_url = query.get("callbackUrl", "")
        if not callback_url:
            raise _validation("callbackUrl is required")
        with self._state.lock:
            self._state.settle_due()
            esims = [self._esim(call, eid) for eid in eids]
            for esim in esims:
                _raise_generic_error(esim)
            if action != READ:
                for eid in eids:
                    busy = self._state.running_change_on(eid, other_than=request_id)
                    if busy is not None:
                        raise CarrierError(
                            409,
                            f"eSIM {eid} has an operation in progress "
                            f"(requestId {busy.request_id})",
                            code=ErrorCode.FLOW_RESTRICTED_ERROR.value,
                        )
            self._state.start(
                request_id=request_id,
                api_key=account.api_key,
                action=action,
                eids=eids,
                callback_url=callback_url,
            )
            self._schedule()
        href = f"http://{call.request.header('Host') or '127.0.0.1'}{self.prefix}{API}"
        link = f"{href}/operation-result?requestId={request_id}"
        return json_response(200, {"success": True, "link": {"operationResult": {"href": link}}})

    def _operation_result(self, call: Call) -> SimResponse:
        account = _teal_account(call)
        request_id = call.request.query.get("requestId", "")
        if not request_id:
            raise _validation("requestId is required")
        with self._state.lock:
            operation = self._state.operations.get(request_id)
            if operation is None or operation.api_key != account.api_key:
                raise CarrierError(404, f"No operation found for requestId {request_id}")
            operation.polls += 1
            self._state.settle(operation)
            self._schedule()
            if operation.done:
                return json_response(200, operation.result_json())
            operation.interim_answers += 1
            return SimResponse(
                status=102,
                final=json_response(200, STALE_FINAL_ANSWER),
                final_delay_s=self._state.config.final_delay_seconds,
            )

    def _esim(self, call: Call, eid: str) -> TealEsim:
        esim = self._state.esims.get(eid)
        if esim is None or esim.api_key != _teal_account(call).api_key:
            raise CarrierError(404, f"eSIM {eid} not found", code=ErrorCode.ESIM_NOT_FOUND.value)
        return esim

    # -- completion and callbacks -------------------------------------------------------------

    def _schedule(self) -> None:
        """(Re)arm the one timer for the next completion, or at once for completed operations
        whose callback is still to be sent. Call under the state's lock."""
        state = self._state
        pending_signal = any(op.done and not op.signal_taken for op in state.operations.values())
        delay = 0.0 if pending_signal else state.seconds_to_next_completion()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if delay is None:
            return
        self._timer = threading.Timer(delay, self._complete_due, args=(state,))
        self._timer.daemon = True
        self._timer.start()

    def _complete_due(self, state: EsimOperations) -> None:
        """The timer: complete what is due, send its callbacks (outside the lock), re-arm."""
        with state.lock:
            if state is not self._state:
                return  # reset meanwhile
            state.settle_due()
            signals = state.take_signals()
            method = state.config.callback_method
        for operation in signals:
            self._signal(state, operation, method)
        with state.lock:
            if state is self._state:
                self._schedule()

    @staticmethod
    def _signal(state: EsimOperations, operation: TealOperation, method: str) -> None:
        record = send_callback(operation.callback_url, operation.request_id, method=method)
        with state.lock:
            operation.callback = record

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
            limit=minute_limit_for(per_minute, rate_window(payload)),
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
        with self._state.lock:
            for esim in esims:
                self._state.esims[esim.eid] = esim
        return json_response(201, {"seeded": len(esims)})

    def _show_esim(self, call: Call) -> SimResponse:
        with self._state.lock:
            self._state.settle_due()
            esim = self._admin_esim(call)
            return json_response(
                200,
                {
                    **esim.as_json(),
                    "account": self._accounts[esim.api_key].label,
                    "entry_error": esim.entry_error,
                    "operation_error": esim.operation_error,
                    "generic_errors": esim.generic_errors,
                    "stuck": esim.stuck,
                },
            )

    def _set_errors(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        with self._state.lock:
            esim = self._admin_esim(call)
            esim.entry_error = optional_text(payload, "entry_error")
            esim.operation_error = optional_text(payload, "operation_error")
            esim.generic_errors = _count(payload, "generic_errors")
            status = payload.get("generic_error_status", 400)
            if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status < 600:
                raise InvalidPayload("generic_error_status must be an HTTP status (200-599)")
            esim.generic_error_status = status
            stuck = payload.get("stuck")
            if stuck is not None and stuck not in STUCK_STATES:
                raise InvalidPayload(f"stuck must be one of {STUCK_STATES} or null")
            esim.stuck = stuck
            return json_response(
                200,
                {
                    "entry_error": esim.entry_error,
                    "operation_error": esim.operation_error,
                    "generic_errors": esim.generic_errors,
                    "generic_error_status": esim.generic_error_status,
                    "stuck": esim.stuck,
                },
            )

    def _show_config(self, call: Call) -> SimResponse:
        return json_response(200, self._state.config.as_json())

    def _update_config(self, call: Call) -> SimResponse:
        payload = call.request.json_object()
        with self._state.lock:
            config = self._state.config
            if "completion_seconds" in payload:
                config.completion_seconds = _seconds(payload, "completion_seconds", never=True)
            if "final_delay_seconds" in payload:
                config.final_delay_seconds = _seconds(payload, "final_delay_seconds") or 0.0
            if "callback_method" in payload:
                method = payload["callback_method"]
                if method not in CALLBACK_METHODS:
                    raise InvalidPayload(f"callback_method must be one of {CALLBACK_METHODS}")
                config.callback_method = method
            if "callbacks" in payload:
                if not isinstance(payload["callbacks"], bool):
                    raise InvalidPayload("callbacks must be true or false")
                config.callbacks = payload["callbacks"]
            self._schedule()
            return json_response(200, config.as_json())

    def _show_operations(self, call: Call) -> SimResponse:
        with self._state.lock:
            self._state.settle_due()
            operations = [op.describe() for op in self._state.operations.values()]
        return json_response(200, {"operations": operations})

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


def _raise_generic_error(esim: TealEsim) -> None:
    """An injected GENERIC_ERROR for a call naming this eSIM (counted down)."""
    if esim.generic_errors <= 0:
        return
    esim.generic_errors -= 1
    raise CarrierError(
        esim.generic_error_status,
        "An unexpected error occurred; please retry",
        code=ErrorCode.GENERIC_ERROR.value,
    )


def _entries(call: Call) -> tuple[str, ...]:
    entries = call.request.json_object().get("entries")
    if (
        not isinstance(entries, list)
        or not entries
        or not all(isinstance(eid, str) and eid for eid in entries)
    ):
        raise _validation("entries must be a non-empty list of EIDs")
    return tuple(entries)


def _queried_eid(call: Call) -> str | None:
    return call.request.query.get("eid") or None


def _queried_request_id(call: Call) -> str | None:
    return call.request.query.get("requestId") or None


def _posted_eid(call: Call) -> str | None:
    """Enable/disable calls are counted and faulted under the (first) EID they name."""
    entries = call.request.json_object().get("entries")
    if isinstance(entries, list) and entries and isinstance(entries[0], str):
        return entries[0]
    return None


def _seconds(payload: dict[str, Any], name: str, *, never: bool = False) -> float | None:
    value = payload[name]
    if never and value == NEVER:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    suffix = ' or "never"' if never else ""
    raise InvalidPayload(f"{name} must be a non-negative number{suffix}")


def _count(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidPayload(f"{name} must be a non-negative integer")
    return value


def _new_esim(api_key: str, entry: Any) -> TealEsim:
    if not isinstance(entry, dict):
        raise InvalidPayload("each eSIM must be an object")
    status = entry.get("status", ONLINE)
    if status not in ESIM_STATES:
        raise InvalidPayload(f"status must be one of {', '.join(ESIM_STATES)}, not {status!r}")
    suspended = entry.get("suspended", False)
    if not isinstance(suspended, bool):
        raise InvalidPayload("suspended must be true or false")
    return TealEsim(
        eid=required_str(entry, "eid"),
        iccid=required_str(entry, "iccid"),
        api_key=api_key,
        status=status,
        plan=str(entry.get("plan") or DEFAULT_PLAN),
        suspended=suspended,
    )
