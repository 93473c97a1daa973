"""Verizon ThingSpace (Connectivity Management M2M API) as ``docs/carriers/thingspace.md``
describes it: the routes and the admin API. Logins live in :mod:`.thingspace_auth`, devices
and their asynchronous action requests in :mod:`.thingspace_actions`.

Client base_url: ``http://127.0.0.1:{port}/thingspace``.

- **Authentication.** ``POST /api/ts/v1/oauth2/token`` with Basic ``client_key:client_secret``
  and the form ``grant_type=client_credentials`` issues an access token;
  ``POST /api/m2m/v1/session/login`` with that Bearer token and the UWS
  ``username``/``password`` issues a session token. Every other call needs both
  (``Authorization: Bearer`` and ``VZ-M2M-Token``), else 401. Lifetimes, the UWS lock and
  revocation (``/_sim/thingspace/tokens/expire``, to force a 401 mid-run) are
  :mod:`.thingspace_auth`'s.
- **Reads.** ``POST /api/m2m/v1/devices/actions/list`` answers the device (ICCID, IMEI,
  state), or an empty ``devices`` list when the account has no such device.
- **Changes are asynchronous.** ``POST /api/m2m/v1/devices/actions/{action}`` (suspend,
  restore, deactivate, activate; one device a request) answers 202 with a ``requestId``,
  polled at ``GET /api/m2m/v1/accounts/{account_name}/requests/{request_id}/status`` (only
  ``{requestId, status}``; an unknown request id is 400); how a request stays ``Pending`` and
  then succeeds or fails is :mod:`.thingspace_actions`'s. Activate needs ``servicePlan``, a
  5-digit ``mdnZipCode`` and the IMEI paired with the ICCID (or a ``skuNumber``); an active
  device answers 400 ``DeviceAlreadyActive``; an unknown device is 400 ``DeviceNotFound``.
- **Callbacks.** ``GET/POST /api/m2m/v1/callbacks/{account_name}`` and
  ``DELETE /api/m2m/v1/callbacks/{account_name}/name/{service_name}`` keep the account's
  listeners; completed requests are reported to its ``CarrierService`` listener
  (:mod:`.thingspace_callbacks`).
- **Errors** carry ``{"errorCode", "errorMessage"}``, codes namespaced like Verizon's
  (``UnifiedWebService.REQUEST_FAILED.DeviceNotFound``). Rate limits are per account. The
  simulator does not de-duplicate on ``Idempotency-Key``: every submit creates a request.

Time knobs (``POST /_sim/thingspace/config``): ``completion_delay_ms`` (how long requests stay
Pending), ``session_inactivity_seconds`` (20 minutes), ``callback_retry_seconds`` (300) and
``callback_attempts`` (4).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs

from .carrier import Account, AdminError, CarrierError, CarrierSimulator
from .messages import SimResponse, json_response
from .payloads import (
    InvalidPayload,
    one_of,
    optional_int,
    optional_rate,
    optional_text,
    required,
    required_list,
    required_str,
)
from .ratelimit import limit_for, rate_window
from .routing import Call, Route
from .thingspace_actions import (
    ACTIVE,
    INJECTED_FAULT,
    STATES,
    TRANSITIONS,
    Device,
    DeviceActions,
    Fault,
)
from .thingspace_auth import (
    DEFAULT_TOKEN_SECONDS,
    ERROR_CODES,
    TOKEN_KINDS,
    ErrorCode,
    ThingSpaceAccount,
    ThingSpaceLogins,
)
from .thingspace_callbacks import CallbackSender, Listener

OAUTH_PATH = "/api/ts/v1/oauth2/token"
LOGIN_PATH = "/api/m2m/v1/session/login"
ACTIONS_PATH = "/api/m2m/v1/devices/actions"
CALLBACKS_PATH = "/api/m2m/v1/callbacks/{account_name}"
_ZIP_CODE = re.compile(r"\d{5}")

DEFAULT_RATE_LIMIT = 50.0

# errorCode for each status (the carrier's own errors and the core's: faults, 429, bad JSON).
CODES_BY_STATUS: Mapping[int, str] = {
    400: "REQUEST_FAILED.BadRequest",
    401: "UnauthorizedAccess",
    403: "REQUEST_FAILED.Forbidden",
    404: "REQUEST_FAILED.NotFound",
    405: "REQUEST_FAILED.MethodNotAllowed",
    429: "REQUEST_FAILED.TooManyRequests",
}
DEFAULT_CODE = "REQUEST_FAILED.UnexpectedError"


class ThingSpaceSimulator(CarrierSimulator):
    name = "thingspace"
    prefix = "/thingspace"

    def reset(self) -> None:
        if not hasattr(self, "_state"):
            # The state lock: the callback sender's thread takes it, never the core's lock.
            self._state = threading.RLock()
            self._callbacks = CallbackSender(
                lock=self._state, settle=self._settle, next_due=self._next_due
            )
        with self._state:
            self._logins = ThingSpaceLogins()
            self._actions = DeviceActions(on_complete=self._callbacks.request_completed)
            self._callbacks.reset()

    def _settle(self) -> None:
        self._actions.settle()

    def _next_due(self) -> float | None:
        return self._actions.next_due()

    # -- contract ---------------------------------------------------------------------------

    def routes(self) -> Sequence[Route]:
        return [
            Route("POST", OAUTH_PATH, self._issue_token, op="oauth_token", key=self._client_key),
            Route("POST", LOGIN_PATH, self._log_in, op="session_login", key=self._bearer_key),
            # Before the {action} pattern: the first matching route wins.
            Route("POST", f"{ACTIONS_PATH}/list", self._list, op="list_devices", key=_listed_iccid),
            Route(
                "POST",
                f"{ACTIONS_PATH}/{{action}}",
                self._submit,
                op="submit_action",
                key=_submitted_iccid,
            ),
            Route(
                "GET",
                "/api/m2m/v1/accounts/{account_name}/requests/{request_id}/status",
                self._request_status,
                op="request_status",
                key=self._request_key,
            ),
            Route("GET", CALLBACKS_PATH, self._list_callbacks, op="list_callbacks"),
            Route("POST", CALLBACKS_PATH, self._register_callback, op="register_callback"),
            Route(
                "DELETE",
                CALLBACKS_PATH + "/name/{service_name}",
                self._deregister_callback,
                op="deregister_callback",
            ),
        ]

    def authenticate(self, call: Call) -> Account:
        """Basic key:secret for the token call, the Bearer token for login, and both tokens
        for everything else."""
        path = call.request.path[len(self.prefix) :]
        if path == OAUTH_PATH:
            return self._logins.client_account(call.request)
        device_call = path != LOGIN_PATH
        if device_call:
            self._logins.count_down_revocation()
        return self._logins.token_account(call.request, needs_session=device_call)

    def error_response(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> SimResponse:
        name = ERROR_CODES.get(code) if code is not None else None
        body = {
            "errorCode": name or CODES_BY_STATUS.get(status, DEFAULT_CODE),
            "errorMessage": message,
        }
        return json_response(status, body, headers)

    def _issue_token(self, call: Call) -> SimResponse:
        account = _account(call)
        form = parse_qs(call.request.body.decode("utf-8", errors="replace"))
        if form.get("grant_type") != ["client_credentials"]:
            raise CarrierError(400, "grant_type must be client_credentials")
        token, seconds = self._logins.issue_access_token(account)
        return json_response(
            200,
            {"access_token": token, "token_type": "bearer", "expires_in": seconds, "scope": "m2m"},
        )

    def _log_in(self, call: Call) -> SimResponse:
        account = _account(call)
        payload = call.request.json_object()
        token = self._logins.open_session(
            account,
            username=required_str(payload, "username"),
            password=required_str(payload, "password"),
        )
        return json_response(200, {"sessionToken": token})

    def _list(self, call: Call) -> SimResponse:
        account = _account(call)
        payload = call.request.json_object()
        _check_account_name(account, payload)
        iccid = _device_id(required(payload, "deviceId"))
        with self._state:
            self._actions.settle()
            device = self._actions.devices.get(iccid)
            if device is None or device.account_name != account.account_name:
                return json_response(200, {"hasMoreData": False, "devices": []})
            return json_response(200, {"hasMoreData": False, "devices": [device.as_json()]})

    def _submit(self, call: Call) -> SimResponse:
        account = _account(call)
        action = call.params["action"]
        if action not in TRANSITIONS:
            raise CarrierError(400, f"Unknown action {action!r}", code=ErrorCode.INPUT_INVALID)
        payload = call.request.json_object()
        _check_account_name(account, payload)
        entries = required(payload, "devices")
        if not isinstance(entries, list) or len(entries) != 1:
            raise _input_invalid(
                "devices must list exactly one device (the request status works only for "
                "single-device requests)"
            )
        device_ids = _device_ids(entries[0])
        iccid = device_ids.get("iccid")
        if not iccid:
            raise _input_invalid("each device needs an iccid device id")
        with self._state:
            self._actions.settle()
            device = self._device(account, iccid)
            fields = _action_fields(action, payload, device, device_ids)
            request = self._actions.submit(
                account_name=account.account_name, action=action, device=device, fields=fields
            )
            self._callbacks.wake()
        return json_response(202, {"requestId": request.request_id})

    def _request_status(self, call: Call) -> SimResponse:
        account = _account(call)
        if call.params["account_name"] != account.account_name:
            raise CarrierError(
                403, f"Session is not authorized for account {call.params['account_name']}"
            )
        with self._state:
            self._actions.settle()
            request = self._actions.requests.get(call.params["request_id"])
            if request is None or request.account_name != account.account_name:
                raise CarrierError(
                    400,
                    f"Request {call.params['request_id']} not found",
                    code=ErrorCode.REQUEST_NOT_FOUND,
                )
            return json_response(200, request.as_json())

    def _list_callbacks(self, call: Call) -> SimResponse:
        account_name = _path_account(call)
        with self._state:
            listeners = self._callbacks.listed(account_name)
        return json_response(200, [listener.as_json() for listener in listeners])

    def _register_callback(self, call: Call) -> SimResponse:
        account_name = _path_account(call)
        listener = self._register(call.request.json_object(), account_name, name_field="name")
        return json_response(
            200, {"accountName": account_name, "serviceName": listener.service_name}
        )

    def _deregister_callback(self, call: Call) -> SimResponse:
        account_name = _path_account(call)
        service_name = call.params["service_name"]
        with self._state:
            removed = self._callbacks.deregister(account_name, service_name)
        if removed is None:
            raise _input_invalid(f"No {service_name} callback registered for {account_name}")
        return json_response(200, {"accountName": account_name, "serviceName": service_name})

    # -- state ------------------------------------------------------------------------------

    def _device(self, account: ThingSpaceAccount, iccid: str) -> Device:
        device = self._actions.devices.get(iccid)
        if device is None or device.account_name != account.account_name:
            raise CarrierError(
                400,
                f"Device {iccid} not found in account {account.account_name}",
                code=ErrorCode.DEVICE_NOT_FOUND,
            )
        return device

    # -- counter keys -----------------------------------------------------------------------

    def _client_key(self, call: Call) -> str | None:
        """Token calls are counted under the account name their client key belongs to."""
        return self._logins.client_account_name(call.request)

    def _bearer_key(self, call: Call) -> str | None:
        """Logins are counted under the account name of their access token."""
        return self._logins.bearer_account_name(call.request)

    def _request_key(self, call: Call) -> str:
        """Request-status calls are counted under the request's (first) ICCID."""
        request = self._actions.requests.get(call.params["request_id"])
        return request.iccid if request is not None else call.params["request_id"]

    # -- admin ------------------------------------------------------------------------------

    def admin_routes(self) -> Sequence[Route]:
        return [
            Route("POST", "/accounts", self._add_account),
            Route("POST", "/devices", self._seed_devices),
            Route("GET", "/devices/{iccid}", self._show_device),
            Route("GET", "/config", self._show_config),
            Route("POST", "/config", self._update_config),
            Route("POST", "/tokens/expire", self._expire_tokens),
            Route("POST", "/failures", self._set_failure),
            Route("GET", "/callbacks", self._show_callbacks),
            Route("POST", "/callbacks", self._add_callback),
        ]

    def _add_account(self, call: Call) -> SimResponse:
        """Create or replace an account (which also unlocks its UWS user)."""
        payload = call.request.json_object()
        account_name = required_str(payload, "account_name")
        rate_limit = optional_rate(payload, "rate_limit", DEFAULT_RATE_LIMIT)
        token_seconds = optional_int(payload, "token_seconds") or DEFAULT_TOKEN_SECONDS
        client_key = required_str(payload, "client_key")
        other = self._logins.account_by_key(client_key)
        if other is not None and other.account_name != account_name:
            raise InvalidPayload(f"client_key is already used by account {other.account_name}")
        self._logins.accounts[account_name] = ThingSpaceAccount(
            name=f"account {account_name}",
            limit=limit_for(rate_limit, rate_window(payload)),
            account_name=account_name,
            client_key=client_key,
            client_secret=required_str(payload, "client_secret"),
            username=required_str(payload, "username"),
            password=required_str(payload, "password"),
            token_seconds=token_seconds,
        )
        return json_response(201, {"account_name": account_name, "rate_limit": rate_limit})

    def _seed_devices(self, call: Call) -> SimResponse:
        """Create or replace devices; validated in full before any is stored."""
        payload = call.request.json_object()
        account_name = required_str(payload, "account_name")
        if account_name not in self._logins.accounts:
            raise InvalidPayload(f"no ThingSpace account {account_name!r}; add it first")
        devices = []
        for entry in required_list(payload, "devices"):
            if not isinstance(entry, dict):
                raise InvalidPayload("each device must be an object")
            devices.append(
                Device(
                    iccid=required_str(entry, "iccid"),
                    account_name=account_name,
                    state=one_of(entry, "state", STATES) if "state" in entry else ACTIVE,
                    imei=str(entry.get("imei") or ""),
                    service_plan=str(entry.get("service_plan") or ""),
                )
            )
        with self._state:
            for device in devices:
                old = self._actions.devices.get(device.iccid)
                if old is not None:  # re-seeding changes the state, not the history
                    device.request_ids = old.request_ids
                self._actions.devices[device.iccid] = device
        return json_response(201, {"seeded": len(devices)})

    def _show_device(self, call: Call) -> SimResponse:
        with self._state:
            self._actions.settle()
            device = self._actions.devices.get(call.params["iccid"])
            if device is None:
                raise AdminError(404, f"no device {call.params['iccid']}")
            requests = [self._actions.requests[request_id] for request_id in device.request_ids]
            return json_response(
                200,
                {
                    "iccid": device.iccid,
                    "account_name": device.account_name,
                    "state": device.state,
                    "imei": device.imei,
                    "service_plan": device.service_plan,
                    "mdn_zip_code": device.mdn_zip_code,
                    "requests": [
                        {
                            "requestId": request.request_id,
                            "action": request.action,
                            "fields": request.fields,
                            "status": request.status,
                            "error": request.fault.faultstring if request.fault else None,
                        }
                        for request in requests
                    ],
                },
            )

    def _show_config(self, call: Call) -> SimResponse:
        with self._state:
            return json_response(
                200,
                {
                    "completion_delay_ms": self._actions.completion_delay_ms,
                    "session_inactivity_seconds": self._logins.session_inactivity_seconds,
                    "callback_retry_seconds": self._callbacks.retry_seconds,
                    "callback_attempts": self._callbacks.max_attempts,
                },
            )

    def _update_config(self, call: Call) -> SimResponse:
        """``completion_delay_ms``: how long requests stay Pending (``null`` = forever);
        ``session_inactivity_seconds``: a session's idle lifetime; ``callback_retry_seconds``
        and ``callback_attempts``: how unacknowledged callbacks are sent again. Each optional."""
        payload = call.request.json_object()
        knobs = ("completion_delay_ms", "session_inactivity_seconds", "callback_retry_seconds")
        if not set(payload) & {*knobs, "callback_attempts"}:
            raise InvalidPayload(f"give one of {', '.join(knobs)}, callback_attempts")
        with self._state:
            if "completion_delay_ms" in payload:
                delay = payload["completion_delay_ms"]
                if delay is not None and (
                    isinstance(delay, bool) or not isinstance(delay, int) or delay < 0
                ):
                    raise InvalidPayload(
                        "completion_delay_ms must be a non-negative integer or null"
                    )
                self._actions.completion_delay_ms = delay
            if "session_inactivity_seconds" in payload:
                seconds = _positive_number(payload, "session_inactivity_seconds")
                self._logins.session_inactivity_seconds = seconds
            if "callback_retry_seconds" in payload:
                self._callbacks.retry_seconds = _positive_number(payload, "callback_retry_seconds")
            if "callback_attempts" in payload:
                attempts = optional_int(payload, "callback_attempts")
                if attempts is None or attempts < 1:
                    raise InvalidPayload("callback_attempts must be at least 1")
                self._callbacks.max_attempts = attempts
            self._callbacks.wake()
        return self._show_config(call)

    def _show_callbacks(self, call: Call) -> SimResponse:
        """Every listener (credentials left out) and every callback delivery so far."""
        with self._state:
            return json_response(
                200,
                {
                    "listeners": [
                        listener.as_json() for listener in self._callbacks.listeners.values()
                    ],
                    "deliveries": [d.as_json() for d in self._callbacks.deliveries],
                },
            )

    def _add_callback(self, call: Call) -> SimResponse:
        """Register a listener as another system would (``account_name``, ``service_name``,
        ``url``, optional ``username``/``password``)."""
        payload = call.request.json_object()
        account_name = required_str(payload, "account_name")
        listener = self._register(payload, account_name, name_field="service_name")
        return json_response(201, listener.as_json())

    def _register(
        self, payload: Mapping[str, Any], account_name: str, *, name_field: str
    ) -> Listener:
        """Register (or replace) the listener ``payload`` describes."""
        listener = Listener(
            account_name=account_name,
            service_name=required_str(payload, name_field),
            url=required_str(payload, "url"),
            username=optional_text(payload, "username") or "",
            password=optional_text(payload, "password") or "",
        )
        with self._state:
            self._callbacks.register(listener)
        return listener

    def _expire_tokens(self, call: Call) -> SimResponse:
        """Revoke ``kind`` tokens (all, access, session) now, or once ``after_requests`` more
        device calls (list, submit, request status) have been served."""
        payload = call.request.json_object()
        kind = one_of(payload, "kind", TOKEN_KINDS) if "kind" in payload else "all"
        after = optional_int(payload, "after_requests") or 0
        if after < 0:
            raise InvalidPayload("after_requests must not be negative")
        if after:
            self._logins.revoke_after(kind, after)
            return json_response(200, {"revoked": 0, "after_requests": after})
        return json_response(200, {"revoked": self._logins.revoke_now(kind), "after_requests": 0})

    def _set_failure(self, call: Call) -> SimResponse:
        """Requests completing for ``iccid`` fail with the fault ``error`` (its faultstring)
        and ``faultcode`` (optional); ``error: null`` stops that."""
        payload = call.request.json_object()
        iccid = required_str(payload, "iccid")
        error = optional_text(payload, "error")
        faultcode = optional_text(payload, "faultcode") or INJECTED_FAULT
        with self._state:
            if error is None:
                self._actions.failures.pop(iccid, None)
            else:
                self._actions.failures[iccid] = Fault(faultcode, error)
        return json_response(200, {"iccid": iccid, "error": error, "faultcode": faultcode})


