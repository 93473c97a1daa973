"""The carrier processor protocol, its errors, the registry, and the one HTTP mechanism.

A status update is a sequence of *steps* (POND: SIM status, then package status; async carriers:
submit, then confirm; then, for every carrier, the Rev.io service and its products). The
``bulkchanges`` layer runs the steps in order, skipping those already recorded in the device
change's :class:`Progress`, and records each step's result before it starts the next one —
so a retry or a crash-recovery resumes after the last completed step. A processor only
performs one step when asked; it knows nothing of Django models, claims or retries.

Failures are types, not strings: :class:`PermanentError` (the device ends ERROR),
:class:`TransientError` (the device is retried later, honouring ``retry_after``) and
:class:`AuthenticationError` (permanent, naming the account, never the secret). Each carries
the :class:`CallRecord` of the failing call, and every call made — failed or not — is handed to
the ``on_call`` recorder so the audit log gets one row per external HTTP call.

Adding a carrier is one module (client + processor, decorated with nothing) plus one line in
:data:`PROCESSOR_MODULES`.
"""

from __future__ import annotations

import email.utils
import html
import importlib
import json
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol
from urllib.parse import urlsplit

import requests
from django.db import models
from requests.adapters import HTTPAdapter

MAX_AUDIT_BODY = 10 * 1024
REDACTED = "[REDACTED]"


class Integration(models.TextChoices):
    """The integrations a credentials row can belong to (legacy IntegrationId)."""

    POND = "POND", "POND"
    THINGSPACE = "THINGSPACE", "Verizon ThingSpace"
    JASPER = "JASPER", "Cisco Jasper"
    TELEGENCE = "TELEGENCE", "AT&T Telegence"
    TEAL = "TEAL", "Teal"
    REV = "REV", "Rev.io"


# --- Credentials and audit records -----------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """Plain copy of an IntegrationAuthentication row. Secrets never appear in ``repr``."""

    integration_authentication_id: int
    integration: str
    base_url: str
    account: str = ""
    username: str = ""
    client_id: str = ""
    secret: str = field(default="", repr=False)
    secret_2: str = field(default="", repr=False)
    rate_limit: float = 10.0
    max_concurrency: int = 4

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every value the redaction function must remove from audit text."""
        return tuple(value for value in (self.secret, self.secret_2) if value)


@dataclass(frozen=True)
class CallRecord:
    """One external HTTP call as the audit log stores it: redacted, bodies truncated."""

    description: str
    method: str
    url: str
    request_text: str
    response_status: int | None
    response_text: str
    elapsed_ms: int


# --- Errors ----------------------------------------------------------------------------------


class IntegrationError(Exception):
    """A carrier step failed. ``message`` is what an operator reads; never holds a secret."""

    def __init__(self, message: str, *, call: CallRecord | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.call = call


class PermanentError(IntegrationError):
    """Retrying will not help: unknown ICCID, refused transition, bad request, bad credentials."""


class AuthenticationError(PermanentError):
    """The carrier rejected our credentials. The message names the account, not the secret."""


class TransientError(IntegrationError):
    """Worth retrying later: connection error, timeout, 408, 429, 5xx."""

    def __init__(
        self, message: str, *, call: CallRecord | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, call=call)
        self.retry_after = retry_after


TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def is_transient_status(status: int) -> bool:
    """The one classifier of HTTP statuses (carriers/README.md): everything else 4xx/5xx is
    permanent."""
    return status in TRANSIENT_STATUSES


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


# --- Redaction -------------------------------------------------------------------------------

SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "vz-m2m-token",
        "cookie",
        "set-cookie",
        "app-secret",  # Telegence
        "apisecret",  # Teal
    }
)
_SENSITIVE_JSON_KEY = re.compile(
    r'("(?:[A-Za-z_]*(?:password|secret|token|api_?key)[A-Za-z_]*)"\s*:\s*)"(?:[^"\\]|\\.)*"',
    re.IGNORECASE,
)
_SENSITIVE_FORM_KEY = re.compile(
    r"\b((?:[A-Za-z_]*(?:password|secret|token|api_?key)[A-Za-z_]*)=)[^&\s]+", re.IGNORECASE
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """The one redaction function: removes every known secret value and masks password-, secret-,
    token- and key-named fields in JSON and form bodies. Safe to apply twice."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, REDACTED)
    text = _SENSITIVE_JSON_KEY.sub(rf'\1"{REDACTED}"', text)
    return _SENSITIVE_FORM_KEY.sub(rf"\1{REDACTED}", text)


