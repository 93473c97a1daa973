"""The one HTTP mechanism every carrier client uses.

:class:`CarrierHttp` makes a carrier's calls: the throttle around each request, the timeouts, an
audit :class:`~integrations.base.audit.CallRecord` per call (failed ones too), and the
translation of every failure into our error types — the readable message of an error answer
(:func:`readable_error`), transient or permanent by status, ``Retry-After`` honoured and a 429
slowing every sender of the credentials down. It is also where every call is counted for the
Prometheus metrics (``pondops.metrics``: by integration, operation and status; latency).

:class:`CarrierClient` is the base of each carrier's client: one :class:`CarrierHttp` named for
the carrier, and one ``_call`` that sends the carrier's authentication, ``Accept:
application/json`` and the ``Idempotency-Key`` the same way for every carrier
(``docs/carriers/README.md``).
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, TypedDict, Unpack

import requests

from integrations.base.audit import (
    CallRecord,
    CallRecorder,
    CallStart,
    CallStartRecorder,
    audit_text,
    ignore_call,
    ignore_call_start,
    redact,
    request_text,
)
from integrations.base.egress import EgressPolicy, EgressRefused, EgressSession, redirect_target
from integrations.base.errors import (
    AuthenticationError,
    PermanentError,
    TransientError,
    WriteRefused,
    is_transient_status,
    parse_retry_after,
)
from integrations.base.protocol import Credentials, NoThrottle, Throttle
from pondops.metrics import carrier_call_observe

logger = logging.getLogger(__name__)


def http_session(*, pool_size: int = 16, egress: EgressPolicy | None = None) -> requests.Session:
    """The one HTTP session factory: pooled keep-alive connections, no hidden urllib3 retries
    (retries are ours, through SQS), no redirects followed, and the egress guard — every
    connection goes to the checked public address its host resolved to, unless ``egress``
    (default: :func:`default_egress_policy`, the carriers') lists the origin as an extra."""
    return EgressSession(policy=egress or default_egress_policy(), pool_size=pool_size)


def default_egress_policy() -> EgressPolicy:
    """The carriers' policy: the origins of PONDOPS_CARRIER_EXTRA_ORIGINS are exempt from the
    address check (the loopback simulators of the demo and the tests); none in production."""
    from django.conf import settings

    return EgressPolicy.from_origins(getattr(settings, "PONDOPS_CARRIER_EXTRA_ORIGINS", ()))


def default_timeouts() -> tuple[float, float]:
    """(connect, read) seconds from settings (BULKCHANGE_HTTP_*_TIMEOUT)."""
    from django.conf import settings

    return (
        float(getattr(settings, "BULKCHANGE_HTTP_CONNECT_TIMEOUT", 5)),
        float(getattr(settings, "BULKCHANGE_HTTP_READ_TIMEOUT", 30)),
    )


class HttpOptions(TypedDict, total=False):
    """How a client's calls are made, each optional — the one list of them that clients and
    processors take: the session (default: a new :func:`http_session`), the credentials'
    throttle (default: none), the audit recorders — of a call about to be sent and of its
    answer (default: records dropped) — and the (connect, read) timeouts (default:
    :func:`default_timeouts`). ``read_only`` makes the client refuse every call that is not
    one of its carrier's reads (:attr:`CarrierClient.read_calls`): a preview's client."""

    session: requests.Session | None
    throttle: Throttle | None
    on_call: CallRecorder | None
    on_call_start: CallStartRecorder | None
    timeouts: tuple[float, float] | None
    read_only: bool | None


class Payload(TypedDict, total=False):
    """What a request sends besides its headers: a JSON body, a form body, query parameters."""

    json_body: Any
    data: str | None
    params: Mapping[str, Any] | None


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
    JSON body (with its error code or reference id, which operators quote to the carrier's
    support), the ``<title>`` of an HTML page, or the bare status for an empty body."""
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
        # Telna (POND): camelCase live, snake_case in its Swagger model.
        reference = str(payload.get("referenceId") or payload.get("reference_id") or "").strip()
        keys = ("message", "errorMessage", "error_description", "detail", "error", "errors")
        for key in (*keys, "developerMessage", "developer_message"):
            value = payload.get(key)
            if value:
                detail = value if isinstance(value, str) else json.dumps(value)[:300]
                if code and code not in detail:
                    detail = f"{detail} ({code})"
                if reference:
                    detail = f"{detail} (reference {reference[:100]})"
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
        on_call_start: CallStartRecorder | None = None,
        timeouts: tuple[float, float] | None = None,
        describe_error: Callable[[requests.Response], str] | None = None,
        read_only: bool | None = None,
        allowed_calls: frozenset[str] = frozenset(),
    ) -> None:
        self.carrier = carrier
        # A read-only mechanism (a preview's) sends only the calls of ``allowed_calls`` (its
        # carrier's reads); None: every call.
        self.allowed_calls: frozenset[str] | None = allowed_calls if read_only else None
        # The readable message of an error answer: the shared reading unless the carrier's
        # error body needs its own (Telegence's ``errorDescription``/``description`` + ``id``).
        self.describe_error = describe_error or partial(readable_error, carrier)
        self.credentials = credentials
        self.auth_failure = auth_failure
        self.session = session or http_session()
        self.throttle: Throttle = throttle or NoThrottle()
        self.on_call: CallRecorder = on_call or ignore_call
        self.on_call_start: CallStartRecorder = on_call_start or ignore_call_start
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
        auth_failure: str | None = None,
    ) -> HttpResponse:
        """Send one request and return its parsed answer (2xx, or an interim 1xx with no body),
        or raise our error type.

        401/403 raise :class:`AuthenticationError` with ``auth_failure`` (default: this
        carrier's, naming the account); a token carrier catches it and decides whether to log
        in again.

        The call is announced (``on_call_start``) before the throttle is waited for, so its
        audit row exists before anything is sent; should the announcement fail, nothing is
        sent. Whatever happens after, the call is recorded (``on_call``) exactly once.

        ``description`` names the kind of call ("Update POND SIM status"): a fixed text, never
        an ICCID or an account, since it is the ``operation`` label of the call metrics.

        A read-only mechanism (``allowed_calls``) raises :class:`WriteRefused` for any other
        call, before it is announced or sent.
        """
        if self.allowed_calls is not None and description not in self.allowed_calls:
            raise WriteRefused(
                f"{self.carrier}: {description!r} refused: this client only reads (a preview "
                "never writes to a carrier)"
            )
        url = self.url(path)
        body_text = json.dumps(json_body) if json_body is not None else (data or "")
        all_headers = dict(headers or {})
        if json_body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        sent_text = request_text(
            method,
            url,
            params=params,
            headers=all_headers,
            body=body_text,
            secrets=self.credentials.secrets,
        )
        call_id = uuid.uuid4().hex
        record = partial(self._record, call_id, description, method, url, sent_text)
        self.on_call_start(
            CallStart(
                call_id=call_id,
                description=description,
                method=method,
                url=redact(url, self.credentials.secrets),
                request_text=sent_text,
            )
        )
        started = time.monotonic()
        try:
            with self.throttle.call():
                started = time.monotonic()
                response = self.session.request(
                    method,
                    url,
                    data=body_text.encode() if body_text else None,
                    params=params,
                    headers=all_headers,
                    auth=auth,
                    timeout=self.timeouts,
                    allow_redirects=False,
                )
        except EgressRefused as exc:
            call = record(None, str(exc), started)
            logger.warning("%s call refused: %s", self.carrier, exc, extra={"url": call.url})
            raise PermanentError(f"{self.carrier} not called: {exc}", call=call) from exc
        except requests.RequestException as exc:
            kind = "timed out" if isinstance(exc, requests.Timeout) else "connection failed"
            call = record(None, str(exc), started)
            raise TransientError(f"{self.carrier} {kind}: {type(exc).__name__}", call=call) from exc
        except BaseException as exc:  # the throttle failed, or the worker is stopping
            record(None, f"not sent or no answer recorded: {type(exc).__name__}: {exc}", started)
            raise
        call = record(response.status_code, response.text, started)
        if 300 <= response.status_code < 400:
            raise PermanentError(
                f"HTTP {response.status_code} from {self.carrier}: a redirect to "
                f"{redirect_target(response.headers)}, not followed",
                call=call,
            )
        if response.status_code >= 400:
            self._raise_for(response, call, auth_failure=auth_failure or self.auth_failure)
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
        self, response: requests.Response, call: CallRecord, *, auth_failure: str
    ) -> None:
        message = redact(self.describe_error(response), self.credentials.secrets)
        status = response.status_code
        if status in (401, 403):
            raise AuthenticationError(f"{auth_failure} ({message})", call=call)
        if is_transient_status(status):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if status == 429:
                self.throttle.penalise(retry_after or 1.0)
            raise TransientError(message, call=call, retry_after=retry_after)
        raise PermanentError(message, call=call)

    def _record(
        self,
        call_id: str,
        description: str,
        method: str,
        url: str,
        sent_text: str,
        status: int | None,
        response_text: str,
        started: float,
    ) -> CallRecord:
        secrets = self.credentials.secrets
        elapsed = time.monotonic() - started
        # Every call passes here exactly once, answered or not: the one place it is counted.
        carrier_call_observe(
            carrier=self.credentials.integration,
            operation=description,
            status=status,
            seconds=elapsed,
        )
        call = CallRecord(
            description=description,
            method=method,
            url=redact(url, secrets),
            request_text=sent_text,
            response_status=status,
            response_text=audit_text(response_text or "", secrets),
            elapsed_ms=int(elapsed * 1000),
            call_id=call_id,
        )
        self.on_call(call)
        return call


class CarrierClient(ABC):
    """Base of a carrier's HTTP client: one :class:`CarrierHttp` named for the carrier, whose
    401/403 message (:meth:`auth_failure`) names the account, never the secret, and one
    :meth:`_call` through which every call of the client goes.

    A carrier says how it authenticates by overriding :meth:`auth_headers` (a key in headers)
    or :meth:`basic_auth` (HTTP Basic), and what a 2xx answer must look like by overriding
    :meth:`_check_answer`.
    """

    carrier: ClassVar[str]
    # The descriptions of the calls that only read (a device's status, a request's result, the
    # login a read needs): all that a read-only client (``read_only=True``) may send.
    read_calls: ClassVar[frozenset[str]] = frozenset()
    # The HTTP mechanism; a carrier whose errors need more than the shared classification
    # (Rev.io's quota 403) names a subclass.
    http_class: ClassVar[type[CarrierHttp]] = CarrierHttp

    def __init__(self, *, credentials: Credentials, **options: Unpack[HttpOptions]) -> None:
        self.credentials = credentials
        self.http = self.http_class(
            carrier=self.carrier,
            credentials=credentials,
            auth_failure=self.auth_failure(credentials),
            describe_error=self.describe_error,
            allowed_calls=self.read_calls,
            **options,
        )

    @classmethod
    @abstractmethod
    def auth_failure(cls, credentials: Credentials) -> str:
        """The message when the carrier rejects these credentials."""

    def describe_error(self, response: requests.Response) -> str:
        """The readable message of an error answer (:func:`readable_error` unless a carrier's
        error body needs its own reading)."""
        return readable_error(self.carrier, response)

    def auth_headers(self) -> dict[str, str]:
        """The headers that authenticate every call (a key carrier's key); none by default."""
        return {}

    def basic_auth(self) -> tuple[str, str] | None:
        """HTTP Basic (user, password) for every call, for carriers that use it."""
        return None

    def _json_object(self, response: HttpResponse) -> dict[str, Any]:
        """The answer's body, which the contract promises is a JSON object; a PermanentError
        when it is something else."""
        if not isinstance(response.body, dict):
            raise unexpected_response(self.carrier, "a JSON object", response.call)
        return response.body

    def _check_answer(self, response: HttpResponse) -> HttpResponse:
        """Raise for an answer that reports a failure despite its status (Rev.io's ``"ok":
        false``); every answer passes by default."""
        return response

    def _call(
        self,
        method: str,
        path: str,
        description: str,
        *,
        idempotency_key: str = "",
        headers: Mapping[str, str] | None = None,
        auth_headers: Mapping[str, str] | None = None,
        auth_failure: str | None = None,
        **payload: Unpack[Payload],
    ) -> HttpResponse:
        """Make one call: the authentication (``auth_headers``, default :meth:`auth_headers`;
        :meth:`basic_auth`), ``Accept: application/json``, the call's own ``headers``, then the
        ``Idempotency-Key`` when one is given; ``path`` is relative to the base URL.

        Raises our error types (see :class:`CarrierHttp`), with ``auth_failure`` overriding the
        client's message for a 401/403 (a login call names what it sent)."""
        sent_headers = {
            **(self.auth_headers() if auth_headers is None else auth_headers),
            "Accept": "application/json",
            **(headers or {}),
        }
        if idempotency_key:
            sent_headers["Idempotency-Key"] = idempotency_key
        response = self.http.request(
            method,
            path,
            description=description,
            headers=sent_headers,
            auth=self.basic_auth(),
            auth_failure=auth_failure,
            **payload,
        )
        return self._check_answer(response)
