"""Our error types, the one classifier of HTTP statuses, and ``Retry-After``.

Failures are types, not strings: :class:`PermanentError` (the device ends ERROR),
:class:`TransientError` (the device is retried later, honouring ``retry_after``) and
:class:`AuthenticationError` (permanent, naming the account, never the secret);
:class:`CarrierPending` is not a failure (an asynchronous carrier is still working). Each carries
the :class:`~integrations.base.audit.CallRecord` of the failing call, when there was one.
Which statuses are transient is the carriers' common contract (``docs/carriers/README.md``).
"""

from __future__ import annotations

import email.utils
import time

from integrations.base.audit import CallRecord


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


class WriteRefused(PermanentError):
    """A read-only client (a preview's) was asked for a call that is not one of its carrier's
    reads: refused before anything is sent, so a dry run never changes a device."""


class CarrierPending(IntegrationError):
    """Not a failure: the carrier has our request and has not finished it within this attempt's
    confirm budget. The device waits (AWAITING_CARRIER) on the waiting schedule, without
    consuming a retry, until its confirm deadline (docs/carriers/README.md)."""


class CallbackRejected(Exception):
    """An inbound carrier callback we refuse: ``status`` is our HTTP answer (401 wrong
    credentials or token, 400 a body we cannot parse); ``message`` never holds a secret."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def is_transient_status(status: int) -> bool:
    """The one classifier of HTTP statuses (docs/carriers/README.md): everything else 4xx/5xx is
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
