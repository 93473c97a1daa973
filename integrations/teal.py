"""Teal (eSIM connectivity API): client and status-update processor.

Wire contract: ``docs/carriers/teal.md``. Teal addresses a device by its EID, so a device without
one fails before any call. Changing state is asynchronous and the request is named by *us*:

1. :data:`Step.PREPARE` draws our ``requestId`` (a UUID4) — no call; the worker stores it on the
   device change before anything is sent, so every (re)submission of this change carries it
   and Teal recognises a repeat instead of starting a second operation;
2. :data:`Step.SUBMIT` posts ``/esims/enable`` or ``/esims/disable`` with that ``requestId``;
3. :data:`Step.CONFIRM` polls ``/operations/{requestId}`` with a short back-off, for at most
   :func:`~integrations.base.confirm_budget_seconds`. Still running then is a
   :class:`TransientError`: the retry resumes here and polls again, never re-submitting.

Teal may answer a poll with HTTP 102 instead of ``PROCESSING``; that counts as still running,
and the session's pooled connections are closed afterwards, because a server that sends an
interim 1xx goes on to send the final answer on the same connection, which ``http.client`` would
otherwise read as the answer to our *next* request.

Teal's error body is ``{"errorCode": …, "message": …}``; the shared readable message reads
"HTTP 404 from Teal: eSIM … not found (ESIM_NOT_FOUND)".
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast
from urllib.parse import quote

from integrations.base.audit import CallRecord
from integrations.base.errors import PermanentError, TransientError
from integrations.base.http import CarrierClient, unexpected_response
from integrations.base.protocol import (
    Credentials,
    StatusMapping,
    StatusUpdateProcessor,
    Step,
    StepResult,
    UpdateContext,
    confirm_budget_seconds,
    utc_now,
)
from integrations.base.registry import Integration

CARRIER = "Teal"
API_ROOT = "api/v1"

Action = Literal["enable", "disable"]

# Targets a bulk change can set (docs/carriers/README.md) and the eSIM states Teal reports.
ENABLED = "enabled"
DISABLED = "disabled"
ONLINE = "online"
WAITING = "waiting"
STOPPED = "stopped"
TARGET_OF_STATE: Mapping[str, str] = {ONLINE: ENABLED, WAITING: ENABLED, STOPPED: DISABLED}

# Operation statuses (GET /operations/{requestId}).
QUEUED = "QUEUED"
PROCESSING = "PROCESSING"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
RUNNING = frozenset({QUEUED, PROCESSING})
OPERATION_STATUSES = RUNNING | {COMPLETED, FAILED}

# CONFIRM polls at once, then after 0.25 s, 0.5 s, 1 s, 2 s, 2 s, … until the budget is spent.
FIRST_POLL_DELAY = 0.25
MAX_POLL_DELAY = 2.0

CHANGE_STATE = "Change Teal eSIM state"
READ_OPERATION = "Read Teal operation"
READ_ESIM = "Read Teal eSIM"
PREPARE_REQUEST = "Prepare Teal request id"  # no call: our requestId, stored before the submit


def missing_eid_message(iccid: str) -> str:
    """The contract's wording for a device Teal cannot address."""
    return f"Teal needs the EID for ICCID {iccid}"


def account_label(credentials: Credentials) -> str:
    """How messages name a Teal account: its label, else its ApiKey — never the ApiSecret."""
    return f"Teal account {credentials.account or credentials.username}"


@dataclass(frozen=True)
class Entry:
    """One EID's outcome inside an operation; ``error`` is None when it succeeded."""

    eid: str
    status: str
    error: str | None


@dataclass(frozen=True)
class Operation:
    """An operation as ``GET /operations/{requestId}`` reports it.

    ``interim`` is True when Teal answered HTTP 1xx (102 Processing): no body, still running.
    """

    request_id: str
    status: str
    entries: tuple[Entry, ...]
    message: str
    call: CallRecord
    interim: bool = False

    @property
    def running(self) -> bool:
        return self.interim or self.status in RUNNING

    def entry_for(self, eid: str) -> Entry | None:
        return next((entry for entry in self.entries if entry.eid == eid), None)