def _truncate(text: str) -> str:
    if len(text) <= MAX_AUDIT_BODY:
        return text
    return text[:MAX_AUDIT_BODY] + f"… [truncated, {len(text)} characters]"


# --- HTTP ------------------------------------------------------------------------------------


def http_session(*, pool_size: int = 16) -> requests.Session:
    """The one HTTP session factory: pooled keep-alive connections, no hidden urllib3 retries
    (retries are ours, through SQS)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def confirm_budget_seconds() -> float:
    """How long an async carrier's CONFIRM step polls before giving the attempt up as
    transient (BULKCHANGE_CONFIRM_SECONDS); the retry confirms the stored request again."""
    from django.conf import settings

    return float(getattr(settings, "BULKCHANGE_CONFIRM_SECONDS", 30))


def default_timeouts() -> tuple[float, float]:
    """(connect, read) seconds from settings (BULKCHANGE_HTTP_*_TIMEOUT)."""
    from django.conf import settings

    return (
        float(getattr(settings, "BULKCHANGE_HTTP_CONNECT_TIMEOUT", 5)),
        float(getattr(settings, "BULKCHANGE_HTTP_READ_TIMEOUT", 30)),
    )


class Throttle(Protocol):
    """The limits of one set of credentials, shared by every worker on every host: a request
    rate and a number of concurrent calls (the contracts' "a small number of concurrent
    calls"). A slot is held for one HTTP request only — never across a step's other work or
    an asynchronous carrier's wait between confirm polls."""

    def call(self) -> AbstractContextManager[None]:
        """Block until one request may be sent — a free concurrency slot, then the next rate
        slot — and hold the concurrency slot until the block (the request) ends."""

    def penalise(self, seconds: float) -> None:
        """The carrier answered 429: slow every sender of these credentials down."""


class NoThrottle:
    @contextmanager
    def call(self) -> Iterator[None]:
        yield

    def penalise(self, seconds: float) -> None:
        return None


class TokenStore(Protocol):
    """Shared state for token carriers (ThingSpace): every worker on every host sees the same
    tokens, so N workers authenticate once. ``lock`` serialises the authentication itself."""

    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any, *, ttl: float) -> None: ...

    def delete(self, key: str) -> None: ...

    def lock(self, key: str, *, timeout: float = 30) -> AbstractContextManager[None]: ...


