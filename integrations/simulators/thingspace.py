"""Verizon ThingSpace (Connectivity Management M2M API) as ``docs/carriers/thingspace.md``
describes it.

Client base_url: ``http://127.0.0.1:{port}/thingspace``.

- **Authentication.** ``POST /api/ts/v1/oauth2/token`` with Basic ``client_key:client_secret``
  and the form ``grant_type=client_credentials`` issues an access token (``expires_in`` the
  account's ``token_seconds``, default 3600); ``POST /api/m2m/v1/session/login`` with that
  Bearer token and the UWS ``username``/``password`` issues a session token valid 20 minutes.
  Every other call needs both (``Authorization: Bearer`` and ``VZ-M2M-Token``), else 401.
  Five consecutive wrong passwords lock the UWS user (401 even with the right one) until the
  account is added again. ``/_sim/thingspace/tokens/expire`` revokes tokens now or after N
  more device calls, so a test can force a 401 mid-run.
- **Changes are asynchronous.** ``POST /api/m2m/v1/devices/actions/{action}`` (suspend,
  restore, deactivate, activate) answers 202 with a ``requestId``; the request stays
  ``Pending`` for the completion delay (default 300 ms, ``null`` = never; the delay in force
  when the request is read decides), then completes: ``Success`` with the device's new state,
  or ``Failed`` with the device's error when the action is not allowed from its state
  (suspend: active; restore: suspended; deactivate: active or suspended; activate: preactive
  or deactivated) or a failure was injected for its ICCID. An unknown device is 404 at once.
- **Errors** carry ``{"errorCode", "errorMessage"}``. Rate limits are per account. The
  simulator does not de-duplicate on ``Idempotency-Key``: every submit creates a request.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from .carrier import Account, AdminError, CarrierError, CarrierSimulator
from .messages import SimResponse, json_response
from .payloads import InvalidPayload, one_of, optional_int, optional_rate, required, required_str
from .ratelimit import bucket_for
from .routing import Call, Route

OAUTH_PATH = "/api/ts/v1/oauth2/token"
LOGIN_PATH = "/api/m2m/v1/session/login"
ACTIONS_PATH = "/api/m2m/v1/devices/actions"

ACTIVE = "active"
SUSPENDED = "suspended"
DEACTIVATED = "deactivated"
PREACTIVE = "preactive"
STATES = (ACTIVE, SUSPENDED, DEACTIVATED, PREACTIVE)

# action → (states it is allowed from, the state it leaves the device in)
TRANSITIONS: Mapping[str, tuple[frozenset[str], str]] = {
    "suspend": (frozenset({ACTIVE}), SUSPENDED),
    "restore": (frozenset({SUSPENDED}), ACTIVE),
    "deactivate": (frozenset({ACTIVE, SUSPENDED}), DEACTIVATED),
    "activate": (frozenset({PREACTIVE, DEACTIVATED}), ACTIVE),
}

PENDING = "Pending"
SUCCESS = "Success"
FAILED = "Failed"

DEFAULT_RATE_LIMIT = 50.0
DEFAULT_TOKEN_SECONDS = 3600
SESSION_SECONDS = 20 * 60
DEFAULT_COMPLETION_DELAY_MS = 300
LOCK_AFTER_FAILED_LOGINS = 5
TOKEN_KINDS = ("all", "access", "session")

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


@dataclass
class ThingSpaceAccount(Account):
    account_name: str = ""
    client_key: str = ""
    client_secret: str = ""
    username: str = ""
    password: str = ""
    token_seconds: int = DEFAULT_TOKEN_SECONDS
    failed_logins: int = 0

    @property
    def locked(self) -> bool:
        return self.failed_logins >= LOCK_AFTER_FAILED_LOGINS


@dataclass
class Token:
    account_name: str
    expires_at: float


@dataclass
class Device:
    iccid: str
    account_name: str
    state: str
    service_plan: str = ""
    mdn_zip_code: str = ""
    request_ids: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "deviceIds": [{"kind": "iccid", "id": self.iccid}],
            "carrierInformations": [{"state": self.state, "servicePlan": self.service_plan}],
        }


@dataclass
class ActionRequest:
    request_id: str
    account_name: str
    action: str
    iccids: list[str]
    fields: dict[str, Any]
    submitted_at: float
    status: str = PENDING
    errors: dict[str, str | None] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "requestId": self.request_id,
            "status": self.status,
            "devices": [
                {"id": iccid, "kind": "iccid", "error": self.errors.get(iccid)}
                for iccid in self.iccids
            ],
        }


class ThingSpaceSimulator(CarrierSimulator):
    name = "thingspace"
    prefix = "/thingspace"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._accounts: dict[str, ThingSpaceAccount] = {}
        self._access_tokens: dict[str, Token] = {}
        self._sessions: dict[str, Token] = {}
        self._devices: dict[str, Device] = {}
        self._requests: dict[str, ActionRequest] = {}
        self._pending: list[ActionRequest] = []
        self._failures: dict[str, str] = {}
        self._completion_delay_ms: int | None = DEFAULT_COMPLETION_DELAY_MS
        self._revoke: tuple[str, int] | None = None  # (kind, device calls left before it)

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
        ]

    def authenticate(self, call: Call) -> Account:
        """Basic key:secret for the token call, the Bearer token for login, and both tokens
        for everything else."""
        path = call.request.path[len(self.prefix) :]
        if path == OAUTH_PATH:
            return self._client_account(call)
        if path != LOGIN_PATH:
            self._count_down_revocation()
        now = time.monotonic()
        access = self._valid(self._access_tokens, _bearer(call), now)
        if access is None:
            raise CarrierError(401, "Invalid or expired access token")
        if path != LOGIN_PATH:
            session = self._valid(self._sessions, call.request.header("VZ-M2M-Token"), now)
            if session is None or session.account_name != access.account_name:
                raise CarrierError(401, "Invalid or expired session token (VZ-M2M-Token)")
        return self._accounts[access.account_name]

    def error_response(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> SimResponse:
        body = {"errorCode": CODES_BY_STATUS.get(status, DEFAULT_CODE), "errorMessage": message}
        return json_response(status, body, headers)

    def _issue_token(self, call: Call) -> SimResponse:
        account = _account(call)
        form = parse_qs(call.request.body.decode("utf-8", errors="replace"))
        if form.get("grant_type") != ["client_credentials"]:
            raise CarrierError(400, "grant_type must be client_credentials")
        token = f"ts-access-{uuid.uuid4().hex}"
        self._access_tokens[token] = Token(
            account.account_name, time.monotonic() + account.token_seconds
        )
        return json_response(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": account.token_seconds,
                "scope": "m2m",
            },
        )

    def _log_in(self, call: Call) -> SimResponse:
        account = _account(call)
        payload = call.request.json_object()
        username = required_str(payload, "username")
        password = required_str(payload, "password")
        if account.locked:
            raise CarrierError(401, f"UWS user {account.username} is locked; contact support")
        if not (
            hmac.compare_digest(username.encode(), account.username.encode())
            and hmac.compare_digest(password.encode(), account.password.encode())
        ):
            account.failed_logins += 1
            raise CarrierError(401, f"Invalid username or password for {username}")
        account.failed_logins = 0
        token = f"ts-session-{uuid.uuid4().hex}"
        self._sessions[token] = Token(account.account_name, time.monotonic() + SESSION_SECONDS)
        return json_response(200, {"sessionToken": token, "expiresIn": SESSION_SECONDS})

    def _list(self, call: Call) -> SimResponse:
        self._settle()
        account = _account(call)
        payload = call.request.json_object()
        _check_account_name(account, payload)
        device = self._device(account, _device_id(required(payload, "deviceId")))
        return json_response(200, {"devices": [device.as_json()], "hasMoreData": False})

    def _submit(self, call: Call) -> SimResponse:
        self._settle()
        account = _account(call)
        action = call.params["action"]
        if action not in TRANSITIONS:
            raise CarrierError(400, f"Unknown action {action!r}")
        payload = call.request.json_object()
        _check_account_name(account, payload)
        entries = required(payload, "devices")
        if not isinstance(entries, list) or not entries:
            raise InvalidPayload("devices must be a non-empty list")
        iccids = [_device_id(_first_device_id(entry)) for entry in entries]
        devices = [self._device(account, iccid) for iccid in iccids]
        fields = _action_fields(action, payload)
        request = ActionRequest(
            request_id=str(uuid.uuid4()),
            account_name=account.account_name,
            action=action,
            iccids=iccids,
            fields=fields,
            submitted_at=time.monotonic(),
        )
        self._requests[request.request_id] = request
        self._pending.append(request)
        for device in devices:
            device.request_ids.append(request.request_id)
        return json_response(202, {"requestId": request.request_id})

    def _request_status(self, call: Call) -> SimResponse:
        self._settle()
        account = _account(call)
        if call.params["account_name"] != account.account_name:
            raise CarrierError(
                403, f"Session is not authorized for account {call.params['account_name']}"
            )
        request = self._requests.get(call.params["request_id"])
        if request is None or request.account_name != account.account_name:
            raise CarrierError(404, f"Request {call.params['request_id']} not found")
        return json_response(200, request.as_json())

    # -- state ------------------------------------------------------------------------------

    def _settle(self) -> None:
        """Complete every pending request whose delay (the one in force now) has passed."""
        if self._completion_delay_ms is None or not self._pending:
            return
        due = time.monotonic() - self._completion_delay_ms / 1000
        still_pending = []
        for request in self._pending:
            if request.submitted_at <= due:
                self._complete(request)
            else:
                still_pending.append(request)
        self._pending = still_pending

    def _complete(self, request: ActionRequest) -> None:
        allowed_from, new_state = TRANSITIONS[request.action]
        for iccid in request.iccids:
            device = self._devices[iccid]
            error = self._failures.get(iccid)
            if error is None and device.state not in allowed_from:
                error = f"Device {iccid} is {device.state}; {request.action} is not allowed"
            request.errors[iccid] = error
            if error is None:
                device.state = new_state
                if request.action == "activate":
                    device.service_plan = str(request.fields["servicePlan"])
                    device.mdn_zip_code = str(request.fields["mdnZipCode"])
        failed = any(request.errors.values())
        request.status = FAILED if failed else SUCCESS

    def _device(self, account: ThingSpaceAccount, iccid: str) -> Device:
        device = self._devices.get(iccid)
        if device is None or device.account_name != account.account_name:
            raise CarrierError(404, f"Device {iccid} not found in account {account.account_name}")
        return device

    def _client_account(self, call: Call) -> ThingSpaceAccount:
        credentials = _basic_credentials(call.request.header("authorization"))
        account = self._account_by_key(credentials[0]) if credentials else None
        if (
            credentials is None
            or account is None
            or not hmac.compare_digest(credentials[1].encode(), account.client_secret.encode())
        ):
            raise CarrierError(401, "Invalid client key or secret")
        return account

    def _account_by_key(self, client_key: str) -> ThingSpaceAccount | None:
        for account in self._accounts.values():
            if hmac.compare_digest(client_key.encode(), account.client_key.encode()):
                return account
        return None

    @staticmethod
    def _valid(tokens: dict[str, Token], value: str | None, now: float) -> Token | None:
        token = tokens.get(value or "")
        return token if token is not None and token.expires_at > now else None

    def _count_down_revocation(self) -> None:
        """Revoke the tokens once the device calls a test asked for have been served."""
        if self._revoke is None:
            return
        kind, calls_left = self._revoke
        if calls_left > 0:
            self._revoke = (kind, calls_left - 1)
            return
        self._revoke = None
        self._revoke_now(kind)

    def _revoke_now(self, kind: str) -> int:
        revoked = 0
        if kind in ("all", "access"):
            revoked += len(self._access_tokens)
            self._access_tokens.clear()
        if kind in ("all", "session"):
            revoked += len(self._sessions)
            self._sessions.clear()
        return revoked

    # -- counter keys -----------------------------------------------------------------------

    def _client_key(self, call: Call) -> str | None:
        """Token calls are counted under the account name their client key belongs to."""
        credentials = _basic_credentials(call.request.header("authorization"))
        account = self._account_by_key(credentials[0]) if credentials else None
        return account.account_name if account is not None else None

    def _bearer_key(self, call: Call) -> str | None:
        """Logins are counted under the account name of their access token."""
        token = self._access_tokens.get(_bearer(call) or "")
        return token.account_name if token is not None else None

    def _request_key(self, call: Call) -> str:
        """Request-status calls are counted under the request's (first) ICCID."""
        request = self._requests.get(call.params["request_id"])
        return request.iccids[0] if request is not None else call.params["request_id"]

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
        ]

    def _add_account(self, call: Call) -> SimResponse:
        """Create or replace an account (which also unlocks its UWS user)."""
        payload = call.request.json_object()
        account_name = required_str(payload, "account_name")
        rate_limit = optional_rate(payload, "rate_limit", DEFAULT_RATE_LIMIT)
        token_seconds = optional_int(payload, "token_seconds") or DEFAULT_TOKEN_SECONDS
        client_key = required_str(payload, "client_key")
        other = self._account_by_key(client_key)
        if other is not None and other.account_name != account_name:
            raise InvalidPayload(f"client_key is already used by account {other.account_name}")
        self._accounts[account_name] = ThingSpaceAccount(
            name=f"account {account_name}",
            bucket=bucket_for(rate_limit),
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
        if account_name not in self._accounts:
            raise InvalidPayload(f"no ThingSpace account {account_name!r}; add it first")
        entries = required(payload, "devices")
        if not isinstance(entries, list):
            raise InvalidPayload("devices must be a list")
        devices = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise InvalidPayload("each device must be an object")
            devices.append(
                Device(
                    iccid=required_str(entry, "iccid"),
                    account_name=account_name,
                    state=one_of(entry, "state", STATES) if "state" in entry else ACTIVE,
                    service_plan=str(entry.get("service_plan") or ""),
                )
            )
        for device in devices:
            self._devices[device.iccid] = device
        return json_response(201, {"seeded": len(devices)})

    def _show_device(self, call: Call) -> SimResponse:
        self._settle()
        device = self._devices.get(call.params["iccid"])
        if device is None:
            raise AdminError(404, f"no device {call.params['iccid']}")
        requests = [self._requests[request_id] for request_id in device.request_ids]
        return json_response(
            200,
            {
                "iccid": device.iccid,
                "account_name": device.account_name,
                "state": device.state,
                "service_plan": device.service_plan,
                "mdn_zip_code": device.mdn_zip_code,
                "requests": [
                    {
                        "requestId": request.request_id,
                        "action": request.action,
                        "fields": request.fields,
                        "status": request.status,
                        "error": request.errors.get(device.iccid),
                    }
                    for request in requests
                ],
            },
        )

    def _show_config(self, call: Call) -> SimResponse:
        return json_response(200, {"completion_delay_ms": self._completion_delay_ms})

    def _update_config(self, call: Call) -> SimResponse:
        """``completion_delay_ms``: how long requests stay Pending; ``null`` = forever."""
        payload = call.request.json_object()
        if "completion_delay_ms" not in payload:
            raise InvalidPayload("completion_delay_ms is required (null: never complete)")
        delay = payload["completion_delay_ms"]
        if delay is not None and (
            isinstance(delay, bool) or not isinstance(delay, int) or delay < 0
        ):
            raise InvalidPayload("completion_delay_ms must be a non-negative integer or null")
        self._completion_delay_ms = delay
        return self._show_config(call)

    def _expire_tokens(self, call: Call) -> SimResponse:
        """Revoke ``kind`` tokens (all, access, session) now, or once ``after_requests`` more
        device calls (list, submit, request status) have been served."""
        payload = call.request.json_object()
        kind = one_of(payload, "kind", TOKEN_KINDS) if "kind" in payload else "all"
        after = optional_int(payload, "after_requests") or 0
        if after < 0:
            raise InvalidPayload("after_requests must not be negative")
        if after:
            self._revoke = (kind, after)
            return json_response(200, {"revoked": 0, "after_requests": after})
        self._revoke = None
        return json_response(200, {"revoked": self._revoke_now(kind), "after_requests": 0})

    def _set_failure(self, call: Call) -> SimResponse:
        """Requests completing for ``iccid`` fail with ``error``; ``error: null`` stops that."""
        payload = call.request.json_object()
        iccid = required_str(payload, "iccid")
        error = payload.get("error")
        if error is None:
            self._failures.pop(iccid, None)
        elif isinstance(error, str) and error:
            self._failures[iccid] = error
        else:
            raise InvalidPayload("error must be a non-empty string or null")
        return json_response(200, {"iccid": iccid, "error": error})


def _account(call: Call) -> ThingSpaceAccount:
    assert isinstance(call.account, ThingSpaceAccount)
    return call.account


def _check_account_name(account: ThingSpaceAccount, payload: Mapping[str, Any]) -> None:
    account_name = required_str(payload, "accountName")
    if account_name != account.account_name:
        raise CarrierError(403, f"Session is not authorized for account {account_name}")


def _device_id(value: Any) -> str:
    """The ICCID of a ``{"kind": "iccid", "id": ...}`` device id (the only kind simulated)."""
    if not isinstance(value, dict):
        raise InvalidPayload("a device id must be an object with kind and id")
    if value.get("kind") != "iccid":
        raise InvalidPayload("device id kind must be 'iccid'")
    return required_str(value, "id")


def _first_device_id(entry: Any) -> Any:
    device_ids = entry.get("deviceIds") if isinstance(entry, dict) else None
    if not isinstance(device_ids, list) or not device_ids:
        raise InvalidPayload("each device needs a non-empty deviceIds list")
    return device_ids[0]


def _action_fields(action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The action's own body fields, checked: deactivate needs reasonCode and etfWaiver,
    activate needs servicePlan and mdnZipCode."""
    if action == "deactivate":
        etf_waiver = required(payload, "etfWaiver")
        if not isinstance(etf_waiver, bool):
            raise InvalidPayload("etfWaiver must be true or false")
        return {"reasonCode": required_str(payload, "reasonCode"), "etfWaiver": etf_waiver}
    if action == "activate":
        return {
            "servicePlan": required_str(payload, "servicePlan"),
            "mdnZipCode": required_str(payload, "mdnZipCode"),
        }
    return {}


def _bearer(call: Call) -> str | None:
    scheme, _, token = (call.request.header("authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(client_key, client_secret)`` from ``Basic base64(key:secret)``."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, colon, secret = decoded.partition(":")
    return (key, secret) if colon and key else None


def _listed_iccid(call: Call) -> str | None:
    device_id = call.request.json_object().get("deviceId")
    return str(device_id.get("id")) if isinstance(device_id, dict) else None


def _submitted_iccid(call: Call) -> str | None:
    """Submits are counted under the (first) ICCID they name."""
    try:
        return _device_id(_first_device_id(call.request.json_object()["devices"][0]))
    except (KeyError, IndexError, TypeError):
        return None