class TealClient(CarrierClient):
    """Teal's eSIM API: ``ApiKey``/``ApiSecret`` headers on every call, no token.

    Every method makes exactly one HTTP call and raises our error types (see
    :class:`CarrierHttp`, whose readable message carries Teal's ``errorCode``). The ApiSecret is a
    credentials secret, so :class:`CarrierHttp` replaces its value in every audit text.
    """

    carrier = CARRIER

    @classmethod
    def auth_failure(cls, credentials: Credentials) -> str:
        return f"Teal rejected the ApiKey/ApiSecret of {account_label(credentials)}"

    def auth_headers(self) -> dict[str, str]:
        return {"ApiKey": self.credentials.username, "ApiSecret": self.credentials.secret}

    def change_state(
        self,
        *,
        action: Action,
        eid: str,
        carrier_request_id: str,
        idempotency_key: str,
        callback_url: str = "",
    ) -> str:
        """Ask Teal to enable or disable one eSIM under our ``requestId`` (202, QUEUED).

        Sending the same ``carrier_request_id`` again does not start a second operation.
        Returns the status Teal answered (``QUEUED`` for a new operation)."""
        response = self._call(
            "POST",
            f"{API_ROOT}/esims/{action}",
            CHANGE_STATE,
            params={"requestId": carrier_request_id, "callbackUrl": callback_url},
            json_body={"entries": [eid]},
            idempotency_key=idempotency_key,
        )
        body = response.body if isinstance(response.body, dict) else {}
        answered = body.get("requestId")
        if answered not in (None, "", carrier_request_id):
            raise PermanentError(
                f"HTTP {response.status} from Teal: answered requestId {answered!s:.100} "
                f"for our request {carrier_request_id}",
                call=response.call,
            )
        return str(body.get("status") or "")

    def read_operation(self, *, carrier_request_id: str) -> Operation:
        """The operation's status and, once COMPLETED, each EID's entry. An HTTP 1xx answer is
        "still running"; the session's pooled connections are dropped after it (see module
        docstring)."""
        response = self._call(
            "GET", f"{API_ROOT}/operations/{quote(carrier_request_id, safe='')}", READ_OPERATION
        )
        if response.status < 200:
            self.http.session.close()  # next poll on a fresh connection; the session reopens
            return Operation(carrier_request_id, PROCESSING, (), "", response.call, interim=True)
        body = response.body
        if not isinstance(body, dict) or body.get("status") not in OPERATION_STATUSES:
            raise unexpected_response(
                "Teal",
                f"an operation status ({', '.join(sorted(OPERATION_STATUSES))})",
                response.call,
            )
        try:
            entries = tuple(
                Entry(
                    eid=str(item["eid"]),
                    status=str(item.get("status") or ""),
                    error=None if item.get("error") in (None, "") else str(item["error"]),
                )
                for item in body.get("entries") or ()
            )
        except (TypeError, KeyError, AttributeError) as exc:
            raise unexpected_response(
                "Teal", "operation entries with an eid", response.call
            ) from exc
        return Operation(
            request_id=str(body.get("requestId") or carrier_request_id),
            status=str(body["status"]),
            entries=entries,
            message=str(body.get("message") or ""),
            call=response.call,
        )

    def read_esim(self, *, eid: str) -> dict[str, Any]:
        """The eSIM's ``eid``, ``iccid``, ``status`` (online/waiting/stopped) and ``plan``."""
        return self._json_object(
            self._call("GET", f"{API_ROOT}/esims/{quote(eid, safe='')}", READ_ESIM)
        )


