"""AT&T Telegence (subscriber API): client and status-update processor.

Wire contract: ``docs/carriers/telegence.md``. Telegence addresses a line by its subscriber number
(MSISDN), never by ICCID, so a device without one fails before any call. A status update is one
synchronous step (:data:`Step.CARRIER_STATUS`): ``PATCH /subscribers/{msisdn}`` with the new
``serviceStatus``, a reason code (``CR`` unless the request names another) and today's date as
``effectiveDate``; the ``transactionId`` it answers is stored as the carrier request id.

Telegence's error body is ``{"errors": [{"code": …, "description": …}]}``, which the shared
:func:`~integrations.base.readable_error` turns into "HTTP 404 from Telegence: Subscriber not
found (SUB_404)".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any, ClassVar
from urllib.parse import quote

from integrations.base.errors import PermanentError
from integrations.base.http import CarrierClient
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
API_ROOT = "sp/mobility/v1"

ACTIVE = "Active"
SUSPENDED = "Suspended"
CANCELLED = "Cancelled"  # final: Telegence refuses any change out of it (409)

DEFAULT_REASON_CODE = "CR"  # customer request
REASON_CODE_PATTERN = re.compile(r"[A-Za-z0-9]{1,10}")
MAX_REQUEST_ID = 100  # DeviceChange.carrier_request_id

READ_SUBSCRIBER = "Read Telegence subscriber"
UPDATE_STATUS = "Update Telegence subscriber status"


def missing_msisdn_message(iccid: str) -> str:
    """The contract's wording for a device Telegence cannot address."""
    return f"Telegence needs the subscriber number (MSISDN) for ICCID {iccid}"


class TelegenceClient(CarrierClient):
    """Telegence's subscriber API: ``app-id``/``app-secret`` headers on every call, no token.

    Every method makes exactly one HTTP call and raises our error types (see
    :class:`CarrierHttp`), with Telegence's error codes in the message.
    """

    carrier = CARRIER

    @classmethod
    def auth_failure(cls, credentials: Credentials) -> str:
        label = TelegenceProcessor.account_label(credentials)
        return f"Telegence rejected the app id and secret for {label}"

    def auth_headers(self) -> dict[str, str]:
        return {"app-id": self.credentials.username, "app-secret": self.credentials.secret}

    def read_subscriber(self, *, msisdn: str) -> dict[str, Any]:
        """The subscriber's record: ``subscriberNumber``, ``iccid``, ``serviceStatus``, …"""
        return self._json_object(self._call("GET", _subscriber_path(msisdn), READ_SUBSCRIBER))

    def change_status(
        self,
        *,
        msisdn: str,
        service_status: str,
        reason_code: str,
        effective_date: date,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Change the line's status synchronously; returns Telegence's answer, whose
        ``transactionId`` names the change. Out of ``Cancelled`` Telegence answers 409."""
        response = self._call(
            "PATCH",
            _subscriber_path(msisdn),
            UPDATE_STATUS,
            json_body={
                "serviceStatus": service_status,
                "reasonCode": reason_code,
                "effectiveDate": effective_date.isoformat(),
            },
            idempotency_key=idempotency_key,
        )
        return self._json_object(response)


def _subscriber_path(msisdn: str) -> str:
    return f"{API_ROOT}/subscribers/{quote(msisdn, safe='')}"


class TelegenceProcessor(StatusUpdateProcessor[TelegenceClient]):
    """Telegence status updates: one synchronous PATCH per device, by MSISDN. Setting a status
    the line already has is harmless; a change out of ``Cancelled`` is refused (permanent)."""

    integration = Integration.TELEGENCE
    display_name = CARRIER
    client_class = TelegenceClient
    steps = (Step.CARRIER_STATUS,)
    descriptions: ClassVar[Mapping[Step, str]] = {Step.CARRIER_STATUS: UPDATE_STATUS}
    statuses: ClassVar[Mapping[str, StatusMapping]] = {
        ACTIVE: StatusMapping(ACTIVE, ACTIVE, ACTIVE),
        SUSPENDED: StatusMapping(SUSPENDED, SUSPENDED, SUSPENDED),
        CANCELLED: StatusMapping(CANCELLED, CANCELLED, CANCELLED),
    }

    @classmethod
    def account_label(cls, credentials: Credentials) -> str:
        """The billing account when the row has one, else the app id (never the secret)."""
        if credentials.account:
            return f"Telegence billing account {credentials.account}"
        return f"Telegence app {credentials.username}"

    @classmethod
    def validate_options(cls, *, target_status: str, options: Mapping[str, str]) -> list[str]:
        """A reason code, when given, is a short code of letters and digits ("CR", "NP");
        which codes exist is Telegence's to say (400 INVALID_REASON)."""
        reason_code = (options.get("reason_code") or "").strip()
        if reason_code and not REASON_CODE_PATTERN.fullmatch(reason_code):
            return [
                f"reason_code {reason_code!r} is not a Telegence reason code "
                "(up to 10 letters or digits, e.g. CR)"
            ]
        return []

    def check_identifiers(self, context: UpdateContext) -> None:
        """Telegence addresses lines by MSISDN: without one, fail before any call."""
        if not context.msisdn.strip():
            raise PermanentError(missing_msisdn_message(context.iccid))

    def perform(self, step: Step, context: UpdateContext) -> StepResult:
        """Set the line's ``serviceStatus``; records when, and Telegence's ``transactionId``.

        Raises PermanentError (no MSISDN, unknown subscriber, refused status or reason, change
        out of Cancelled, rejected credentials, an unknown target or step) or TransientError
        (timeouts, 429, 5xx)."""
        if step is not Step.CARRIER_STATUS:
            raise self._unknown_step(step)
        target = self._target(context)
        self.check_identifiers(context)
        answer = self.client.change_status(
            msisdn=context.msisdn.strip(),
            service_status=self.statuses[target].carrier_value,
            reason_code=(context.options.get("reason_code") or "").strip() or DEFAULT_REASON_CODE,
            effective_date=context.today or utc_now().date(),
            idempotency_key=context.idempotency_key(step),
        )
        updates: dict[str, Any] = {"carrier_status_at": utc_now()}
        transaction_id = str(answer.get("transactionId") or "")[:MAX_REQUEST_ID]
        if transaction_id:
            updates["carrier_request_id"] = transaction_id
        note = f"transaction {transaction_id}" if transaction_id else "no transaction id"
        return StepResult(step, updates, note=note)

    def read_status(self, context: UpdateContext) -> str | None:
        """The line's ``serviceStatus`` as a target name (case-insensitive); None for a status
        we cannot set or a record without one."""
        self.check_identifiers(context)
        subscriber = self.client.read_subscriber(msisdn=context.msisdn.strip())
        value = str(subscriber.get("serviceStatus") or "").strip().casefold()
        for name, mapping in self.statuses.items():
            if mapping.carrier_value.casefold() == value:
                return name
        return None
