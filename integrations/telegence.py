"""AT&T Telegence through the APEX mobility line-configuration API: client and processor.

Wire contract: ``docs/carriers/telegence.md``. The line-configuration service addresses a line
by its 10-digit subscriber number (MSISDN), never by ICCID, so a device without a usable one
fails before any call. Every call sends the APS-issued ``app-id``/``app-secret`` headers.

A status update is two steps. SUBMIT patches the line's ``subscriberStatus`` characteristic
(``A``/``S``/``C``) with a reason code and today's ``effectiveDate``; AT&T answers 2xx with the
line's record, which may still show the old status (the change can be applied later, as an
order). CONFIRM re-reads the line until it shows the target — polling within
BULKCHANGE_CONFIRM_SECONDS, then waiting on the README's schedule — for up to four hours; past
that, one last read decides.

Repeat safety: the PATCH sets a value, but a PATCH whose answer was lost is sent again only
after a read shows the line not yet in the target status.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import requests

from integrations.base.audit import CallRecord
from integrations.base.errors import CarrierPending, PermanentError
from integrations.base.http import CarrierClient, readable_error
from integrations.base.origins import Origin, known
from integrations.base.protocol import (
    Credentials,
    StatusMapping,
    StatusUpdateProcessor,
    Step,
    StepResult,
    UpdateContext,
    utc_now,
)
from integrations.base.registry import Integration

CARRIER = "Telegence"
LINE_PATH = "sp/mobility/lineconfig/api/v1/service"

ACTIVE = "Active"
SUSPENDED = "Suspended"
CANCELLED = "Cancelled"  # final: AT&T refuses to move a cancelled line

# The ``subscriberStatus`` characteristic of each target.
SUBSCRIBER_STATUS = {ACTIVE: "A", SUSPENDED: "S", CANCELLED: "C"}
TARGET_OF_CODE = {code: target for target, code in SUBSCRIBER_STATUS.items()}

# Reason codes unless the bulk change names one: customer request; cancel.
DEFAULT_REASON_CODES = {ACTIVE: "CR", SUSPENDED: "CR", CANCELLED: "CAN"}
REASON_CODE_PATTERN = re.compile(r"[A-Za-z0-9]{1,10}")
MAX_REQUEST_ID = 100  # DeviceChange.carrier_request_id
CONFIRM_DEADLINE = timedelta(hours=4)

READ_LINE = "Read Telegence line"
CHANGE_LINE_STATUS = "Change Telegence line status"


def missing_msisdn_message(iccid: str) -> str:
    """The contract's wording for a device Telegence cannot address."""
    return f"Telegence needs the subscriber number (MSISDN) for ICCID {iccid}"


def subscriber_number(msisdn: str) -> str | None:
    """The MSISDN as the line-configuration API wants it — 10 digits, spaces and dashes removed,
    a leading ``+1`` or ``1`` dropped — or None when what is left is not 10 digits."""
    digits = re.sub(r"[\s-]", "", msisdn)
    if digits.startswith("+1"):
        digits = digits[2:]
    elif len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits if len(digits) == 10 and digits.isascii() and digits.isdigit() else None


@dataclass(frozen=True)
class Line:
    """A line's service record as read (or as a PATCH answered it)."""

    subscriber_number: str
    subscriber_status: str  # the characteristic's value, "" when absent
    status: str  # the top-level ``status``, "" when absent
    sim: str  # the ``sim`` characteristic (the line's ICCID), "" when absent
    call: CallRecord

    @property
    def target(self) -> str | None:
        """The target this line is in: ``subscriberStatus`` exactly A, S or C; only when that
        is missing, the top-level ``status`` in any case; None for anything else."""
        if self.subscriber_status:
            return TARGET_OF_CODE.get(self.subscriber_status)
        wanted = self.status.casefold()
        return next((name for name in SUBSCRIBER_STATUS if name.casefold() == wanted), None)

    @property
    def shown(self) -> str:
        """How messages name what the line shows ("Active", "subscriberStatus 'P'")."""
        if self.target is not None:
            return self.target
        if self.subscriber_status:
            return f"subscriberStatus {self.subscriber_status!r}"
        return f"status {self.status!r}" if self.status else "no status"

    def sim_note(self, msisdn: str, iccid: str) -> str:
        """ "line … carries SIM …, not …" when the line's SIM is not the device change's."""
        if self.sim and iccid and self.sim != iccid:
            return f"line {msisdn} carries SIM {self.sim}, not {iccid}"
        return ""