class TealProcessor(StatusUpdateProcessor[TealClient]):
    """Teal status updates: prepare our requestId, submit, confirm. Resubmitting reuses the
    stored requestId (Teal drops the repeat); confirming never resubmits."""

    integration = Integration.TEAL
    display_name = "Teal"
    client_class = TealClient
    steps = (Step.PREPARE, Step.SUBMIT, Step.CONFIRM)
    descriptions: ClassVar[Mapping[Step, str]] = {
        Step.PREPARE: PREPARE_REQUEST,
        Step.SUBMIT: CHANGE_STATE,
        Step.CONFIRM: READ_OPERATION,
    }
    # Only what a bulk change can set: enable → recorded online, disable → recorded stopped.
    statuses: ClassVar[Mapping[str, StatusMapping]] = {
        ENABLED: StatusMapping(ENABLED, "enable", ONLINE),
        DISABLED: StatusMapping(DISABLED, "disable", STOPPED),
    }

    @staticmethod
    def sleep(seconds: float) -> None:
        """Wait between CONFIRM polls (a seam: tests replace it to run the back-off fast)."""
        time.sleep(seconds)

    @staticmethod
    def clock() -> float:
        """The CONFIRM budget's clock (a seam, like :meth:`sleep`)."""
        return time.monotonic()

    @classmethod
    def account_label(cls, credentials: Credentials) -> str:
        return account_label(credentials)

    def check_identifiers(self, context: UpdateContext) -> None:
        if not context.eid.strip():
            raise PermanentError(missing_eid_message(context.iccid))

    def perform(self, step: Step, context: UpdateContext) -> StepResult:
        """PREPARE draws our requestId (no call), SUBMIT sends the change under it, CONFIRM
        polls the operation.

        Raises PermanentError (unknown EID, Teal's per-device entry error, a FAILED operation,
        bad credentials, an unknown target or step) or TransientError (timeouts, 429, 5xx, an
        operation still running when the confirm budget is spent)."""
        target = self._target(context)
        if step is Step.PREPARE:
            request_id = context.progress.carrier_request_id or str(uuid.uuid4())
            return StepResult(step, {"carrier_request_id": request_id})
        request_id = context.progress.carrier_request_id
        if not request_id:
            raise PermanentError(f"Teal {step} needs the prepared requestId; none is recorded")
        action = cast(Action, self.statuses[target].carrier_value)
        if step is Step.SUBMIT:
            status = self.client.change_state(
                action=action,
                eid=self._eid(context),
                carrier_request_id=request_id,
                idempotency_key=context.idempotency_key(step),
            )
            note = f"Teal request {request_id} {status or 'accepted'}"
            return StepResult(step, {"carrier_submitted_at": utc_now()}, note=note)
        if step is Step.CONFIRM:
            entry = self._confirm(action, self._eid(context), request_id)
            return StepResult(
                step, {"carrier_status_at": utc_now()}, note=f"eSIM {entry.eid} {entry.status}"
            )
        raise self._unknown_step(step)

    def read_status(self, context: UpdateContext) -> str | None:
        """``enabled`` for an online or waiting eSIM, ``disabled`` for a stopped one, else
        None (the caller then calls the carrier anyway)."""
        esim = self.client.read_esim(eid=self._eid(context))
        return TARGET_OF_STATE.get(str(esim.get("status") or "").strip().lower())

    def _confirm(self, action: Action, eid: str, request_id: str) -> Entry:
        """Poll until the operation ends or the budget is spent (then TransientError, so the
        retry confirms this same request again)."""
        budget = confirm_budget_seconds()
        deadline = self.clock() + budget
        delay = FIRST_POLL_DELAY
        while True:
            operation = self.client.read_operation(carrier_request_id=request_id)
            if not operation.running:
                break
            remaining = deadline - self.clock()
            if remaining <= 0:
                state = "HTTP 102" if operation.interim else operation.status
                raise TransientError(
                    f"Teal request {request_id} still running ({state}) after {budget:g} s; "
                    "the retry confirms it again",
                    call=operation.call,
                )
            self.sleep(min(delay, remaining))
            delay = min(delay * 2, MAX_POLL_DELAY)
        if operation.status == FAILED:
            detail = operation.message or "no message"
            raise PermanentError(f"Teal request {request_id} FAILED: {detail}", call=operation.call)
        entry = operation.entry_for(eid)
        if entry is None:
            raise PermanentError(
                f"Teal request {request_id} completed without an entry for EID {eid}",
                call=operation.call,
            )
        if entry.error is not None:
            raise PermanentError(
                f"Teal could not {action} EID {eid}: {entry.error}", call=operation.call
            )
        return entry

    def _eid(self, context: UpdateContext) -> str:
        self.check_identifiers(context)
        return context.eid.strip()
