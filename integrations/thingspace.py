"""Verizon ThingSpace (Connectivity Management M2M API): client and status-update processor.

Wire contract: ``docs/carriers/thingspace.md``. ThingSpace is a token carrier with asynchronous
changes:

- **Authentication** is two calls — an OAuth token, then a UWS session — whose tokens every
  later call sends, shared by every worker and refreshed once after a 401; it is
  :mod:`integrations.thingspace_tokens`' job (the login, the shared tokens, the lockout that
  :func:`reset_login_failures` lifts).
- **A status change** is two resumable steps: :data:`Step.SUBMIT` posts the action and stores
  ThingSpace's ``requestId``; :data:`Step.CONFIRM` polls that request's status for up to
  ``BULKCHANGE_CONFIRM_SECONDS``. A request still pending is a transient failure whose retry
  resumes at CONFIRM with the stored id — a change is never submitted twice by a retry.

Status names are translated here, by table: :data:`ThingSpaceProcessor.statuses` holds the
action for each target and :data:`DEVICE_STATES` the canonical name for each device state.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

from integrations.base.audit import CallRecord
from integrations.base.errors import PermanentError, TransientError
from integrations.base.http import unexpected_response
from integrations.base.protocol import (
    Credentials,
    StatusMapping,
    StatusUpdateProcessor,
    Step,
    StepResult,
    TokenStore,
    UpdateContext,
    confirm_budget_seconds,
    utc_now,
)
from integrations.base.registry import Integration
from integrations.thingspace_tokens import (
    CARRIER,
    ThingSpaceTokenClient,
    account_label,
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

ACTIONS_PATH = "api/m2m/v1/devices/actions"

READ_DEVICE = "Read ThingSpace device"
SUBMIT_CHANGE = "Submit ThingSpace status change"
CHECK_REQUEST = "Check ThingSpace request status"

FIRST_POLL_DELAY = 0.2
MAX_POLL_DELAY = 2.0

# Module-level so tests can replace the clock and the sleep of the confirm polling.
_monotonic = time.monotonic
_sleep = time.sleep


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


class ThingSpaceClient(ThingSpaceTokenClient):
    """ThingSpace's M2M API for one account: device calls, each sending both tokens (see
    :class:`~integrations.thingspace_tokens.ThingSpaceTokenClient`, which logs in on demand and
    retries once after a 401). Every method raises our error types (see :class:`CarrierHttp`);
    ``submit_action`` takes the ``Idempotency-Key`` to send.
    """

    def device_state(self, *, iccid: str) -> str:
        """The device's ThingSpace state (``carrierInformations[0].state``); "" when ThingSpace
        lists no state for it."""
        response = self._data_call(
            "POST",
            f"{ACTIONS_PATH}/list",
            READ_DEVICE,
            json_body={"accountName": self.credentials.account, "deviceId": _iccid(iccid)},
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
            "accountName": self.credentials.account,
            "devices": [{"deviceIds": [_iccid(iccid)]}],
            **(fields or {}),
        }
        response = self._data_call(
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
        response = self._data_call(
            "GET",
            f"api/m2m/v1/accounts/{quote(self.credentials.account, safe='')}/requests/"
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


def _iccid(iccid: str) -> dict[str, str]:
    return {"kind": "iccid", "id": iccid}


def _flag(value: str) -> bool | None:
    word = value.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    return None


class ThingSpaceProcessor(StatusUpdateProcessor[ThingSpaceClient]):
    """ThingSpace status updates: submit the action, then confirm the request completed.

    SUBMIT is the only step that changes anything at Verizon and runs at most once per device
    change per attempt that has not yet recorded it; CONFIRM only reads, so repeating it is
    harmless. ``active`` restores a suspended line and activates any other one."""

    integration = Integration.THINGSPACE
    display_name = CARRIER
    client_class = ThingSpaceClient
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
        raise self._unknown_step(step)

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
