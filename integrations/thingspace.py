"""Verizon ThingSpace (Connectivity Management M2M API): client and status-update processor.

Wire contract: ``docs/carriers/thingspace.md``. ThingSpace is a token carrier with asynchronous
changes:

- **Authentication** is two calls — an OAuth token, then a UWS session — whose tokens every
  later call sends, shared by every worker; :mod:`integrations.thingspace_tokens` logs in,
  renews and locks out.
- **A status change** is two resumable steps: :data:`Step.SUBMIT` posts one device's action and
  stores ThingSpace's ``requestId``; :data:`Step.CONFIRM` lets a stored CarrierService callback
  decide, else polls the request's status. Still pending → the device waits (CarrierPending)
  without spending a retry, until the confirm deadline (12 hours for activate, 2 hours for the
  others), past which the read decides.
- **Callbacks**: :meth:`ThingSpaceProcessor.parse_callback` authenticates (the user name and
  password we registered, echoed in the body) and parses CarrierService callbacks; the client
  lists, registers and deregisters the account's CarrierService listener.

Status names are translated here, by table: :data:`ThingSpaceProcessor.statuses` holds the
action for each target and :data:`DEVICE_STATES` the canonical name for each device state.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from integrations.base.audit import CallRecord
from integrations.base.errors import CallbackRejected, PermanentError
from integrations.base.http import unexpected_response
from integrations.base.origins import Origin, known
from integrations.base.protocol import (
    CallbackAuth,
    CallbackEvent,
    CallbackOutcome,
    Credentials,
    PreviewRead,
    StatusMapping,
    StatusUpdateProcessor,
    Step,
    StepResult,
    TokenStore,
    UpdateContext,
    carrier_time_scale,
    utc_now,
)
from integrations.base.registry import Integration
from integrations.thingspace_tokens import (
    CARRIER,
    REQUEST_OAUTH,
    START_SESSION,
    ThingSpaceTokenClient,
    account_label,
    error_code,
    reset_login_failures,
)

ACTIVE = "active"
SUSPENDED = "suspended"
DEACTIVATED = "deactivated"

SUSPEND = "suspend"
RESTORE = "restore"
DEACTIVATE = "deactivate"
ACTIVATE = "activate"
ACTIONS = (SUSPEND, RESTORE, DEACTIVATE, ACTIVATE)

# ThingSpace device state (``carrierInformations[0].state``, compared without case) → target.
# Anything else (pre-active, pending activation…) matches no target.
DEVICE_STATES: Mapping[str, str] = {
    "active": ACTIVE,
    "suspended": SUSPENDED,
    "suspend": SUSPENDED,
    "deactivated": DEACTIVATED,
    "deactive": DEACTIVATED,
}

# Request-status values, compared without case (Verizon's SDK spells the failed one Failure);
# Pending and anything unknown mean still working.
REQUEST_SUCCESS = "success"
REQUEST_FAILED = frozenset({"failed", "failure"})

REASON_CODE = "FF"  # documented as currently the only valid deactivation reason code
DEFAULT_ETF_WAIVER = True
_TRUE_WORDS = frozenset({"true", "1", "yes"})
_FALSE_WORDS = frozenset({"false", "0", "no"})
_ZIP_CODE = re.compile(r"\d{5}")

ALREADY_ACTIVE_CODE = "REQUEST_FAILED.DeviceAlreadyActive"

ACTIVATE_DEADLINE = timedelta(hours=12)  # Verizon: activations may take up to 12 hours
CHANGE_DEADLINE = timedelta(hours=2)  # ours, for suspend, restore and deactivate
REASON_WAIT = timedelta(minutes=15)  # after Failed, how long to wait for the callback's reason
FAILED_SEEN_TTL = 24 * 3600.0

ACTIVATIONS_PER_MINUTE = 100  # per account (contract "Limits")

CALLBACK_SERVICE = "CarrierService"

M2M_PATH = "api/m2m/v1"
ACTIONS_PATH = f"{M2M_PATH}/devices/actions"

READ_DEVICE = "Read ThingSpace device"
SUBMIT_CHANGE = "Submit ThingSpace status change"
SUBMIT_AGAIN = "Submit ThingSpace status change again (an earlier answer was lost)"
CHECK_REQUEST = "Check ThingSpace request status"
LIST_CALLBACKS = "List ThingSpace callbacks"
REGISTER_CALLBACK = "Register ThingSpace callback"
DEREGISTER_CALLBACK = "Deregister ThingSpace callback"


@dataclass(frozen=True)
class ThingSpaceDevice:
    """One device as the device-list call reports it."""

    state: str  # carrierInformations[0].state as answered ("" when none)
    imei: str = ""
    call: CallRecord | None = None

    @property
    def target(self) -> str | None:
        """The state as a target name (active, suspended, deactivated), else None."""
        return DEVICE_STATES.get(self.state.strip().lower())


@dataclass(frozen=True)
class RequestStatus:
    """One asynchronous request as the request-status call reports it: its status only."""

    request_id: str
    status: str  # as ThingSpace answers it: Pending, Success, Failed (or Failure)
    call: CallRecord | None = None  # the request-status call that reported it

    @property
    def succeeded(self) -> bool:
        return self.status.strip().lower() == REQUEST_SUCCESS

    @property
    def failed(self) -> bool:
        return self.status.strip().lower() in REQUEST_FAILED


class RequestUnknown(PermanentError):
    """The request-status call answered 400 for the request id: the read must decide."""


def iccid_id(iccid: str) -> dict[str, str]:
    return {"kind": "iccid", "id": iccid}


class ThingSpaceClient(ThingSpaceTokenClient):
    """ThingSpace's M2M API for one account: device and callback calls, each sending both
    tokens (see :class:`~integrations.thingspace_tokens.ThingSpaceTokenClient`, which logs in
    on demand and repeats once after a refused token). Every method raises our error types
    (see :class:`CarrierHttp`)."""

    # The logins (in the token client) and the reads; never a submit or a callback change.
    read_calls: ClassVar[frozenset[str]] = frozenset(
        {REQUEST_OAUTH, START_SESSION, READ_DEVICE, CHECK_REQUEST, LIST_CALLBACKS}
    )
    # Seams for the activation limiter (tests replace them).
    sleep: Callable[[float], None] = staticmethod(time.sleep)
    wall_clock: Callable[[], float] = staticmethod(time.time)

    @property
    def _account(self) -> str:
        return quote(self.credentials.account, safe="")

    def read_device(self, *, iccid: str) -> ThingSpaceDevice | None:
        """The device's state and IMEI; None when the account has no such device (an empty
        ``devices`` list)."""
        response = self._data_call(
            "POST",
            f"{ACTIONS_PATH}/list",
            READ_DEVICE,
            json_body={"accountName": self.credentials.account, "deviceId": iccid_id(iccid)},
        )
        devices = self._json_object(response).get("devices")
        if not isinstance(devices, list):
            raise unexpected_response(CARRIER, "a device list", response.call)
        if not devices:
            return None
        try:
            informations = devices[0].get("carrierInformations") or []
            state = informations[0].get("state") if informations else ""
            identifiers = devices[0].get("deviceIds") or []
            imei = next(
                (
                    str(entry.get("id") or "")
                    for entry in identifiers
                    if str(entry.get("kind") or "").lower() == "imei"
                ),
                "",
            )
        except (AttributeError, TypeError, KeyError, IndexError) as exc:
            raise unexpected_response(
                CARRIER, "devices with carrierInformations", response.call
            ) from exc
        return ThingSpaceDevice(state=str(state or ""), imei=imei, call=response.call)

    def submit_action(
        self,
        *,
        action: str,
        device_ids: Sequence[Mapping[str, str]],
        idempotency_key: str,
        fields: Mapping[str, Any] | None = None,
        description: str = SUBMIT_CHANGE,
    ) -> str:
        """Post one device's action (suspend, restore, deactivate, activate) with its extra
        body ``fields``; returns ThingSpace's ``requestId``. The change is not done yet.
        Activations wait for a slot of the account's 100 a minute first."""
        if action not in ACTIONS:
            raise PermanentError(f"ThingSpace has no action {action!r}")
        if action == ACTIVATE:
            self._activation_slot()
        body: dict[str, Any] = {
            "accountName": self.credentials.account,
            "devices": [{"deviceIds": [dict(entry) for entry in device_ids]}],
            **(fields or {}),
        }
        response = self._data_call(
            "POST",
            f"{ACTIONS_PATH}/{action}",
            description,
            json_body=body,
            idempotency_key=idempotency_key,
        )
        request_id = self._json_object(response).get("requestId")
        if not isinstance(request_id, str) or not request_id:
            raise unexpected_response(CARRIER, "a requestId", response.call)
        return request_id

    def request_status(self, *, request_id: str) -> RequestStatus:
        """The request's status (Pending, Success, Failed/Failure — nothing else is given).
        A 400 for the request id raises :class:`RequestUnknown`."""
        try:
            response = self._data_call(
                "GET",
                f"{M2M_PATH}/accounts/{self._account}/requests/{quote(request_id, safe='')}/status",
                CHECK_REQUEST,
            )
        except PermanentError as exc:
            if type(exc) is PermanentError and exc.call and exc.call.response_status == 400:
                raise RequestUnknown(exc.message, call=exc.call) from exc
            raise
        status = self._json_object(response).get("status")
        if not isinstance(status, str) or not status:
            raise unexpected_response(CARRIER, "a request status", response.call)
        return RequestStatus(request_id=request_id, status=status, call=response.call)

    # -- callback registration ---------------------------------------------------------------

    def callbacks(self) -> list[dict[str, str]]:
        """The account's registered callback listeners (``serviceName``, ``url``)."""
        response = self._data_call("GET", f"{M2M_PATH}/callbacks/{self._account}", LIST_CALLBACKS)
        listed = response.body if response.body is not None else []
        if not isinstance(listed, list) or not all(isinstance(entry, dict) for entry in listed):
            raise unexpected_response(CARRIER, "a list of callbacks", response.call)
        return [{str(k): str(v) for k, v in entry.items()} for entry in listed]

    def register_callback(self, *, url: str, username: str, password: str) -> None:
        """Register ``url`` as the account's CarrierService listener, with the user name and
        password ThingSpace is to echo in every callback."""
        self._data_call(
            "POST",
            f"{M2M_PATH}/callbacks/{self._account}",
            REGISTER_CALLBACK,
            json_body={
                "name": CALLBACK_SERVICE,
                "url": url,
                "username": username,
                "password": password,
            },
        )

    def deregister_callback(self) -> None:
        """Remove the account's CarrierService listener."""
        self._data_call(
            "DELETE",
            f"{M2M_PATH}/callbacks/{self._account}/name/{CALLBACK_SERVICE}",
            DEREGISTER_CALLBACK,
        )

    # -- limits ------------------------------------------------------------------------------

    def _activation_slot(self) -> None:
        """Take one of the account's 100 activate requests of the current minute, shared by
        every worker through the token store; when the minute's are spent, wait for the next
        minute (outside the lock, holding no concurrency slot)."""
        while True:
            now = self.wall_clock()
            minute = int(now // 60)
            key = f"thingspace:{self.credentials.integration_authentication_id}:activations"
            with self.token_store.lock(f"{key}:lock"):
                stored = self.token_store.get(key)
                used = stored[1] if isinstance(stored, tuple) and stored[0] == minute else 0
                if used < ACTIVATIONS_PER_MINUTE:
                    self.token_store.set(key, (minute, used + 1), ttl=120)
                    return
            self.sleep((minute + 1) * 60 - now)


def _flag(value: str) -> bool | None:
    word = value.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


class ThingSpaceProcessor(StatusUpdateProcessor[ThingSpaceClient]):
    """ThingSpace status updates: submit one device's action, then confirm the request.

    SUBMIT is the only step that changes anything at Verizon; a SUBMIT whose answer may have
    been lost reads the device first and submits again only if it is not in the target yet.
    CONFIRM only reads: stored callbacks, then the request status, then (past the deadline)
    the device. ``active`` restores a suspended line and activates any other one."""

    integration = Integration.THINGSPACE
    display_name = CARRIER
    option_names = ("service_plan", "mdn_zip_code", "reason_code", "etf_waiver")
    # thingspace.md: one API origin. ``staging.thingspace.verizon.com`` appears in the contract's
    # Sources only as a documentation page, not as an API host; a deployment that is given a
    # staging API lists it in PONDOPS_CARRIER_EXTRA_ORIGINS.
    known_origins: ClassVar[tuple[Origin, ...]] = (known("https://thingspace.verizon.com"),)
    # Every call needs both: the OAuth app secret and the UWS password.
    secret_fields: ClassVar[tuple[str, ...]] = ("secret", "secret_2")
    client_class = ThingSpaceClient
    limits_daily_actions = True  # 5 provisioning actions per line per day (contract "Limits")
    # No rate is published: the row's rate (and 429 slowing it down) governs; activations
    # are held to 100 a minute per account by the client.
    default_rate_limit = 10.0
    default_max_concurrency = 4
    callback_auth = CallbackAuth.BODY_CREDENTIALS
    callback_methods = frozenset({"POST"})
    # thingspace.md: only an active line can be suspended.
    refused_transitions: ClassVar[Mapping[str, frozenset[str]]] = {
        DEACTIVATED: frozenset({SUSPENDED}),
    }
    steps = (Step.SUBMIT, Step.CONFIRM)
    descriptions: ClassVar[Mapping[Step, str]] = {
        Step.SUBMIT: SUBMIT_CHANGE,
        Step.CONFIRM: CHECK_REQUEST,
    }
    statuses: ClassVar[Mapping[str, StatusMapping]] = {
        ACTIVE: StatusMapping(ACTIVE, ACTIVATE, ACTIVE),  # or restore, when suspended
        SUSPENDED: StatusMapping(SUSPENDED, SUSPEND, SUSPENDED),
        DEACTIVATED: StatusMapping(DEACTIVATED, DEACTIVATE, DEACTIVATED, destructive=True),
    }

    # The action this processor submitted (the confirm deadline depends on it).
    _submitted_action: str = ""

    def client_arguments(self) -> Mapping[str, Any]:
        """The client shares the processor's token store (workers pass the shared cache)."""
        return {"token_store": self.token_store}

    @classmethod
    def account_label(cls, credentials: Credentials) -> str:
        return account_label(credentials)

    @classmethod
    def credentials_changed(cls, *, credentials: Credentials, token_store: TokenStore) -> None:
        reset_login_failures(token_store, credentials)

    @classmethod
    def validate_base_url(cls, base_url: str) -> list[str]:
        """``base_url`` is the origin only: the client appends ``/api/ts/v1/…`` and
        ``/api/m2m/v1/…``, so a value already holding ``/api`` would double it."""
        path = urlsplit(base_url).path.rstrip("/")
        if path == "/api" or "/api/" in path + "/":
            return [
                "ThingSpace base_url is the origin only (e.g. https://thingspace.verizon.com); "
                f"the client appends /api/…, so {path!r} would be doubled"
            ]
        return []

    @classmethod
    def validate_options(cls, *, target_status: str, options: Mapping[str, str]) -> list[str]:
        """``active`` needs ``service_plan`` and ``mdn_zip_code`` (a 5-digit ZIP code): whether
        a line will be restored or activated is only known when it is processed, so both are
        required up front. ``etf_waiver``, when given, must be true or false; ``reason_code``,
        when given, must be FF (the only code ThingSpace documents)."""
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
        reason_code = options.get("reason_code")
        if reason_code is not None and str(reason_code).strip().upper() != REASON_CODE:
            problems.append(f"reason_code must be {REASON_CODE}, not {reason_code!r}")
        return problems

    def check_identifiers(self, context: UpdateContext) -> None:
        if not context.iccid.strip():
            raise PermanentError("ThingSpace identifies devices by ICCID; this device has none")

    def perform(self, step: Step, context: UpdateContext) -> StepResult:
        """SUBMIT posts the target's action and stores its requestId; CONFIRM settles that
        request (callback, status call, or the read past the deadline)."""
        if step is Step.SUBMIT:
            return self._submit(context)
        if step is Step.CONFIRM:
            return self._confirm(context)
        raise self._unknown_step(step)

    def read_status(self, context: UpdateContext) -> str | None:
        """The line's state as a target name (active, suspended, deactivated), else None; a
        device the account does not have is a permanent error."""
        return self._read(context).target

    def preview_read(self, context: UpdateContext) -> PreviewRead:
        """The line's state, and — when ``active`` would be an activation (the line is neither
        active nor suspended) — the IMEI or SKU number the activation needs, if neither is
        known (the inventory's IMEI, the read's, or the request's ``sku_number``)."""
        device = self._read(context)
        target = self._target(context)
        missing = ""
        if target == ACTIVE and device.target not in (ACTIVE, SUSPENDED):
            imei = context.imei.strip() or device.imei
            if not imei and not (context.options.get("sku_number") or "").strip():
                missing = (
                    f"ThingSpace activation needs the IMEI (or a SKU number) for ICCID "
                    f"{context.iccid}"
                )
        return PreviewRead(device.target, missing)

    def confirm_deadline(self, context: UpdateContext) -> timedelta:
        """12 hours for an activation, 2 hours for suspend, restore and deactivate. In a later
        attempt the action is no longer known: the recorded deadline tells which it was."""
        action = self._submitted_action
        progress = context.progress
        if not action and progress.confirm_deadline_at and progress.carrier_submitted_at:
            recorded = (progress.confirm_deadline_at - progress.carrier_submitted_at) / max(
                carrier_time_scale(), 1e-9
            )
            return ACTIVATE_DEADLINE if recorded > CHANGE_DEADLINE * 1.5 else CHANGE_DEADLINE
        if not action and self._target(context) == ACTIVE:
            return ACTIVATE_DEADLINE
        return ACTIVATE_DEADLINE if action == ACTIVATE else CHANGE_DEADLINE

    # -- SUBMIT -----------------------------------------------------------------------------

    def _read(self, context: UpdateContext) -> ThingSpaceDevice:
        device = self.client.read_device(iccid=context.iccid)
        if device is None:
            raise PermanentError(
                f"ThingSpace has no device with ICCID {context.iccid} on account "
                f"{self.credentials.account}"
            )
        return device

    def _submit(self, context: UpdateContext) -> StepResult:
        target = self._target(context)
        repeat = context.progress.write_may_have_reached_carrier
        device: ThingSpaceDevice | None = None
        if repeat or target == ACTIVE:
            device = self._read(context)
            if device.target == target:
                # Nothing to submit; recording the carrier status completes CONFIRM too.
                note = (
                    f"already {target} at ThingSpace after an earlier attempt whose answer was "
                    "lost; nothing submitted again"
                    if repeat
                    else f"already {target} at ThingSpace; nothing submitted"
                )
                return self._done_without_request(note)
        if target == SUSPENDED:
            action, device_ids, fields = SUSPEND, [iccid_id(context.iccid)], {}
        elif target == DEACTIVATED:
            action, device_ids = DEACTIVATE, [iccid_id(context.iccid)]
            fields = self._deactivation(context)
        elif device is not None and device.target == SUSPENDED:
            action, device_ids, fields = RESTORE, [iccid_id(context.iccid)], {}
        else:
            action = ACTIVATE
            device_ids, fields = self._activation(context, device)
        self._submitted_action = action
        try:
            request_id = self.client.submit_action(
                action=action,
                device_ids=device_ids,
                idempotency_key=context.idempotency_key(Step.SUBMIT),
                fields=fields,
                description=SUBMIT_AGAIN if repeat else SUBMIT_CHANGE,
            )
        except PermanentError as exc:
            if action == ACTIVATE and error_code(exc.call).endswith(ALREADY_ACTIVE_CODE):
                return self._done_without_request("ThingSpace: device already active")
            raise
        note = f"{action} request {request_id}"
        return StepResult(
            Step.SUBMIT,
            {"carrier_request_id": request_id, "carrier_submitted_at": utc_now()},
            note=f"{note} (submitted again: an earlier answer was lost)" if repeat else note,
        )

    @staticmethod
    def _done_without_request(note: str) -> StepResult:
        now = utc_now()
        return StepResult(
            Step.SUBMIT, {"carrier_submitted_at": now, "carrier_status_at": now}, note=note
        )

    @staticmethod
    def _deactivation(context: UpdateContext) -> dict[str, Any]:
        etf_waiver = _flag(context.options.get("etf_waiver") or "")
        return {
            "reasonCode": REASON_CODE,
            "etfWaiver": DEFAULT_ETF_WAIVER if etf_waiver is None else etf_waiver,
        }

    @staticmethod
    def _activation(
        context: UpdateContext, device: ThingSpaceDevice | None
    ) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """The activation's device ids (the IMEI paired with the ICCID, or the ICCID alone
        with a SKU number) and fields; PermanentError before the submit when neither an IMEI
        nor a SKU number is known, or the plan or ZIP code is missing."""
        service_plan = (context.options.get("service_plan") or "").strip()
        zip_code = (context.options.get("mdn_zip_code") or "").strip()
        missing = [
            name
            for name, value in (("service_plan", service_plan), ("mdn_zip_code", zip_code))
            if not value
        ]
        if missing:
            raise PermanentError(
                "ThingSpace activation needs service_plan and mdn_zip_code, and the request "
                "lacks " + " and ".join(missing)
            )
        fields: dict[str, Any] = {"servicePlan": service_plan, "mdnZipCode": zip_code}
        imei = context.imei.strip() or (device.imei if device is not None else "")
        if imei:
            return [{"kind": "imei", "id": imei}, iccid_id(context.iccid)], fields
        sku_number = (context.options.get("sku_number") or "").strip()
        if sku_number:
            return [iccid_id(context.iccid)], {**fields, "skuNumber": sku_number}
        raise PermanentError(
            f"ThingSpace activation needs the IMEI (or a SKU number) for ICCID {context.iccid}"
        )

    # -- CONFIRM ----------------------------------------------------------------------------

    def _confirm(self, context: UpdateContext) -> StepResult:
        request_id = context.progress.carrier_request_id
        if not request_id:
            raise PermanentError("no ThingSpace request to confirm: the submit step stored none")
        decided = self._callback_decision(context, request_id)
        if decided is not None:
            return decided
        failed_at = self._failed_seen(request_id)
        if failed_at is not None and (
            self.deadline_passed(context) or time.time() >= failed_at + self._reason_wait()
        ):
            raise PermanentError(
                f"ThingSpace request {request_id} failed; no CarrierService callback gave the "
                "reason"
            )
        if self.deadline_passed(context):
            return self.reconcile(context, detail="the request is still not settled")
        last: list[RequestStatus] = []

        def check() -> RequestStatus | None:
            status = self.client.request_status(request_id=request_id)
            last[:] = [status]
            return status if status.succeeded or status.failed else None

        try:
            settled = self.poll(check)
        except RequestUnknown as exc:
            return self.reconcile(context, detail=f"the status call does not know it ({exc})")
        if settled is None:
            state = last[0].status if last else "Pending"
            raise self.pending(context, state, call=last[0].call if last else None)
        if settled.succeeded:
            return StepResult(Step.CONFIRM, {"carrier_status_at": utc_now()})
        # Failed: the reason comes only by callback; wait for it a while.
        if failed_at is None:
            self._mark_failed(request_id)
        raise self.pending(
            context, f"{settled.status}; waiting for the CarrierService callback with the reason"
        )

    @staticmethod
    def _reason_wait() -> float:
        return REASON_WAIT.total_seconds() * carrier_time_scale()

    def _failed_key(self, request_id: str) -> str:
        return f"thingspace:{self.credentials.integration_authentication_id}:failed:{request_id}"

    def _failed_seen(self, request_id: str) -> float | None:
        """When the status call first answered Failed for the request (shared by every worker;
        None: not yet)."""
        value = self.token_store.get(self._failed_key(request_id))
        return float(value) if isinstance(value, int | float) else None

    def _mark_failed(self, request_id: str) -> None:
        self.token_store.set(self._failed_key(request_id), time.time(), ttl=FAILED_SEEN_TTL)

    def _callback_decision(self, context: UpdateContext, request_id: str) -> StepResult | None:
        """A stored CarrierService callback for (request id, our ICCID) decides: a failure is
        permanent with its fault text; a success is done. A callback naming the device by
        another kind is matched by the request id alone (one device per request)."""
        for event in context.callbacks:
            if event.request_id != request_id:
                continue
            if (
                event.device_kind == "iccid"
                and event.device_id
                and event.device_id != context.iccid
            ):
                continue
            if event.outcome is CallbackOutcome.FAILED:
                if event.reason:
                    raise PermanentError(f"ThingSpace request {request_id} failed: {event.reason}")
                raise PermanentError(
                    f"ThingSpace request {request_id} failed; the CarrierService callback gave "
                    "no reason"
                )
            if event.outcome is CallbackOutcome.SUCCEEDED:
                return StepResult(
                    Step.CONFIRM,
                    {"carrier_status_at": utc_now()},
                    note="confirmed by CarrierService callback",
                )
        return None

    # -- inbound callbacks ------------------------------------------------------------------

    @classmethod
    def parse_callback(
        cls, *, credentials: Credentials, method: str, query: Mapping[str, str], body: bytes
    ) -> list[CallbackEvent]:
        """One CarrierService callback: the ``username`` and ``password`` in the body must be
        the row's callback credentials (compared in constant time) → else 401; a body that is
        not a JSON object with a ``requestId`` → 400. The device is the ``deviceIds`` entry of
        kind ICCID (kinds compared without case), else the first one named. ``faultResponse``
        or status Failed → FAILED with "<faultcode>: <faultstring>"; Success → SUCCEEDED;
        any other status → SIGNAL (the status call decides)."""
        try:
            payload = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise CallbackRejected(400, "ThingSpace callback body is not JSON") from exc
        if not isinstance(payload, dict):
            raise CallbackRejected(400, "ThingSpace callback body is not a JSON object")
        username = _text(payload.get("username")).encode()
        password = _text(payload.get("password")).encode()
        user_ok = hmac.compare_digest(username, credentials.callback_username.encode())
        password_ok = hmac.compare_digest(password, credentials.callback_password.encode())
        if not (user_ok and password_ok and credentials.callback_password):
            raise CallbackRejected(401, "ThingSpace callback credentials do not match")
        request_id = _text(payload.get("requestId"))
        if not request_id:
            raise CallbackRejected(400, "ThingSpace callback names no requestId")
        device_kind, device_id = _callback_device(payload.get("deviceIds"))
        fault = payload.get("faultResponse")
        status = _text(payload.get("status")).lower()
        if (isinstance(fault, dict) and fault) or status in REQUEST_FAILED:
            fault = fault if isinstance(fault, dict) else {}
            reason = ": ".join(
                part
                for part in (_text(fault.get("faultcode")), _text(fault.get("faultstring")))
                if part
            )
            outcome = CallbackOutcome.FAILED
        elif status == REQUEST_SUCCESS:
            reason, outcome = "", CallbackOutcome.SUCCEEDED
        else:
            reason, outcome = "", CallbackOutcome.SIGNAL
        return [
            CallbackEvent(
                request_id=request_id,
                outcome=outcome,
                device_id=device_id,
                device_kind=device_kind,
                reason=reason,
            )
        ]


def _callback_device(device_ids: Any) -> tuple[str, str]:
    """(kind in lower case, id) of the callback's ICCID entry, else of its first entry."""
    entries = [
        (_text(entry.get("kind")).lower(), _text(entry.get("id")))
        for entry in (device_ids if isinstance(device_ids, list) else [])
        if isinstance(entry, dict) and _text(entry.get("id"))
    ]
    for kind, device_id in entries:
        if kind == "iccid":
            return kind, device_id
    return entries[0] if entries else ("", "")
