"""Teal (eSIM connectivity API): client and status-update processor.

Wire contract: ``docs/carriers/teal.md``. Teal addresses a device by its EID, so a device without
one fails before any call. **Every operation is asynchronous, reads included**: a call only
queues the operation under *our* ``requestId`` and names the ``callbackUrl`` Teal signals when
the result is ready; the result itself is fetched with ``operation-result``.

1. :data:`Step.PREPARE` draws our ``requestId`` (``uuid4().hex``) — no call; the worker stores
   it on the device change before anything is sent;
2. :data:`Step.SUBMIT` posts ``/esims/enable`` or ``/esims/disable`` under that ``requestId``.
   Teal documents no de-duplication, so a SUBMIT whose answer may have been lost first asks
   ``operation-result`` whether Teal knows the id (then it goes on to CONFIRM) and submits
   again, under the same id, only when Teal does not;
3. :data:`Step.CONFIRM` polls ``operation-result`` within the confirm budget; still running
   (HTTP 102) → :class:`CarrierPending`, and the device waits on the waiting schedule until the
   30-minute confirm deadline, past which a read decides. Teal's callbacks are only a signal
   that makes the device due: they never decide the outcome.

Teal answers a running operation with a bare **HTTP 102 Processing**. A server that sends an
interim 1xx sends its final answer on the same connection afterwards, which ``http.client``
would read as the answer to our *next* request on that connection: operation-result goes over
connections of the client's own, closed after every answer (:meth:`TealClient.operation_result`),
so no other request — of this device or of another worker thread — ever reads that answer.

Teal's error body is ``{"success": false, "errorCode": …, "message": …}``. ``GENERIC_ERROR`` is
transient whatever the HTTP status; the other documented codes are permanent (``UNAUTHORIZED``
names the account, like a 401/403); without a code the HTTP status decides (README).
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, Literal, Unpack, cast

from integrations.base.audit import CallRecord
from integrations.base.errors import (
    AuthenticationError,
    CallbackRejected,
    IntegrationError,
    PermanentError,
    TransientError,
)
from integrations.base.http import (
    CarrierClient,
    CarrierHttp,
    HttpOptions,
    HttpResponse,
    Payload,
    http_session,
    unexpected_response,
)
from integrations.base.origins import Origin, known
from integrations.base.protocol import (
    CallbackAuth,
    CallbackEvent,
    CallbackOutcome,
    Credentials,
    StatusMapping,
    StatusUpdateProcessor,
    Step,
    StepResult,
    UpdateContext,
    utc_now,
)
from integrations.base.registry import Integration

CARRIER = "Teal"
API_ROOT = "api/v1"

Action = Literal["enable", "disable"]

# Targets a bulk change can set (docs/carriers/teal.md) and the eSIM states Teal reports.
ENABLED = "enabled"
DISABLED = "disabled"
ONLINE = "online"
WAITING = "waiting"
STOPPED = "stopped"
# ``deviceStatus`` of a read's entry → target (``suspended: true`` is disabled whatever it says).
TARGET_OF_DEVICE_STATUS: Mapping[str, str] = {
    "ONLINE": ENABLED,
    "WAITING": ENABLED,
    "STOPPED": DISABLED,
}

# Teal's error codes: GENERIC_ERROR is worth a retry, the others never are.
TRANSIENT_CODES = frozenset({"GENERIC_ERROR"})
PERMANENT_CODES = frozenset(
    {"UNAUTHORIZED", "ESIM_NOT_FOUND", "VALIDATION_ERROR", "FLOW_RESTRICTED_ERROR"}
)

CONFIRM_DEADLINE = timedelta(minutes=30)  # twice Teal's published 15-minute maximum

CHANGE_STATE = "Change Teal eSIM state"
READ_OPERATION = "Read Teal operation result"
REQUEST_INFO = "Request Teal eSIM info"
PREPARE_REQUEST = "Prepare Teal request id"  # no call: our requestId, stored before the submit

NO_CALLBACK_URL = (
    "Teal requires a callbackUrl; set CARRIER_CALLBACK_BASE_URL or the account's callback URL"
)


def missing_eid_message(iccid: str) -> str:
    """The contract's wording for a device Teal cannot address."""
    return f"Teal needs the EID for ICCID {iccid}"