class MemoryTokenStore:
    """A per-process TokenStore for tests and tools (workers use the shared cache)."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[float, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, key: str) -> Any:
        with self._guard:
            expires, value = self._values.get(key, (0.0, None))
            return value if expires > time.monotonic() else None

    def set(self, key: str, value: Any, *, ttl: float) -> None:
        with self._guard:
            self._values[key] = (time.monotonic() + ttl, value)

    def delete(self, key: str) -> None:
        with self._guard:
            self._values.pop(key, None)

    @contextmanager
    def lock(self, key: str, *, timeout: float = 30) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(timeout=timeout):
            raise TransientError(f"timed out waiting for the {key} lock")
        try:
            yield
        finally:
            lock.release()


CallRecorder = Callable[[CallRecord], None]


def _ignore_call(call: CallRecord) -> None:
    return None


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: Any  # parsed JSON, or None for an empty body
    headers: Mapping[str, str]
    call: CallRecord


def _error_list(errors: Any) -> str:
    """``[{"code": "SUB_404", "description": "Subscriber not found"}]`` (Telegence and others)
    as "Subscriber not found (SUB_404)"; several joined with "; "."""
    if not isinstance(errors, list):
        return ""
    parts = []
    for entry in errors:
        if not isinstance(entry, dict):
            continue
        code = str(entry.get("code") or "").strip()
        text = str(entry.get("description") or entry.get("message") or "").strip()
        parts.append(f"{text} ({code})" if text and code else text or code)
    return "; ".join(part for part in parts if part)[:300]


def readable_error(carrier: str, response: requests.Response) -> str:
    """A message an operator can read for an error response: the carrier's own message from a
    JSON body (with its error code, which operators quote to the carrier's support), the
    ``<title>`` of an HTML page, or the bare status for an empty body."""
    prefix = f"HTTP {response.status_code} from {carrier}"
    text = response.text or ""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        listed = _error_list(payload.get("errors"))
        if listed:
            return f"{prefix}: {listed}"
        code = str(payload.get("errorCode") or "").strip()  # Jasper, Teal, ThingSpace
        for key in ("message", "errorMessage", "error_description", "detail", "error", "errors"):
            value = payload.get(key)
            if value:
                detail = value if isinstance(value, str) else json.dumps(value)[:300]
                if code and code not in detail:
                    detail = f"{detail} ({code})"
                return f"{prefix}: {detail}"
        if code:
            return f"{prefix}: {code}"
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title:
        return f"{prefix}: {html.unescape(title.group(1)).strip()[:200]}"
    if text.strip():
        stripped = re.sub(r"<[^>]+>", " ", text)
        return f"{prefix}: {' '.join(stripped.split())[:200]}"
    return f"{prefix} (empty body)"


def unexpected_response(carrier: str, expected: str, call: CallRecord) -> PermanentError:
    """A 2xx answer whose body is not what the contract promises (permanent: retrying the
    same call will not change its shape)."""
    return PermanentError(
        f"HTTP {call.response_status} from {carrier}: expected {expected}, got something else",
        call=call,
    )


def utc_now() -> datetime:
    """The time recorded in step results (timezone-aware UTC)."""
    return datetime.now(UTC)


class CarrierHttp:
    """Makes one carrier's HTTP calls: throttle, timeouts, an audit record per call, and the
    translation of every failure into our error types (``raise … from``), so callers catch by
    meaning, never by HTTP-library type."""

    def __init__(
        self,
        *,
        carrier: str,
        credentials: Credentials,
        auth_failure: str,
        session: requests.Session | None = None,
        throttle: Throttle | None = None,
        on_call: CallRecorder | None = None,
        timeouts: tuple[float, float] | None = None,
    ) -> None:
        self.carrier = carrier
        self.credentials = credentials
        self.auth_failure = auth_failure
        self.session = session or http_session()
        self.throttle: Throttle = throttle or NoThrottle()
        self.on_call: CallRecorder = on_call or _ignore_call
        self.timeouts = timeouts or default_timeouts()

    def url(self, path: str) -> str:
        return self.credentials.base_url.rstrip("/") + "/" + path.lstrip("/")

    def request(
        self,
        method: str,
        path: str,
        *,
        description: str,
        json_body: Any = None,
        data: str | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        auth_is_permanent: bool = True,
    ) -> HttpResponse:
        """Send one request and return its parsed 2xx response, or raise our error type.

        401/403 raise :class:`AuthenticationError` when ``auth_is_permanent`` (key carriers);
        token carriers pass False and handle the refresh themselves (they get a
        :class:`AuthenticationError` too, and decide whether to re-authenticate).
        """
        url = self.url(path)
        body_text = json.dumps(json_body) if json_body is not None else (data or "")
        all_headers = dict(headers or {})
        if json_body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        request_text = self._request_text(method, url, params, all_headers, body_text)
        with self.throttle.call():
            started = time.monotonic()
            try:
                response = self.session.request(
                    method,
                    url,
                    data=body_text.encode() if body_text else None,
                    params=params,
                    headers=all_headers,
                    auth=auth,
                    timeout=self.timeouts,
                )
            except requests.RequestException as exc:
                kind = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
                call = self._record(description, method, url, request_text, None, str(exc), started)
                raise TransientError(
                    f"{self.carrier} {kind}: {type(exc).__name__}", call=call
                ) from exc
        call = self._record(
            description, method, url, request_text, response.status_code, response.text, started
        )
        if response.status_code >= 400:
            self._raise_for(response, call, auth_is_permanent=auth_is_permanent)
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError as exc:
                raise PermanentError(
                    f"HTTP {response.status_code} from {self.carrier}: expected JSON, got "
                    f"{response.headers.get('Content-Type', 'no content type')}",
                    call=call,
                ) from exc
        return HttpResponse(response.status_code, body, response.headers, call)

    def _raise_for(
        self, response: requests.Response, call: CallRecord, *, auth_is_permanent: bool
    ) -> None:
        message = redact(readable_error(self.carrier, response), self.credentials.secrets)
        status = response.status_code
        if status in (401, 403):
            raise AuthenticationError(f"{self.auth_failure} ({message})", call=call)
        if is_transient_status(status):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if status == 429:
                self.throttle.penalise(retry_after or 1.0)
            raise TransientError(message, call=call, retry_after=retry_after)
        raise PermanentError(message, call=call)

    def _request_text(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str],
        body: str,
    ) -> str:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        if params:
            target += ("&" if "?" in target else "?") + "&".join(
                f"{k}={v}" for k, v in params.items()
            )
        lines = [f"{method} {target}"]
        for name, value in headers.items():
            shown = REDACTED if name.lower() in SENSITIVE_HEADERS else value
            lines.append(f"{name}: {shown}")
        text = "\n".join(lines) + ("\n\n" + body if body else "")
        return _truncate(redact(text, self.credentials.secrets))

    def _record(
        self,
        description: str,
        method: str,
        url: str,
        request_text: str,
        status: int | None,
        response_text: str,
        started: float,
    ) -> CallRecord:
        call = CallRecord(
            description=description,
            method=method,
            url=redact(url, self.credentials.secrets),
            request_text=request_text,
            response_status=status,
            response_text=_truncate(redact(response_text or "", self.credentials.secrets)),
            elapsed_ms=int((time.monotonic() - started) * 1000),
        )
        self.on_call(call)
        return call


class CarrierClient(ABC):
    """Base of a carrier's HTTP client: one :class:`CarrierHttp` named for the carrier, whose
    401/403 message (:meth:`auth_failure`) names the account, never the secret."""

    carrier: ClassVar[str]

    def __init__(
        self,
        *,
        credentials: Credentials,
        session: requests.Session | None = None,
        throttle: Throttle | None = None,
        on_call: CallRecorder | None = None,
        timeouts: tuple[float, float] | None = None,
    ) -> None:
        self.credentials = credentials
        self.http = CarrierHttp(
            carrier=self.carrier,
            credentials=credentials,
            auth_failure=self.auth_failure(credentials),
            session=session,
            throttle=throttle,
            on_call=on_call,
            timeouts=timeouts,
        )

    @classmethod
    @abstractmethod
    def auth_failure(cls, credentials: Credentials) -> str:
        """The message when the carrier rejects these credentials."""


# --- Steps and progress ----------------------------------------------------------------------


class Step(StrEnum):
    """Resumable units of a status update. Which apply depends on the carrier."""

    PREPARE = "prepare"  # async carriers that name requests themselves (Teal): id stored first
    CARRIER_STATUS = "carrier_status"  # the carrier's (SIM/device) status — sync carriers
    SERVICE_STATUS = "service_status"  # POND: the SIM's packages
    SUBMIT = "submit"  # async carriers: the request is accepted, its id stored
    CONFIRM = "confirm"  # async carriers: the request has completed
    REV_SERVICE = "rev_service"
    REV_PRODUCTS = "rev_products"


@dataclass(frozen=True)
class Progress:
    """What a device change has completed; mirrored field by field on DeviceChange."""

    carrier_status_at: datetime | None = None
    service_status_at: datetime | None = None
    carrier_request_id: str = ""
    carrier_submitted_at: datetime | None = None
    rev_service_id: int | None = None
    rev_product_ids: Mapping[str, int] = field(default_factory=dict)

    def is_done(self, step: Step) -> bool:
        return {
            Step.PREPARE: bool(self.carrier_request_id),
            Step.CARRIER_STATUS: self.carrier_status_at is not None,
            Step.SERVICE_STATUS: self.service_status_at is not None,
            Step.SUBMIT: self.carrier_submitted_at is not None,
            Step.CONFIRM: self.carrier_status_at is not None,
            Step.REV_SERVICE: self.rev_service_id is not None,
            Step.REV_PRODUCTS: False,  # per product; the Rev module checks each one
        }[step]


PROGRESS_FIELDS = frozenset(Progress.__dataclass_fields__)


@dataclass(frozen=True)
class StepResult:
    """A completed step: ``updates`` are Progress field values to record before the next step."""

    step: Step
    updates: Mapping[str, Any]
    note: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.updates) - PROGRESS_FIELDS
        if unknown:
            raise ValueError(f"unknown progress fields: {sorted(unknown)}")


@dataclass(frozen=True)
class UpdateContext:
    """Everything a processor needs for one device — plain data, no models."""

    device_change_id: int
    bulk_change_id: int
    iccid: str
    target_status: str  # canonical name from the processor's status table
    progress: Progress = field(default_factory=Progress)
    msisdn: str = ""
    eid: str = ""
    account_number: str = ""
    request_id: str = ""
    options: Mapping[str, str] = field(default_factory=dict)  # e.g. service_plan, reason_code
    today: date | None = None

    def idempotency_key(self, step: Step | str) -> str:
        """Stable per device change and step, so a carrier that honours it drops a repeat."""
        return f"pondops-{self.device_change_id}-{step}"


@dataclass(frozen=True)
class StatusMapping:
    """One row of a carrier's status table: our target → the carrier's value(s) → inventory."""

    target: str  # canonical name, as carriers/README.md lists it
    carrier_value: str  # what the carrier API is sent (or its action)
    post_update_status: str  # DeviceStatus code recorded after success


class StatusUpdateProcessor(ABC):
    """One carrier's status-update steps. Subclasses set the class attributes and implement
    :meth:`perform` (and :meth:`read_status` where the carrier has a read call)."""

    integration: ClassVar[Integration]
    display_name: ClassVar[str]
    statuses: ClassVar[Mapping[str, StatusMapping]]
    steps: ClassVar[tuple[Step, ...]]
    descriptions: ClassVar[Mapping[Step, str]]  # fixed log_entry_description per step
    # Carriers that cap provisioning actions per line per day (ThingSpace): PondOps counts
    # each device's actions from its own history and refuses, at creation, what would exceed
    # the credentials' daily_action_budget.
    limits_daily_actions: ClassVar[bool] = False

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
        self.session = session
        self.throttle = throttle
        self.on_call = on_call
        self.timeouts = timeouts
        self.token_store: TokenStore = token_store or MemoryTokenStore()

    @classmethod
    def canonical_status(cls, value: str) -> str:
        """The canonical target name for ``value`` (case-insensitive); ValueError listing the
        allowed values when the carrier cannot set it."""
        wanted = value.strip().lower()
        for name in cls.statuses:
            if name.lower() == wanted:
                return name
        allowed = ", ".join(cls.statuses)
        raise ValueError(f"{cls.display_name} cannot set status {value!r}; allowed: {allowed}")

    @classmethod
    def validate_options(cls, *, target_status: str, options: Mapping[str, str]) -> list[str]:
        """Problems with a request's carrier options, found at creation (not at processing)."""
        return []

    @classmethod
    def account_label(cls, credentials: Credentials) -> str:
        """How messages name the account ("POND distributor 1234"), never with a secret."""
        return f"{cls.display_name} account {credentials.account or credentials.username}"

    @classmethod
    def credentials_changed(cls, *, credentials: Credentials, token_store: TokenStore) -> None:
        """An operator changed these credentials: forget whatever state the carrier keeps for
        the old ones (ThingSpace: cached tokens and the login-failure lockout)."""
        return None

    def check_identifiers(self, context: UpdateContext) -> None:
        """Raise PermanentError before any call when the device lacks what the carrier needs
        (Telegence: an MSISDN; Teal: an EID)."""
        return None

    def read_status(self, context: UpdateContext) -> str | None:
        """The device's current status as a canonical target name, or None when the carrier has
        no read call or the status matches no target."""
        return None

    @abstractmethod
    def perform(self, step: Step, context: UpdateContext) -> StepResult:
        """Perform one carrier step; raise PermanentError/TransientError on failure."""


# --- Registry --------------------------------------------------------------------------------

PROCESSOR_MODULES: dict[str, str] = {
    Integration.POND: "integrations.pond.PondProcessor",
    Integration.THINGSPACE: "integrations.thingspace.ThingSpaceProcessor",
    Integration.JASPER: "integrations.jasper.JasperProcessor",
    Integration.TELEGENCE: "integrations.telegence.TelegenceProcessor",
    Integration.TEAL: "integrations.teal.TealProcessor",
}


def processor_class(integration: str) -> type[StatusUpdateProcessor]:
    """The processor for an integration; LookupError for one we cannot process."""
    try:
        dotted = PROCESSOR_MODULES[integration]
    except KeyError:
        raise LookupError(f"no status-update processor for integration {integration!r}") from None
    module_name, class_name = dotted.rsplit(".", 1)
    cls: type[StatusUpdateProcessor] = getattr(importlib.import_module(module_name), class_name)
    return cls


def carrier_integrations() -> list[str]:
    """Integrations that can process status updates (REV is billing, not a carrier)."""
    return list(PROCESSOR_MODULES)
