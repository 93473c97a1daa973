"""Cisco IoT Control Center (Jasper, REST API v1): client and status-update processor.

Wire contract: ``docs/carriers/jasper.md``. ``base_url`` is the origin of the operator's REST
host; every call is under ``{base_url}/rws/api/v1`` with HTTP Basic ``username:api_key``.

A status update is two resumable steps:

1. :data:`Step.SUBMIT` — ``PUT /devices/{iccid}`` with ``{"status": ...}``. A 200 echoing our
   ICCID confirms at once, so SUBMIT then records both ``carrier_submitted_at`` and
   ``carrier_status_at`` and CONFIRM never runs. An echo naming another ICCID is a permanent
   error (nobody can tell which device Jasper changed). A 202, or a 2xx without an echo, is
   "accepted, not yet confirmed": only ``carrier_submitted_at`` is recorded.
2. :data:`Step.CONFIRM` — reads ``GET /devices/{iccid}`` until ``status`` is the target, polling
   within ``BULKCHANGE_CONFIRM_SECONDS``; still not there → :class:`CarrierPending` (the device
   waits, AWAITING_CARRIER, without consuming a retry). Past the 10-minute confirm deadline one
   last read decides (:meth:`JasperProcessor.reconcile`).

Errors beyond the shared classification (:class:`JasperHttp`): ``errorCode`` ``40000029`` is
Jasper's calls-per-second limit whatever the HTTP status — transient, and it slows every sender
of the credentials down; ``10030000`` (activating an activated SIM) is done when the target is
``ACTIVATED``; a 403 means the API user's role may not do this; every 5xx is transient.

Jasper's status names are our target names and our inventory codes, so the status table maps
each name to itself; ``PURGED`` and ``REPLACED`` exist on reads but cannot be set, so they are
not in the table (a request for them is refused at creation by ``canonical_status``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import requests

from integrations.base.audit import CallRecord, redact
from integrations.base.errors import (
    CarrierPending,
    PermanentError,
    TransientError,
    parse_retry_after,
)
from integrations.base.http import (
    CarrierClient,
    CarrierHttp,
    HttpResponse,
)
from integrations.base.origins import Origin, known
from integrations.base.protocol import (
    Credentials,
    StatusMapping,
    StatusUpdateProcessor,
    Step,
    StepResult,
    UpdateContext,
    describe_duration,
    utc_now,
)
from integrations.base.registry import Integration

CARRIER = "Jasper"
API_ROOT = "rws/api/v1"

ACTIVATED = "ACTIVATED"
DEACTIVATED = "DEACTIVATED"
ACTIVATION_READY = "ACTIVATION_READY"
TEST_READY = "TEST_READY"
INVENTORY = "INVENTORY"
RETIRED = "RETIRED"
# Statuses Jasper reports but will not let us set (docs/carriers/jasper.md).
READ_ONLY_STATUSES = ("PURGED", "REPLACED")

# errorCodes the contract classifies beyond the HTTP status.
TARIFF_LIMIT = "40000029"  # "Exceeding Tariff limits": the account's calls per second
ALREADY_ACTIVATED = "10030000"  # "Cannot activate a SIM which is already activated"
TARIFF_LIMIT_WAIT_SECONDS = 1.0  # "wait at least 1 s or Retry-After"

ACCEPTED = 202
CONFIRM_DEADLINE = timedelta(minutes=10)

READ_DEVICE = "Read Jasper device"
UPDATE_STATUS = "Update Jasper device status"


class AlreadyActivated(PermanentError):
    """Jasper refused to activate a SIM that is already activated (``10030000``): permanent in
    general, done when the target is ``ACTIVATED``."""


@dataclass(frozen=True)
class StatusAnswer:
    """The answer to a status PUT that named no other device: ``confirmed`` when it was a
    non-202 2xx echoing our ICCID, otherwise accepted and still to be confirmed by a read."""

    http_status: int
    confirmed: bool
    call: CallRecord


@dataclass(frozen=True)
class DeviceReading:
    """A device's status as Jasper shows it ("" when the read had none) and the read's call."""

    status: str
    call: CallRecord


def _error_code(response: requests.Response) -> str:
    """The ``errorCode`` of a Jasper error body ("" when the body has none)."""
    try:
        payload = response.json()
    except ValueError:
        return ""
    if not isinstance(payload, dict):
        return ""
    return str(payload.get("errorCode") or "").strip()


class JasperHttp(CarrierHttp):
    """The shared mechanism plus Jasper's own classification of error answers
    (``docs/carriers/jasper.md`` "Errors"): ``40000029`` is transient whatever the HTTP status
    and slows the limiter down; ``10030000`` is :class:`AlreadyActivated`; 403 names the role;
    every 5xx is transient."""

    def _raise_for(
        self, response: requests.Response, call: CallRecord, *, auth_failure: str
    ) -> None:
        status = response.status_code
        code = _error_code(response)
        message = redact(self.describe_error(response), self.credentials.secrets)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if code == TARIFF_LIMIT:
            wait = max(TARIFF_LIMIT_WAIT_SECONDS, retry_after or 0.0)
            self.throttle.penalise(wait)
            raise TransientError(message, call=call, retry_after=wait)
        if code == ALREADY_ACTIVATED:
            raise AlreadyActivated(message, call=call)
        if status == 403:
            label = JasperProcessor.account_label(self.credentials)
            raise PermanentError(
                f"Jasper refused the call for {label}: the API user's role may not do this "
                f"({message})",
                call=call,
            )
        if status >= 500:
            raise TransientError(message, call=call, retry_after=retry_after)
        super()._raise_for(response, call, auth_failure=auth_failure)


class JasperClient(CarrierClient):
    """Jasper's device API: HTTP Basic on every call, no token.

    Every method makes exactly one HTTP call and raises our error types (see
    :class:`JasperHttp`, whose readable message carries Jasper's ``errorCode``).
    """

    carrier = CARRIER
    read_calls: ClassVar[frozenset[str]] = frozenset({READ_DEVICE})
    http_class = JasperHttp  # Jasper's error classification in place of the shared one

    @classmethod
    def auth_failure(cls, credentials: Credentials) -> str:
        label = JasperProcessor.account_label(credentials)
        return f"Jasper rejected the credentials of {label} (the API key may have expired)"

    def basic_auth(self) -> tuple[str, str]:
        return (self.credentials.username, self.credentials.secret)

    def get_device(self, *, iccid: str) -> dict[str, Any]:
        """``GET /devices/{iccid}``: the device's details, ``status`` among them."""
        return self._json_object(self._read(iccid))

    def device_status(self, *, iccid: str) -> DeviceReading:
        """``GET /devices/{iccid}``: the device's ``status`` as Jasper shows it, with the call."""
        response = self._read(iccid)
        status = self._json_object(response).get("status")
        return DeviceReading(status.strip() if isinstance(status, str) else "", response.call)

    def set_status(self, *, iccid: str, status: str, idempotency_key: str) -> StatusAnswer:
        """``PUT /devices/{iccid}`` with ``{"status": status}``.

        A 2xx other than 202 echoing our ICCID (surrounding spaces ignored) is confirmed; a 202,
        or a 2xx without an echo (empty body, no or blank ``iccid``, not an object), is accepted
        and not yet confirmed. An echo naming another ICCID is a :class:`PermanentError` naming
        both. Raises :class:`AlreadyActivated` for ``10030000``."""
        response = self._call(
            "PUT",
            _device_path(iccid),
            UPDATE_STATUS,
            json_body={"status": status},
            idempotency_key=idempotency_key,
        )
        echo = response.body.get("iccid") if isinstance(response.body, dict) else None
        echoed = "" if echo is None else str(echo).strip()
        if echoed and echoed != iccid:
            raise PermanentError(
                f"HTTP {response.status} from Jasper: the answer echoed ICCID {echoed}, not "
                f"{iccid}; the status change is not confirmed",
                call=response.call,
            )
        confirmed = echoed == iccid and response.status != ACCEPTED
        return StatusAnswer(response.status, confirmed, response.call)

    def _read(self, iccid: str) -> HttpResponse:
        return self._call("GET", _device_path(iccid), READ_DEVICE)


def _device_path(iccid: str) -> str:
    return f"{API_ROOT}/devices/{quote(iccid, safe='')}"


class JasperProcessor(StatusUpdateProcessor[JasperClient]):
    """Jasper status updates: SUBMIT puts the status (confirmed at once by the ICCID echo, as a
    rule), CONFIRM reads the device when the answer did not confirm.

    Repeat safety: a PUT sets a value, so a SUBMIT whose answer was lost is simply sent again
    (``write_may_have_reached_carrier`` needs no read first); re-activating an activated SIM
    is refused with ``10030000``, which counts as done when the target is ``ACTIVATED``.
    CONFIRM only reads."""

    integration = Integration.JASPER
    display_name = CARRIER
    # jasper.md: the sandbox REST host and the numbered production hosts (restapi1, restapi3…).
    known_origins: ClassVar[tuple[Origin, ...]] = (
        known("https://rws-jpotest.jasper.com"),
        Origin(
            scheme="https",
            host_pattern=r"restapi[0-9]+\.jasper\.com",
            label="https://restapi<N>.jasper.com",
        ),
    )
    client_class = JasperClient
    steps = (Step.SUBMIT, Step.CONFIRM)
    descriptions: ClassVar[Mapping[Step, str]] = {
        Step.SUBMIT: UPDATE_STATUS,
        Step.CONFIRM: READ_DEVICE,
    }
    statuses: ClassVar[Mapping[str, StatusMapping]] = {
        name: StatusMapping(name, name, name, destructive=name == RETIRED)
        for name in (ACTIVATED, DEACTIVATED, ACTIVATION_READY, TEST_READY, INVENTORY, RETIRED)
    }
    # jasper.md "Statuses": nothing leaves RETIRED; an activated SIM never goes back to a
    # pre-activation status.
    refused_transitions: ClassVar[Mapping[str, frozenset[str]]] = {
        RETIRED: frozenset({ACTIVATED, DEACTIVATED, ACTIVATION_READY, TEST_READY, INVENTORY}),
        ACTIVATED: frozenset({ACTIVATION_READY, TEST_READY}),
    }
    # Cisco's fair-use policy: one call at a time per account. The calls-per-second limit is
    # operator-specific and unpublished: 5/s is our assumption, lowered by every 40000029.
    default_max_concurrency = 1
    default_rate_limit = 5.0

    @classmethod
    def account_label(cls, credentials: Credentials) -> str:
        """ "Jasper account <username>", with the row's ``account`` label when it adds one."""
        name = credentials.username or credentials.account
        label = f"Jasper account {name}"
        if credentials.account and credentials.account != name:
            label += f" ({credentials.account})"
        return label

    @classmethod
    def validate_base_url(cls, base_url: str) -> list[str]:
        """``base_url`` is the REST host's origin: one that already holds the ``/rws/api/v1``
        the client appends would double it."""
        path = urlsplit(base_url.strip()).path.rstrip("/")
        if path.lower().endswith("/" + API_ROOT):
            return [
                "Jasper's base_url is the REST host's origin (e.g. https://restapi3.jasper.com); "
                f"leave out /{API_ROOT}, which PondOps appends"
            ]
        return []

    def check_identifiers(self, context: UpdateContext) -> None:
        """Jasper addresses devices by ICCID only."""
        if not context.iccid.strip():
            raise PermanentError("Jasper needs the device's ICCID; this device has none")

    def confirm_deadline(self, context: UpdateContext) -> timedelta:
        """Ten minutes for every status (Control Center says its 202 operations complete
        within seconds)."""
        return CONFIRM_DEADLINE

    def perform(self, step: Step, context: UpdateContext) -> StepResult:
        """SUBMIT puts the target status; CONFIRM reads the device until it shows it.

        Raises PermanentError (unknown ICCID, refused transition or status, rejected
        credentials or role, a wrong echo, not confirmed by the deadline, an unknown target or
        step), TransientError (timeouts, connection errors, 408, 429, 5xx, ``40000029``) or,
        from CONFIRM, CarrierPending while the device does not show the target yet."""
        if step is Step.SUBMIT:
            return self._submit(context)
        if step is Step.CONFIRM:
            return self._confirm(context)
        raise self._unknown_step(step)

    def read_status(self, context: UpdateContext) -> str | None:
        """The device's Jasper status when it is one we can set; None for PURGED, REPLACED, a
        missing or an unknown status."""
        return self._target_of(self.client.device_status(iccid=context.iccid).status)

    def reconcile(self, context: UpdateContext, *, detail: str = "") -> StepResult:
        """Past the confirm deadline one read decides: the device shows the target → CONFIRM is
        done ("reconciled by read"); otherwise a permanent error saying what it shows.

        Jasper gives a status change no request id, so the message names the ICCID where the
        shared one names the request."""
        target = self._target(context)
        reading = self.client.device_status(iccid=context.iccid)
        if self._target_of(reading.status) == target:
            return StepResult(
                Step.CONFIRM, {"carrier_status_at": utc_now()}, note="reconciled by read"
            )
        deadline = describe_duration(self.confirm_deadline(context))
        message = (
            f"Jasper did not confirm the status change of ICCID {context.iccid} within "
            f"{deadline}; check the carrier before retrying: Jasper accepted the change but "
            f"the device still shows {reading.status or 'no status'}"
        )
        raise PermanentError(f"{message} ({detail})" if detail else message, call=reading.call)

    # -- steps ------------------------------------------------------------------------------

    def _submit(self, context: UpdateContext) -> StepResult:
        target = self._target(context)
        try:
            answer = self.client.set_status(
                iccid=context.iccid,
                status=self.statuses[target].carrier_value,
                idempotency_key=context.idempotency_key(Step.SUBMIT),
            )
        except AlreadyActivated:
            if target != ACTIVATED:
                raise
            now = utc_now()
            return StepResult(
                Step.SUBMIT,
                {"carrier_submitted_at": now, "carrier_status_at": now},
                note="already ACTIVATED at Jasper (10030000)",
            )
        now = utc_now()
        if answer.confirmed:
            return StepResult(
                Step.SUBMIT,
                {"carrier_submitted_at": now, "carrier_status_at": now},
                note="confirmed by the ICCID echo",
            )
        return StepResult(
            Step.SUBMIT,
            {"carrier_submitted_at": now},
            note=f"HTTP {answer.http_status} without confirmation; confirming by read",
        )

    def _confirm(self, context: UpdateContext) -> StepResult:
        target = self._target(context)
        if self.deadline_passed(context):
            return self.reconcile(context)
        readings: list[DeviceReading] = []

        def shows_target() -> DeviceReading | None:
            reading = self.client.device_status(iccid=context.iccid)
            readings.append(reading)
            return reading if self._target_of(reading.status) == target else None

        if self.poll(shows_target) is None:
            last = readings[-1]
            raise CarrierPending(
                f"waiting for Jasper: ICCID {context.iccid} still shows "
                f"{last.status or 'no status'}, not {target}",
                call=last.call,
            )
        return StepResult(
            Step.CONFIRM, {"carrier_status_at": utc_now()}, note=f"device shows {target}"
        )

    def _target_of(self, status: str) -> str | None:
        try:
            return self.canonical_status(status) if status else None
        except ValueError:
            return None