def _characteristics(record: Mapping[str, Any]) -> dict[str, str]:
    """``serviceCharacteristic`` as ``{name: value}`` (entries that are not name/value pairs
    are skipped)."""
    entries = record.get("serviceCharacteristic")
    found: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            value = entry.get("value")
            found[entry["name"]] = "" if value is None else str(value).strip()
    return found


class TelegenceClient(CarrierClient):
    """The APEX line-configuration API: ``app-id``/``app-secret`` headers on every call, no
    token. Every method makes exactly one HTTP call and raises our error types (see
    :class:`~integrations.base.http.CarrierHttp`)."""

    carrier = CARRIER
    read_calls: ClassVar[frozenset[str]] = frozenset({READ_LINE})

    @classmethod
    def auth_failure(cls, credentials: Credentials) -> str:
        label = TelegenceProcessor.account_label(credentials)
        return f"Telegence rejected the app id and secret for {label}"

    def auth_headers(self) -> dict[str, str]:
        return {"app-id": self.credentials.username, "app-secret": self.credentials.secret}

    def describe_error(self, response: requests.Response) -> str:
        """The gateway's ``errorDescription``, else ``description``, else ``message``, with its
        ``id`` when present: "HTTP 400 from Telegence: Invalid reasonCode (id 3067…)". The
        documented 404 ``{"id", "description": "/service/"}`` is named for what it means."""
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            return readable_error(self.carrier, response)
        text = next(
            (
                str(payload[key]).strip()
                for key in ("errorDescription", "description", "message")
                if isinstance(payload.get(key), str) and payload[key].strip()
            ),
            "",
        )
        if not text:
            return readable_error(self.carrier, response)
        if response.status_code == 404 and text == "/service/":
            text = "unknown line, or a change the line does not allow (/service/)"
        error_id = str(payload.get("id") or "").strip()
        detail = f"{text} (id {error_id})" if error_id else text
        return f"HTTP {response.status_code} from {self.carrier}: {detail[:300]}"

    def read_line(self, *, msisdn: str) -> Line:
        """``GET …/service/{subscriberNumber}``: the line's service record."""
        response = self._call("GET", _line_path(msisdn), READ_LINE)
        return _line(self._json_object(response), msisdn, response.call)

    def change_status(
        self,
        *,
        msisdn: str,
        subscriber_status: str,
        reason_code: str,
        effective_date: date,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """``PATCH …/service/{subscriberNumber}`` setting ``subscriberStatus`` (A, S or C) and
        ``reasonCode``; returns AT&T's answer (the line's record, possibly still showing the
        old status)."""
        body = {
            "effectiveDate": effective_date.isoformat(),
            "serviceCharacteristic": [
                {"name": "subscriberStatus", "value": subscriber_status},
                {"name": "reasonCode", "value": reason_code},
            ],
        }
        response = self._call(
            "PATCH",
            _line_path(msisdn),
            CHANGE_LINE_STATUS,
            json_body=body,
            idempotency_key=idempotency_key,
        )
        if response.body is None:  # a 202 or 204 without a record
            return {}
        return self._json_object(response)


def _line_path(msisdn: str) -> str:
    return f"{LINE_PATH}/{quote(msisdn, safe='')}"


def _line(record: Mapping[str, Any], msisdn: str, call: CallRecord) -> Line:
    characteristics = _characteristics(record)
    return Line(
        subscriber_number=str(record.get("subscriberNumber") or msisdn),
        subscriber_status=characteristics.get("subscriberStatus", ""),
        status=str(record.get("status") or "").strip(),
        sim=characteristics.get("sim", ""),
        call=call,
    )


class TelegenceProcessor(StatusUpdateProcessor[TelegenceClient]):
    """Telegence status updates: SUBMIT (the PATCH accepted), CONFIRM (the line re-read until
    it shows the target; four hours at most). A change out of ``Cancelled`` is refused by AT&T
    (permanent)."""

    integration = Integration.TELEGENCE
    display_name = CARRIER
    option_names = ("reason_code",)
    # telegence.md: the APS gateway, on its own port.
    known_origins: ClassVar[tuple[Origin, ...]] = (known("https://apsapi.att.com:8082"),)
    client_class = TelegenceClient
    steps = (Step.SUBMIT, Step.CONFIRM)
    descriptions: ClassVar[Mapping[Step, str]] = {
        Step.SUBMIT: CHANGE_LINE_STATUS,
        Step.CONFIRM: READ_LINE,
    }
    statuses: ClassVar[Mapping[str, StatusMapping]] = {
        target: StatusMapping(target, code, target, destructive=target == CANCELLED)
        for target, code in SUBSCRIBER_STATUS.items()
    }
    # telegence.md: Cancelled is final.
    refused_transitions: ClassVar[Mapping[str, frozenset[str]]] = {
        CANCELLED: frozenset({ACTIVE, SUSPENDED}),
    }
    # The contract publishes no limits; these are PondOps' defaults for a new row (an operator
    # sets the account's real figures on the IntegrationAuthentication row).
    default_rate_limit: ClassVar[float] = 10.0
    default_max_concurrency: ClassVar[int] = 4

    @classmethod
    def account_label(cls, credentials: Credentials) -> str:
        """The billing account when the row has one, else the app id (never the secret)."""
        if credentials.account:
            return f"Telegence billing account {credentials.account}"
        return f"Telegence app {credentials.username}"

    @classmethod
    def validate_options(cls, *, target_status: str, options: Mapping[str, str]) -> list[str]:
        """A reason code, when given, is a short code of letters and digits ("CR", "CAN");
        which codes exist is AT&T's to say (a 400)."""
        reason_code = (options.get("reason_code") or "").strip()
        if reason_code and not REASON_CODE_PATTERN.fullmatch(reason_code):
            return [
                f"reason_code {reason_code!r} is not a Telegence reason code "
                "(up to 10 letters or digits, e.g. CR)"
            ]
        return []

    def check_identifiers(self, context: UpdateContext) -> None:
        """Lines are addressed by a 10-digit MSISDN: without one, fail before any call."""
        self._msisdn(context)

    def confirm_deadline(self, context: UpdateContext) -> timedelta:
        """Four hours for every target (the contract's figure)."""
        return CONFIRM_DEADLINE

    def perform(self, step: Step, context: UpdateContext) -> StepResult:
        """SUBMIT patches the line (reading it first when an earlier PATCH's answer was lost);
        CONFIRM re-reads it until it shows the target.

        Raises PermanentError (no usable MSISDN, unknown line or refused change, rejected
        credentials, the line still not in the target past the deadline, an unknown target or
        step), TransientError (timeouts, 429, 5xx) or CarrierPending (the line does not show
        the target yet)."""
        target = self._target(context)
        msisdn = self._msisdn(context)
        if step is Step.SUBMIT:
            return self._submit(context, target, msisdn)
        if step is Step.CONFIRM:
            return self._confirm(context, target, msisdn)
        raise self._unknown_step(step)

    def read_status(self, context: UpdateContext) -> str | None:
        """The line's status as a target name; None for a status we cannot set."""
        return self.client.read_line(msisdn=self._msisdn(context)).target

    def reconcile(self, context: UpdateContext, *, detail: str = "") -> StepResult:
        """Past the deadline one read decides: the target → CONFIRM done; otherwise ERROR
        "Telegence accepted the change but line … still shows …"."""
        msisdn = self._msisdn(context)
        line = self.client.read_line(msisdn=msisdn)
        note = line.sim_note(msisdn, context.iccid)
        if line.target == self._target(context):
            return StepResult(
                Step.CONFIRM,
                {"carrier_status_at": utc_now()},
                note="; ".join(filter(None, ["reconciled by read", note])),
            )
        message = f"Telegence accepted the change but line {msisdn} still shows {line.shown}"
        raise PermanentError(f"{message}; {note}" if note else message, call=line.call)

    # Steps -----------------------------------------------------------------------------------

    def _submit(self, context: UpdateContext, target: str, msisdn: str) -> StepResult:
        if context.progress.write_may_have_reached_carrier:
            # An earlier PATCH may have been applied with its answer lost: only a line not yet
            # in the target is patched again.
            line = self.client.read_line(msisdn=msisdn)
            if line.target == target:
                now = utc_now()
                note = f"line {msisdn} already {target}; the earlier change was not sent again"
                sim_note = line.sim_note(msisdn, context.iccid)
                return StepResult(
                    Step.SUBMIT,
                    {"carrier_submitted_at": now, "carrier_status_at": now},
                    note="; ".join(filter(None, [note, sim_note])),
                )
        answer = self.client.change_status(
            msisdn=msisdn,
            subscriber_status=self.statuses[target].carrier_value,
            reason_code=(context.options.get("reason_code") or "").strip()
            or DEFAULT_REASON_CODES[target],
            effective_date=context.today or utc_now().date(),
            idempotency_key=context.idempotency_key(Step.SUBMIT),
        )
        updates: dict[str, Any] = {"carrier_submitted_at": utc_now()}
        request_id = str(answer.get("id") or answer.get("requestId") or "")[:MAX_REQUEST_ID]
        if request_id:
            updates["carrier_request_id"] = request_id
        note = f"request {request_id} accepted" if request_id else "accepted (no request id)"
        return StepResult(Step.SUBMIT, updates, note=note)

    def _confirm(self, context: UpdateContext, target: str, msisdn: str) -> StepResult:
        if self.deadline_passed(context):
            return self.reconcile(context)
        lines: list[Line] = []

        def shows_target() -> Line | None:
            line = self.client.read_line(msisdn=msisdn)
            lines.append(line)
            if line.target == CANCELLED and target != CANCELLED:
                raise PermanentError(
                    f"line {msisdn} is Cancelled (final); it cannot become {target}",
                    call=line.call,
                )
            return line if line.target == target else None

        confirmed = self.poll(shows_target)
        if confirmed is not None:
            note = "; ".join(
                filter(None, [f"line {msisdn} {target}", confirmed.sim_note(msisdn, context.iccid)])
            )
            return StepResult(Step.CONFIRM, {"carrier_status_at": utc_now()}, note=note)
        last = lines[-1]
        state = f"waiting for Telegence: line {msisdn} still shows {last.shown}"
        sim_note = last.sim_note(msisdn, context.iccid)
        raise CarrierPending(f"{state}; {sim_note}" if sim_note else state, call=last.call)

    def _msisdn(self, context: UpdateContext) -> str:
        """The context's MSISDN as 10 digits; PermanentError (before any call) when it has none
        or one that is not a 10-digit North American number."""
        given = context.msisdn.strip()
        if not given:
            raise PermanentError(missing_msisdn_message(context.iccid))
        number = subscriber_number(given)
        if number is None:
            raise PermanentError(
                f"Telegence needs a 10-digit subscriber number (MSISDN) for ICCID "
                f"{context.iccid}, not {given!r}"
            )
        return number
