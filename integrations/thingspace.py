"""Verizon ThingSpace (Connectivity Management M2M API): client and status-update processor.

Wire contract: ``carriers/thingspace.md``. ThingSpace is a token carrier with asynchronous
changes:

- **Authentication** is two calls — an OAuth token (client key/secret), then a UWS session
  (username/password) — whose tokens every later call sends. Both live in the shared
  :class:`~integrations.base.TokenStore` (per credentials row, until shortly before they
  expire) and are fetched under the store's lock, re-checked inside it, so N workers log in
  once. A 401 on a later call drops both and logs in again, once; a 401 after that is
  permanent. Two consecutive failed logins for a credentials row stop all login attempts for
  it (Verizon locks the UWS user after five) until :func:`reset_login_failures` is called.
- **A status change** is two resumable steps: :data:`Step.SUBMIT` posts the action and stores
  ThingSpace's ``requestId``; :data:`Step.CONFIRM` polls that request's status for up to
  ``BULKCHANGE_CONFIRM_SECONDS``. A request still pending is a transient failure whose retry
  resumes at CONFIRM with the stored id — a change is never submitted twice by a retry.

Status names are translated here, by table: :data:`ThingSpaceProcessor.statuses` holds the
action for each target and :data:`DEVICE_STATES` the canonical name for each device state.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from integrations.base import (
    AuthenticationError,
    CallRecord,
    CallRecorder,
    CarrierHttp,
    Credentials,
    HttpResponse,
    Integration,
    MemoryTokenStore,
    PermanentError,
    StatusMapping,
    StatusUpdateProcessor,
    Step,
    StepResult,
    Throttle,
    TokenStore,
    TransientError,
    UpdateContext,
    confirm_budget_seconds,
    default_timeouts,
    http_session,
    unexpected_response,
    utc_now,
)

CARRIER = "ThingSpace"

ACTIVE = "active"
SUSPENDED = "suspended"
DEACTIVATED = "deactivated"

SUSPEND = "suspend"
RESTORE = "restore"
DEACTIVATE = "deactivate"
ACTIVATE = "activate"
ACTIONS = (SUSPEND, RESTORE, DEACTIVATE, ACTIVATE)

# ThingSpace device state (``carrierInformations[0].state``, compared without case) → target.
# The contract names active/suspended/deactivated; the live API also answers "suspend" and
# "deactive", so those are read the same way. Anything else (pre-active, pending activation…)
# matches no target.
DEVICE_STATES: Mapping[str, str] = {
    "active": ACTIVE,
    "suspended": SUSPENDED,
    "suspend": SUSPENDED,
    "deactivated": DEACTIVATED,
    "deactive": DEACTIVATED,
}

# Request-status values (compared without case); anything else counts as still pending.
REQUEST_SUCCESS = "success"
REQUEST_FAILED = "failed"

DEFAULT_REASON_CODE = "FF"
DEFAULT_ETF_WAIVER = True
_TRUE_WORDS = frozenset({"true", "1", "yes"})
_FALSE_WORDS = frozenset({"false", "0", "no"})
_ZIP_CODE = re.compile(r"\d{5}")

OAUTH_PATH = "api/ts/v1/oauth2/token"
LOGIN_PATH = "api/m2m/v1/session/login"
ACTIONS_PATH = "api/m2m/v1/devices/actions"

REQUEST_OAUTH = "Get ThingSpace OAuth token"
START_SESSION = "Start ThingSpace session"
READ_DEVICE = "Read ThingSpace device"
SUBMIT_CHANGE = "Submit ThingSpace status change"
CHECK_REQUEST = "Check ThingSpace request status"

DEFAULT_TOKEN_SECONDS = 3600.0  # when the token response has no expires_in
SESSION_SECONDS = 20 * 60.0  # carriers/thingspace.md: a session token is valid 20 minutes
SAFETY_MARGIN_SECONDS = 60.0  # tokens are dropped this long (at most 10 %) before they expire
MAX_LOGIN_FAILURES = 2  # consecutive failed logins before we stop trying (Verizon locks at 5)
LOGIN_FAILURES_TTL = 24 * 3600.0

FIRST_POLL_DELAY = 0.2
MAX_POLL_DELAY = 2.0

# Module-level so tests can replace the clock and the sleep of the confirm polling.
_monotonic = time.monotonic
_sleep = time.sleep


def account_label(credentials: Credentials) -> str:
    """How messages name a ThingSpace account ("ThingSpace account 0000123456-00001")."""
    return f"ThingSpace account {credentials.account}"


def lockout_message(credentials: Credentials) -> str:
    """The error every device of an account gets while its logins are stopped."""
    return f"ThingSpace login failing for {credentials.account}; check the credentials"


def _key(credentials: Credentials, name: str) -> str:
    return f"thingspace:{credentials.integration_authentication_id}:{name}"


def reset_login_failures(token_store: TokenStore, credentials: Credentials) -> None:
    """Allow logins again for a credentials row after its credentials were fixed.

    Forgets the consecutive-failure count (and any tokens cached under the old credentials);
    call it whenever an operator changes the row's key, secret, user or password. Idempotent.
    """
    for name in ("login_failures", "access_token", "session_token"):
        token_store.delete(_key(credentials, name))


def _token_ttl(seconds: float) -> float:
    """How long to keep a token valid for ``seconds``: a safety margin less."""
    return max(1.0, seconds - min(SAFETY_MARGIN_SECONDS, seconds / 10))


@dataclass(frozen=True)
class Tokens:
    """The two tokens every data call sends."""

    access_token: str
    session_token: str

    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.access_token}",
            "VZ-M2M-Token": self.session_token,
        }


@dataclass(frozen=True)
class RequestStatus:
    """One asynchronous request as the request-status call reports it."""

    request_id: str
    status: str  # as ThingSpace answers it: Pending, Success, Failed
    error: str = ""  # the device's error text when the request failed
    call: CallRecord | None = None  # the request-status call that reported it

    @property
    def succeeded(self) -> bool:
        return self.status.lower() == REQUEST_SUCCESS

    @property
    def failed(self) -> bool:
        return self.status.lower() == REQUEST_FAILED


class ThingSpaceClient:
    """ThingSpace's M2M API for one account: OAuth token + UWS session, then device calls.

    Token handling is this class's job: data calls authenticate on demand (tokens shared
    through ``token_store``) and retry once after a 401. Every data method raises our error
    types (see :class:`CarrierHttp`); ``submit_action`` takes the ``Idempotency-Key`` to send.
    """

    def __init__(
        self,
        *,
        credentials: Credentials,
        session: requests.Session | None = None,
        throttle: Throttle | None = None,
        on_call: CallRecorder | None = None,
        timeouts: tuple[float, float] | None = None,
        token_store: TokenStore | None = None,
    ) -> None:
        self.credentials = credentials
        self.account = credentials.account
        self.label = account_label(credentials)
        self.token_store: TokenStore = token_store or MemoryTokenStore()
        self.timeouts = timeouts or default_timeouts()
        shared_session = session or http_session()

        def http(auth_failure: str) -> CarrierHttp:
            return CarrierHttp(
                carrier=CARRIER,
                credentials=credentials,
                auth_failure=auth_failure,
                session=shared_session,
                throttle=throttle,
                on_call=on_call,
                timeouts=self.timeouts,
            )

        self._oauth_http = http(
            f"ThingSpace rejected the OAuth client key and secret for {self.label}"
        )
        self._login_http = http(
            f"ThingSpace rejected the UWS user {credentials.username} for {self.label}"
        )
        self.http = http(f"ThingSpace rejected the session for {self.label}")

    # -- device calls -----------------------------------------------------------------------

    def device_state(self, *, iccid: str) -> str:
        """The device's ThingSpace state (``carrierInformations[0].state``); "" when ThingSpace
        lists no state for it."""
        response = self._call(
            "POST",
            f"{ACTIONS_PATH}/list",
            READ_DEVICE,
            json_body={"accountName": self.account, "deviceId": _iccid(iccid)},
        )
        body = response.body
        devices = body.get("devices") if isinstance(body, dict) else None
        if not isinstance(devices, list):
            raise unexpected_response("ThingSpace", "a device list", response.call)
        if not devices:
            return ""
        try:
            informations = devices[0].get("carrierInformations") or []
            state = informations[0].get("state") if informations else ""
        except (AttributeError, TypeError, KeyError, IndexError) as exc:
            raise unexpected_response(
                "ThingSpace", "devices with carrierInformations", response.call
            ) from exc
        return str(state or "")

    def submit_action(
        self,
        *,
        action: str,
        iccid: str,
        idempotency_key: str,
        fields: Mapping[str, Any] | None = None,
    ) -> str:
        """Post one device action (suspend, restore, deactivate, activate) with its extra body
        ``fields``; returns ThingSpace's ``requestId``. The change is not done yet."""
        if action not in ACTIONS:
            raise PermanentError(f"ThingSpace has no action {action!r}")
        body: dict[str, Any] = {
            "accountName": self.account,
            "devices": [{"deviceIds": [_iccid(iccid)]}],
            **(fields or {}),
        }
        response = self._call(
            "POST",
            f"{ACTIONS_PATH}/{action}",
            SUBMIT_CHANGE,
            json_body=body,
            idempotency_key=idempotency_key,
        )
        request_id = response.body.get("requestId") if isinstance(response.body, dict) else None
        if not isinstance(request_id, str) or not request_id:
            raise unexpected_response("ThingSpace", "a requestId", response.call)
        return request_id

    def request_status(self, *, request_id: str, iccid: str) -> RequestStatus:
        """The request's status; for a failed request, ``iccid``'s error text (or, when
        ThingSpace names no such device, the first error it gives)."""
        response = self._call(
            "GET",
            f"api/m2m/v1/accounts/{quote(self.account, safe='')}/requests/"
            f"{quote(request_id, safe='')}/status",
            CHECK_REQUEST,
        )
        body = response.body
        status = body.get("status") if isinstance(body, dict) else None
        if not isinstance(status, str) or not status:
            raise unexpected_response("ThingSpace", "a request status", response.call)
        errors = [
            (str(device.get("id") or ""), str(device.get("error") or ""))
            for device in (body.get("devices") or [])
            if isinstance(device, dict) and device.get("error")
        ]
        error = next((text for device_id, text in errors if device_id == iccid), "")
        if not error and errors:
            error = errors[0][1]
        return RequestStatus(request_id=request_id, status=status, error=error, call=response.call)

    def _call(
        self,
        method: str,
        path: str,
        description: str,
        *,
        json_body: Any = None,
        idempotency_key: str = "",
    ) -> HttpResponse:
        """One data call with both tokens; after a 401, log in again (both) and repeat once."""
        tokens = self.tokens()
        try:
            return self._send(method, path, description, tokens, json_body, idempotency_key)
        except AuthenticationError as exc:
            if exc.call is None or exc.call.response_status != 401:
                raise  # 403: this account may not do this; logging in again will not help
            tokens = self._log_in_again(stale=tokens)
        return self._send(method, path, description, tokens, json_body, idempotency_key)

    def _send(
        self,
        method: str,
        path: str,
        description: str,
        tokens: Tokens,
        json_body: Any,
        idempotency_key: str,
    ) -> HttpResponse:
        headers = {**tokens.headers(), "Accept": "application/json"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return self.http.request(
            method,
            path,
            description=description,
            json_body=json_body,
            headers=headers,
            auth_is_permanent=False,
        )

    # -- authentication ---------------------------------------------------------------------

    def tokens(self) -> Tokens:
        """Both tokens: from the shared store, or by logging in (once, under the lock)."""
        cached = self._cached_tokens()
        if cached is not None:
            return cached
        with self._login_lock():
            cached = self._cached_tokens()  # another worker may have logged in meanwhile
            if cached is not None:
                return cached
            return self._log_in()

    def _log_in_again(self, *, stale: Tokens) -> Tokens:
        """After a 401: drop the tokens that were refused and log in again (both) — unless
        another worker already replaced them, in which case use theirs."""
        with self._login_lock():
            cached = self._cached_tokens()
            if cached is not None and cached != stale:
                return cached
            self.token_store.delete(_key(self.credentials, "access_token"))
            self.token_store.delete(_key(self.credentials, "session_token"))
            return self._log_in()

    def _cached_tokens(self) -> Tokens | None:
        access_token = self.token_store.get(_key(self.credentials, "access_token"))
        session_token = self.token_store.get(_key(self.credentials, "session_token"))
        if access_token and session_token:
            return Tokens(access_token, session_token)
        return None

    def _login_lock(self) -> AbstractContextManager[None]:
        # Long enough for both login calls at their worst, so a holder never loses it mid-way.
        return self.token_store.lock(
            _key(self.credentials, "login"), timeout=2 * sum(self.timeouts) + 5
        )

    def _log_in(self) -> Tokens:
        """Log in under the login lock; count consecutive rejected logins and refuse, without a
        call, once there were MAX_LOGIN_FAILURES of them.

        A login is both calls; the access token is kept only once the session is open, so a
        rejected login leaves nothing behind. When only the session expired, a new one is
        first asked for with the cached access token; if that is refused (the token may have
        been revoked), a full login decides — only a full login's rejection counts."""
        failures_key = _key(self.credentials, "login_failures")
        failures = int(self.token_store.get(failures_key) or 0)
        if failures >= MAX_LOGIN_FAILURES:
            raise AuthenticationError(lockout_message(self.credentials))
        access_key = _key(self.credentials, "access_token")
        cached_access_token = self.token_store.get(access_key)
        if cached_access_token:
            try:
                session_token = self._start_session(cached_access_token)
            except AuthenticationError:
                self.token_store.delete(access_key)
            else:
                self.token_store.delete(failures_key)
                return Tokens(cached_access_token, session_token)
        try:
            access_token, seconds = self._fetch_access_token()
            session_token = self._start_session(access_token)
        except AuthenticationError:
            self.token_store.set(failures_key, failures + 1, ttl=LOGIN_FAILURES_TTL)
            raise
        self.token_store.set(access_key, access_token, ttl=_token_ttl(seconds))
        self.token_store.delete(failures_key)
        return Tokens(access_token, session_token)

    def _fetch_access_token(self) -> tuple[str, float]:
        """A new OAuth access token and the seconds it is valid for."""
        key_and_secret = f"{self.credentials.client_id}:{self.credentials.secret}"
        response = _login_call(
            self._oauth_http,
            "POST",
            OAUTH_PATH,
            description=REQUEST_OAUTH,
            data="grant_type=client_credentials",
            headers={
                "Authorization": "Basic " + base64.b64encode(key_and_secret.encode()).decode(),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
        body = response.body if isinstance(response.body, dict) else {}
        access_token = body.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise unexpected_response("ThingSpace", "an access_token", response.call)
        expires_in = body.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            return access_token, float(expires_in)
        return access_token, DEFAULT_TOKEN_SECONDS

    def _start_session(self, access_token: str) -> str:
        """A new UWS session token (cached for its 20 minutes, less the safety margin)."""
        response = _login_call(
            self._login_http,
            "POST",
            LOGIN_PATH,
            description=START_SESSION,
            json_body={
                "username": self.credentials.username,
                "password": self.credentials.secret_2,
            },
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )
        body = response.body if isinstance(response.body, dict) else {}
        session_token = body.get("sessionToken")
        if not isinstance(session_token, str) or not session_token:
            raise unexpected_response("ThingSpace", "a sessionToken", response.call)
        self.token_store.set(
            _key(self.credentials, "session_token"),
            session_token,
            ttl=_token_ttl(SESSION_SECONDS),
        )
        return session_token


def _login_call(http: CarrierHttp, method: str, path: str, **kwargs: Any) -> HttpResponse:
    """A token call: 401/403 (AuthenticationError) and 400 are rejected credentials — a login
    failure, reported as AuthenticationError; 429/5xx/timeouts stay transient."""
    try:
        return http.request(method, path, **kwargs)
    except AuthenticationError:
        raise
    except PermanentError as exc:
        if exc.call is not None and exc.call.response_status == 400:
            raise AuthenticationError(
                f"{http.auth_failure} ({exc.message})", call=exc.call
            ) from exc
        raise


def _iccid(iccid: str) -> dict[str, str]:
    return {"kind": "iccid", "id": iccid}


def _flag(value: str) -> bool | None:
    word = value.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


class ThingSpaceProcessor(StatusUpdateProcessor):
    """ThingSpace status updates: submit the action, then confirm the request completed.

    SUBMIT is the only step that changes anything at Verizon and runs at most once per device
    change per attempt that has not yet recorded it; CONFIRM only reads, so repeating it is
    harmless. ``active`` restores a suspended line and activates any other one."""

    integration = Integration.THINGSPACE
    display_name = "ThingSpace"
    limits_daily_actions = True  # 5 provisioning actions per line per day (contract "Limits")
    steps = (Step.SUBMIT, Step.CONFIRM)
    descriptions: ClassVar[Mapping[Step, str]] = {
        Step.SUBMIT: SUBMIT_CHANGE,
        Step.CONFIRM: CHECK_REQUEST,
    }
    statuses: ClassVar[Mapping[str, StatusMapping]] = {
        ACTIVE: StatusMapping(ACTIVE, ACTIVATE, ACTIVE),  # or restore, when suspended
        SUSPENDED: StatusMapping(SUSPENDED, SUSPEND, SUSPENDED),
        DEACTIVATED: StatusMapping(DEACTIVATED, DEACTIVATE, DEACTIVATED),
    }

    @cached_property
    def client(self) -> ThingSpaceClient:
        """Built from the base class's constructor arguments (the one processor signature)."""
        return ThingSpaceClient(
            credentials=self.credentials,
            session=self.session,
            throttle=self.throttle,
            on_call=self.on_call,
            timeouts=self.timeouts,
            token_store=self.token_store,
        )

    @classmethod
    def account_label(cls, credentials: Credentials) -> str:
        return account_label(credentials)

    @classmethod
    def credentials_changed(cls, *, credentials: Credentials, token_store: TokenStore) -> None:
        reset_login_failures(token_store, credentials)

    @classmethod
    def validate_options(cls, *, target_status: str, options: Mapping[str, str]) -> list[str]:
        """``active`` needs ``service_plan`` and ``mdn_zip_code`` (a 5-digit ZIP code): whether
        a line will be restored or activated is only known when it is processed, so both are
        required up front. ``etf_waiver``, when given, must be true or false."""
        problems: list[str] = []
        if target_status.lower() == ACTIVE:
            if not (options.get("service_plan") or "").strip():
                problems.append("service_plan is required to activate ThingSpace lines")
            zip_code = (options.get("mdn_zip_code") or "").strip()
            if not zip_code:
                problems.append("mdn_zip_code is required to activate ThingSpace lines")
            elif not _ZIP_CODE.fullmatch(zip_code):
                problems.append(f"mdn_zip_code must be a 5-digit ZIP code, not {zip_code!r}")
        etf_waiver = options.get("etf_waiver")
        if etf_waiver is not None and _flag(str(etf_waiver)) is None:
            problems.append(f"etf_waiver must be true or false, not {etf_waiver!r}")
        return problems

    def check_identifiers(self, context: UpdateContext) -> None:
        if not context.iccid.strip():
            raise PermanentError("ThingSpace identifies devices by ICCID; this device has none")

    def perform(self, step: Step, context: UpdateContext) -> StepResult:
        """SUBMIT posts the target's action and stores its requestId; CONFIRM polls that
        request until it succeeds (done), fails (PermanentError with the device's error) or
        the confirm budget runs out (TransientError; the retry confirms again)."""
        if step is Step.SUBMIT:
            return self._submit(context)
        if step is Step.CONFIRM:
            return self._confirm(context)
        raise PermanentError(f"ThingSpace has no step {step!r}")

    def read_status(self, context: UpdateContext) -> str | None:
        """The line's state as a target name (active, suspended, deactivated), else None."""
        state = self.client.device_state(iccid=context.iccid)
        return DEVICE_STATES.get(state.strip().lower())

    # -- steps ------------------------------------------------------------------------------

    def _submit(self, context: UpdateContext) -> StepResult:
        target = self._target(context)
        if target == ACTIVE:
            state = self.read_status(context)
            if state == ACTIVE:
                # Nothing to submit; recording the carrier status completes CONFIRM too.
                now = utc_now()
                return StepResult(
                    Step.SUBMIT,
                    {"carrier_submitted_at": now, "carrier_status_at": now},
                    note="already active at ThingSpace; nothing submitted",
                )
            action, fields = (RESTORE, {}) if state == SUSPENDED else self._activation(context)
        elif target == SUSPENDED:
            action, fields = SUSPEND, {}
        else:
            action, fields = DEACTIVATE, self._deactivation(context)
        request_id = self.client.submit_action(
            action=action,
            iccid=context.iccid,
            idempotency_key=context.idempotency_key(Step.SUBMIT),
            fields=fields,
        )
        return StepResult(
            Step.SUBMIT,
            {"carrier_request_id": request_id, "carrier_submitted_at": utc_now()},
            note=f"{action} request {request_id}",
        )

    @staticmethod
    def _deactivation(context: UpdateContext) -> dict[str, Any]:
        etf_waiver = _flag(context.options.get("etf_waiver") or "")
        return {
            "reasonCode": context.options.get("reason_code") or DEFAULT_REASON_CODE,
            "etfWaiver": DEFAULT_ETF_WAIVER if etf_waiver is None else etf_waiver,
        }

    @staticmethod
    def _activation(context: UpdateContext) -> tuple[str, dict[str, Any]]:
        service_plan = (context.options.get("service_plan") or "").strip()
        zip_code = (context.options.get("mdn_zip_code") or "").strip()
        if not service_plan or not zip_code:
            raise PermanentError(
                "ThingSpace activation needs service_plan and mdn_zip_code, and the request "
                "lacks "
                + " and ".join(
                    name
                    for name, value in (("service_plan", service_plan), ("mdn_zip_code", zip_code))
                    if not value
                )
            )
        return ACTIVATE, {"servicePlan": service_plan, "mdnZipCode": zip_code}

    def _confirm(self, context: UpdateContext) -> StepResult:
        request_id = context.progress.carrier_request_id
        if not request_id:
            raise PermanentError("no ThingSpace request to confirm: the submit step stored none")
        budget = confirm_budget_seconds()
        deadline = _monotonic() + budget
        delay = FIRST_POLL_DELAY
        while True:
            status = self.client.request_status(request_id=request_id, iccid=context.iccid)
            if status.succeeded:
                return StepResult(Step.CONFIRM, {"carrier_status_at": utc_now()})
            if status.failed:
                raise PermanentError(
                    f"ThingSpace request {request_id} failed: "
                    f"{status.error or 'ThingSpace gave no reason'}",
                    call=status.call,
                )
            remaining = deadline - _monotonic()
            if remaining <= 0:
                raise TransientError(
                    f"ThingSpace request {request_id} still pending after {budget:g}s",
                    call=status.call,
                )
            _sleep(min(delay, remaining))
            delay = min(delay * 2, MAX_POLL_DELAY)

    def _target(self, context: UpdateContext) -> str:
        try:
            return self.canonical_status(context.target_status)
        except ValueError as exc:
            raise PermanentError(str(exc)) from exc