def account_label(credentials: Credentials) -> str:
    """How messages name a Teal account: its label, else its ApiKey — never the ApiSecret."""
    return f"Teal account {credentials.account or credentials.username}"


def new_request_id() -> str:
    """A fresh requestId: 32 lowercase hex characters (Teal asks for "a unique UUID,
    preferably 32 alphanumeric characters")."""
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Entry:
    """One EID's part of a done operation: ``success`` with Teal's ``errorMessage``, and for a
    read the eSIM's fields (``deviceStatus``, ``suspended``, …) in ``fields``."""

    eid: str
    success: bool
    error_message: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class OperationResult:
    """What ``operation-result`` answered: ``done`` False for HTTP 102 (still running)."""

    request_id: str
    done: bool
    call: CallRecord
    success: bool = False
    message: str = ""
    entries: tuple[Entry, ...] = ()

    def entry_for(self, eid: str) -> Entry | None:
        return next((entry for entry in self.entries if entry.eid == eid), None)


class RequestUnknown(PermanentError):
    """``operation-result`` answered 4xx: Teal does not know the requestId, so the operation was
    never queued (docs/carriers/teal.md, repeat safety)."""


class TealClient(CarrierClient):
    """Teal's eSIM API: ``ApiKey``/``ApiSecret`` headers on every call, no token.

    Every method makes exactly one HTTP call and raises our error types, with Teal's error codes
    deciding transient or permanent (:meth:`_teal_call`). The ApiSecret and the callback token are
    credentials secrets, so :class:`CarrierHttp` replaces them in every audit text.
    """

    carrier = CARRIER
    # Teal's read is asynchronous: queued under our requestId, then its result read.
    read_calls: ClassVar[frozenset[str]] = frozenset({REQUEST_INFO, READ_OPERATION})

    def __init__(self, *, credentials: Credentials, **options: Unpack[HttpOptions]) -> None:
        super().__init__(credentials=credentials, **options)
        # operation-result goes over connections of its own, closed after every answer: a 102's
        # final answer follows on its connection, and a pooled connection shared with other
        # calls (or with the other worker threads of these credentials, which share the
        # session) could be handed to another request before it is closed.
        self.results_http = CarrierHttp(
            carrier=self.carrier,
            credentials=credentials,
            auth_failure=self.auth_failure(credentials),
            session=http_session(pool_size=1),
            throttle=options.get("throttle"),
            on_call=options.get("on_call"),
            on_call_start=options.get("on_call_start"),
            timeouts=options.get("timeouts"),
            read_only=options.get("read_only"),
            allowed_calls=self.read_calls,
        )

    @classmethod
    def auth_failure(cls, credentials: Credentials) -> str:
        return f"Teal rejected the ApiKey/ApiSecret of {account_label(credentials)}"

    def auth_headers(self) -> dict[str, str]:
        return {"ApiKey": self.credentials.username, "ApiSecret": self.credentials.secret}

    def change_state(
        self, *, action: Action, eid: str, request_id: str, callback_url: str
    ) -> CallRecord:
        """Queue enabling or disabling one eSIM under our ``request_id``; Teal answers
        ``{"success": true, "link": …}`` at once (the link is informational: we build the
        operation-result URL ourselves)."""
        response = self._teal_call(
            "POST",
            f"{API_ROOT}/esims/{action}",
            CHANGE_STATE,
            params={"requestId": request_id, "callbackUrl": callback_url},
            json_body={"entries": [eid]},
        )
        return self._accepted(response)

    def request_info(self, *, eid: str, request_id: str, callback_url: str) -> CallRecord:
        """Queue a read of one eSIM under ``request_id``; its fields come from
        :meth:`operation_result` once done."""
        response = self._teal_call(
            "GET",
            f"{API_ROOT}/esims/info",
            REQUEST_INFO,
            params={
                "eid": eid,
                "limit": 1,
                "requestId": request_id,
                "callbackUrl": callback_url,
            },
        )
        return self._accepted(response)

    def operation_result(self, *, request_id: str) -> OperationResult:
        """The result of the operation queued under ``request_id``.

        Made over :attr:`results_http`, whose pooled connections are closed after every answer:
        after an HTTP 102 (no body; not done) the final answer follows on that connection (see
        the module docstring), so the next call opens a fresh one. 200 → done, with
        ``success``, ``message`` and each EID's entry. A 4xx other than 401/403/429 raises
        :class:`RequestUnknown` (the operation was never queued)."""
        try:
            response = self._teal_call(
                "GET",
                f"{API_ROOT}/operation-result",
                READ_OPERATION,
                http=self.results_http,
                params={"requestId": request_id},
            )
        except PermanentError as error:
            status = error.call.response_status if error.call is not None else None
            if isinstance(error, AuthenticationError) or status is None or status >= 500:
                raise
            raise RequestUnknown(error.message, call=error.call) from error
        finally:
            self.results_http.session.close()  # a 102's final answer must reach no request
        if response.status < 200:
            return OperationResult(request_id, done=False, call=response.call)
        body = self._json_object(response)
        try:
            entries = tuple(_entry(item) for item in body.get("entries") or ())
        except (TypeError, KeyError, AttributeError) as exc:
            raise unexpected_response(CARRIER, "entries with an eid", response.call) from exc
        if not isinstance(body.get("success"), bool):
            raise unexpected_response(CARRIER, "a success flag", response.call)
        return OperationResult(
            request_id,
            done=True,
            call=response.call,
            success=body["success"],
            message=_message(body),
            entries=entries,
        )

    # -- what every Teal call shares ---------------------------------------------------------

    def _accepted(self, response: HttpResponse) -> CallRecord:
        """An operation call's answer: ``success: true`` (queued). ``success: false`` is
        Teal's refusal, permanent with its message (transient for GENERIC_ERROR)."""
        body = self._json_object(response)
        if body.get("success") is True:
            return response.call
        if body.get("success") is False:
            code = str(body.get("errorCode") or "").strip()
            detail = _message(body) or "no message"
            if code and code not in detail:
                detail = f"{detail} ({code})"
            message = f"HTTP {response.status} from Teal: {detail}"
            if code in TRANSIENT_CODES:
                raise TransientError(message, call=response.call)
            raise PermanentError(message, call=response.call)
        raise unexpected_response(CARRIER, "a success flag", response.call)

    def _teal_call(
        self,
        method: str,
        path: str,
        description: str,
        *,
        http: CarrierHttp | None = None,
        **payload: Unpack[Payload],
    ) -> HttpResponse:
        """One call through the shared mechanism (``http``: another :class:`CarrierHttp` of
        this client, with the same headers), with Teal's ``errorCode`` deciding the error type
        where it names one: GENERIC_ERROR transient, UNAUTHORIZED an authentication error, the
        other codes permanent (a 429 stays transient); without a code the HTTP status
        decides."""
        try:
            if http is None:
                return self._call(method, path, description, **payload)
            headers = {**self.auth_headers(), "Accept": "application/json"}
            return http.request(method, path, description=description, headers=headers, **payload)
        except IntegrationError as error:
            raise self._classified(error) from error

    def _classified(self, error: IntegrationError) -> IntegrationError:
        call = error.call
        if call is None or call.response_status is None or call.response_status == 429:
            return error
        code = _error_code(call.response_text)
        if code in TRANSIENT_CODES and not isinstance(error, TransientError):
            return TransientError(error.message, call=call)
        if code == "UNAUTHORIZED" and not isinstance(error, AuthenticationError):
            return AuthenticationError(
                f"{self.auth_failure(self.credentials)} ({error.message})", call=call
            )
        if code in PERMANENT_CODES and isinstance(error, TransientError):
            return PermanentError(error.message, call=call)
        return error