def _account(call: Call) -> ThingSpaceAccount:
    assert isinstance(call.account, ThingSpaceAccount)
    return call.account


def _check_account_name(account: ThingSpaceAccount, payload: Mapping[str, Any]) -> None:
    account_name = required_str(payload, "accountName")
    if account_name != account.account_name:
        raise CarrierError(403, f"Session is not authorized for account {account_name}")


def _input_invalid(message: str) -> CarrierError:
    return CarrierError(400, message, code=ErrorCode.INPUT_INVALID)


def _path_account(call: Call) -> str:
    """The account name in the path, which must be the session's."""
    account = _account(call)
    if call.params["account_name"] != account.account_name:
        raise CarrierError(
            403, f"Session is not authorized for account {call.params['account_name']}"
        )
    return account.account_name


def _positive_number(payload: Mapping[str, Any], name: str) -> float:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidPayload(f"{name} must be a positive number")
    return float(value)


def _device_id(value: Any) -> str:
    """The ICCID of a ``{"kind": "iccid", "id": ...}`` device id (kind in any case)."""
    if not isinstance(value, dict):
        raise InvalidPayload("a device id must be an object with kind and id")
    if str(value.get("kind") or "").lower() != "iccid":
        raise InvalidPayload("device id kind must be 'iccid'")
    return required_str(value, "id")