def _error_code(response_text: str) -> str:
    """The ``errorCode`` of an error body ("" when there is none or the body is not JSON)."""
    try:
        body = json.loads(response_text)
    except ValueError:
        return ""
    return str(body.get("errorCode") or "").strip() if isinstance(body, dict) else ""


def _message(body: Mapping[str, Any]) -> str:
    """Teal's text: ``message``, else ``errorMessage``."""
    return str(body.get("message") or body.get("errorMessage") or "").strip()


def _entry(item: Mapping[str, Any]) -> Entry:
    return Entry(
        eid=str(item["eid"]),
        success=item.get("success") is not False,
        error_message=str(item.get("errorMessage") or "").strip(),
        fields=dict(item),
    )


def esim_target(fields: Mapping[str, Any]) -> str | None:
    """A read's entry as a target: ``suspended`` or STOPPED → disabled, ONLINE or WAITING (not
    suspended) → enabled, anything else unknown (None)."""
    if fields.get("suspended") is True:
        return DISABLED
    return TARGET_OF_DEVICE_STATUS.get(str(fields.get("deviceStatus") or "").strip().upper())


class TealProcessor(StatusUpdateProcessor[TealClient]):
    """Teal status updates: prepare our requestId, submit, confirm by ``operation-result``."""

    integration = Integration.TEAL
    display_name = "Teal"
    known_origins: ClassVar[tuple[Origin, ...]] = (known("https://integrationapi.teal.global"),)
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
    default_rate_limit = 1000 / 60  # Teal's published 1,000 calls a minute per account
    callback_auth = CallbackAuth.URL_TOKEN
    callback_methods = frozenset({"GET", "POST"})

    @classmethod
    def account_label(cls, credentials: Credentials) -> str:
        return account_label(credentials)

    @classmethod
    def parse_callback(
        cls, *, credentials: Credentials, method: str, query: Mapping[str, str], body: bytes
    ) -> list[CallbackEvent]:
        """Teal's callback: the URL we sent with ``requestId`` appended. The token in the URL
        is the only check (Teal documents none); the body, if any, is ignored — the callback
        is a signal, and CONFIRM reads the result itself."""
        token = query.get("token", "")
        expected = credentials.callback_token
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            raise CallbackRejected(401, "Teal callback with a wrong or missing token")
        request_id = query.get("requestId", "").strip()
        if not request_id:
            raise CallbackRejected(400, "Teal callback without a requestId")
        return [CallbackEvent(request_id=request_id, outcome=CallbackOutcome.SIGNAL)]

    def check_identifiers(self, context: UpdateContext) -> None:
        if not context.eid.strip():
            raise PermanentError(missing_eid_message(context.iccid))
        if not self.credentials.callback_url:
            raise PermanentError(NO_CALLBACK_URL)

    def confirm_deadline(self, context: UpdateContext) -> timedelta:
        return CONFIRM_DEADLINE

    def perform(self, step: Step, context: UpdateContext) -> StepResult:
        """PREPARE draws our requestId (no call), SUBMIT queues the change under it (after
        asking whether Teal already has it, when an earlier answer may have been lost), CONFIRM
        polls its result.

        Raises PermanentError (unknown EID, Teal's refusal or per-device error, bad
        credentials, an unknown target or step, no callback URL), TransientError (timeouts,
        429, 5xx, GENERIC_ERROR) or, from CONFIRM, CarrierPending (still running)."""
        target = self._target(context)
        if step is Step.PREPARE:
            request_id = context.progress.carrier_request_id or new_request_id()
            return StepResult(step, {"carrier_request_id": request_id})
        request_id = context.progress.carrier_request_id
        if not request_id:
            raise PermanentError(f"Teal {step} needs the prepared requestId; none is recorded")
        action = cast(Action, self.statuses[target].carrier_value)
        eid = self._eid(context)
        if step is Step.SUBMIT:
            return self._submit(context, action=action, eid=eid, request_id=request_id)
        if step is Step.CONFIRM:
            if self.deadline_passed(context):
                return self.reconcile(context)
            return self._confirm(context, action=action, eid=eid, request_id=request_id)
        raise self._unknown_step(step)

    def read_status(self, context: UpdateContext) -> str | None:
        """The eSIM's status as a target, by Teal's asynchronous read: ``esims/info`` under a new
        requestId, then its result, polled within the confirm budget. None when the entry maps
        to no target or the read is still running when the budget is spent (the skip check
        then changes the eSIM anyway; reconciling then fails the device)."""
        eid = self._eid(context)
        request_id = new_request_id()
        self.client.request_info(
            eid=eid, request_id=request_id, callback_url=self.credentials.callback_url
        )
        result = self.poll(lambda: self._done(request_id))
        if result is None:
            return None
        if not result.success:
            raise PermanentError(
                f"Teal could not read EID {eid}: {result.message or 'no message'}",
                call=result.call,
            )
        if not result.entries:
            raise PermanentError(
                f"Teal read request {request_id} completed without an entry for EID {eid}",
                call=result.call,
            )
        return esim_target(result.entries[0].fields)

    def reconcile(self, context: UpdateContext, *, detail: str = "") -> StepResult:
        """Past the confirm deadline the read decides: the eSIM in the target state → done;
        otherwise ERROR "Teal did not complete request <id> within 30 minutes"."""
        target = self._target(context)
        current = self.read_status(context)
        if current == target:
            return StepResult(
                Step.CONFIRM, {"carrier_status_at": utc_now()}, note="reconciled by read"
            )
        shown = f"eSIM {self._eid(context)} is {current}" if current else "status unknown"
        raise PermanentError(
            f"Teal did not complete request {context.progress.carrier_request_id} within "
            f"30 minutes ({shown}); check the carrier before retrying"
        )

    # -- steps ---------------------------------------------------------------------------------

    def _submit(
        self, context: UpdateContext, *, action: Action, eid: str, request_id: str
    ) -> StepResult:
        if context.progress.write_may_have_reached_carrier:
            try:
                known = self.client.operation_result(request_id=request_id)
            except RequestUnknown:
                pass  # never queued: submit again, under the same requestId
            else:
                state = "done" if known.done else "still running"
                note = f"Teal already has request {request_id} ({state}); not submitted again"
                return StepResult(Step.SUBMIT, {"carrier_submitted_at": utc_now()}, note=note)
        self.client.change_state(
            action=action,
            eid=eid,
            request_id=request_id,
            callback_url=self.credentials.callback_url,
        )
        note = f"Teal request {request_id} queued"
        return StepResult(Step.SUBMIT, {"carrier_submitted_at": utc_now()}, note=note)

    def _confirm(
        self, context: UpdateContext, *, action: Action, eid: str, request_id: str
    ) -> StepResult:
        """Poll within the budget; the entry for our EID decides. Callbacks are not read: a
        callback only made this device due, the result is Teal's answer here."""
        last: list[OperationResult] = []
        try:
            result = self.poll(lambda: self._done(request_id, seen=last))
        except RequestUnknown as error:
            raise PermanentError(
                f"Teal does not know request {request_id}: it was never queued ({error.message})",
                call=error.call,
            ) from error
        if result is None:
            call = last[-1].call if last else None
            raise self.pending(context, "still running (HTTP 102)", call=call)
        entry = result.entry_for(eid)
        if entry is not None and not entry.success:
            reason = entry.error_message or result.message or "no message"
            raise PermanentError(f"Teal could not {action} EID {eid}: {reason}", call=result.call)
        if not result.success:
            reason = result.message or "no message"
            raise PermanentError(f"Teal request {request_id} failed: {reason}", call=result.call)
        if entry is None:
            raise PermanentError(
                f"Teal request {request_id} completed without an entry for EID {eid}",
                call=result.call,
            )
        state = self.statuses[self._target(context)].post_update_status
        return StepResult(
            Step.CONFIRM, {"carrier_status_at": utc_now()}, note=f"eSIM {eid} {state}"
        )

    def _done(
        self, request_id: str, *, seen: list[OperationResult] | None = None
    ) -> OperationResult | None:
        """One operation-result call: the result when done, None while it runs."""
        result = self.client.operation_result(request_id=request_id)
        if seen is not None:
            seen.append(result)
        return result if result.done else None

    def _eid(self, context: UpdateContext) -> str:
        self.check_identifiers(context)
        return context.eid.strip()