def _device_ids(entry: Any) -> dict[str, str]:
    """A device entry's ids by kind (lower case)."""
    device_ids = entry.get("deviceIds") if isinstance(entry, dict) else None
    if not isinstance(device_ids, list) or not device_ids:
        raise InvalidPayload("each device needs a non-empty deviceIds list")
    found: dict[str, str] = {}
    for value in device_ids:
        if not isinstance(value, dict):
            raise InvalidPayload("a device id must be an object with kind and id")
        found[str(value.get("kind") or "").lower()] = required_str(value, "id")
    return found


def _action_fields(
    action: str, payload: Mapping[str, Any], device: Device, device_ids: Mapping[str, str]
) -> dict[str, Any]:
    """The action's own body fields, checked: deactivate needs reasonCode and etfWaiver;
    activate needs servicePlan, a 5-digit mdnZipCode and the IMEI with the ICCID (or a
    skuNumber), and refuses an active device (DeviceAlreadyActive)."""
    if action == "deactivate":
        etf_waiver = required(payload, "etfWaiver")
        if not isinstance(etf_waiver, bool):
            raise _input_invalid("etfWaiver must be true or false")
        return {"reasonCode": required_str(payload, "reasonCode"), "etfWaiver": etf_waiver}
    if action != "activate":
        return {}
    fields: dict[str, Any] = {
        "servicePlan": required_str(payload, "servicePlan"),
        "mdnZipCode": required_str(payload, "mdnZipCode"),
    }
    if not _ZIP_CODE.fullmatch(str(fields["mdnZipCode"])):
        raise _input_invalid("mdnZipCode must be a 5-digit ZIP code")
    imei = device_ids.get("imei")
    sku_number = payload.get("skuNumber")
    if imei:
        if device.imei and imei != device.imei:
            raise _input_invalid(f"IMEI {imei} is not paired with ICCID {device.iccid}")
        fields["imei"] = imei
    elif isinstance(sku_number, str) and sku_number:
        fields["skuNumber"] = sku_number
    else:
        raise _input_invalid("activate needs the device's IMEI with its ICCID, or a skuNumber")
    if device.state == ACTIVE:
        raise CarrierError(
            400, f"Device {device.iccid} is already active", code=ErrorCode.DEVICE_ALREADY_ACTIVE
        )
    return fields


def _listed_iccid(call: Call) -> str | None:
    device_id = call.request.json_object().get("deviceId")
    return str(device_id.get("id")) if isinstance(device_id, dict) else None


def _submitted_iccid(call: Call) -> str | None:
    """Submits are counted under the ICCID they name."""
    try:
        return _device_ids(call.request.json_object()["devices"][0]).get("iccid")
    except (KeyError, IndexError, TypeError):
        return None
