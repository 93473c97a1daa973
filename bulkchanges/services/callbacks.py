"""Inbound carrier callbacks (docs/carriers/README.md, "Inbound callback receiver").

A callback is authenticated and parsed by its carrier's processor (``parse_callback``), stored
as a :class:`~bulkchanges.models.CarrierCallback` (re-sends once, keyed by credentials, request
id and device), and only *wakes* the matching device change: an AWAITING_CARRIER row becomes
due now and gets an undelayed device message after the commit. No carrier call is made here;
the CONFIRM step, under the normal claim, reads the stored callbacks (docs/architecture.md §7).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from bulkchanges import sqs, transitions
from bulkchanges.models import CarrierCallback, DeviceChange, IntegrationAuthentication
from bulkchanges.services import logs
from integrations.base import (
    CallbackAuth,
    CallbackEvent,
    CallbackRejected,
    StatusUpdateProcessor,
    carrier_integrations,
    processor_class,
)
from integrations.base.audit import audit_text

logger = logging.getLogger(__name__)

# Larger than any callback a carrier documents (ThingSpace's CarrierService body is ~1 KB).
MAX_CALLBACK_BODY_BYTES = 64 * 1024
RECEIVED = {"received": True}


@dataclass(frozen=True)
class CallbackAnswer:
    """What the receiver answers the carrier."""

    status: int
    body: Mapping[str, Any] = field(default_factory=lambda: dict(RECEIVED))
    stored: tuple[int, ...] = ()  # CarrierCallback ids
    woken: tuple[int, ...] = ()  # device change ids made due


def _refused(status: int, message: str) -> CallbackAnswer:
    return CallbackAnswer(status, {"received": False, "error": message})


def _receiver(integration: str, credentials_id: int) -> tuple[type[StatusUpdateProcessor], Any]:
    """The processor class and credentials row a callback URL names, or CallbackRejected(404)."""
    name = integration.upper()
    if name not in carrier_integrations():
        raise CallbackRejected(404, f"no carrier {integration!r}")
    processor_cls = processor_class(name)
    if processor_cls.callback_auth is CallbackAuth.NONE:
        raise CallbackRejected(404, f"{processor_cls.display_name} sends no callbacks")
    row = IntegrationAuthentication.objects.filter(
        pk=credentials_id, integration=name, is_active=True
    ).first()
    if row is None:
        raise CallbackRejected(404, f"no {processor_cls.display_name} credentials {credentials_id}")
    return processor_cls, row


def callback_receive(
    *,
    integration: str,
    credentials_id: int,
    method: str,
    path: str,
    query: Mapping[str, str],
    body: bytes,
    remote_addr: str = "",
) -> CallbackAnswer:
    """Authenticate, parse, store and wake. 200 once stored (matched or not); 401 wrong
    credentials or token; 404 unknown integration or credentials; 400 unparseable; 405 a
    method the carrier does not use; 413 a body larger than any callback."""
    try:
        processor_cls, row = _receiver(integration, credentials_id)
        if method not in processor_cls.callback_methods:
            raise CallbackRejected(
                405,
                f"{processor_cls.display_name} callbacks use "
                f"{', '.join(sorted(processor_cls.callback_methods))}",
            )
        if len(body) > MAX_CALLBACK_BODY_BYTES:
            raise CallbackRejected(413, f"callback body over {MAX_CALLBACK_BODY_BYTES} bytes")
        credentials = row.as_credentials()
        events = processor_cls.parse_callback(
            credentials=credentials, method=method, query=query, body=body
        )
    except CallbackRejected as refused:
        logger.warning(
            "carrier callback refused (%s): %s %s from %s: %s",
            refused.status,
            method,
            audit_text(path, ()),
            remote_addr or "unknown address",
            refused.message,
        )
        return _refused(refused.status, refused.message)
    secrets = credentials.secrets
    stored: list[int] = []
    woken: list[int] = []
    with transaction.atomic():
        for event in events:
            callback = _store(
                row,
                event,
                method=method,
                path=audit_text(path, secrets),
                body=audit_text(body.decode("utf-8", "replace"), secrets),
            )
            stored.append(callback.pk)
            if callback.device_change_id is not None:
                woken += _wake(callback)
    return CallbackAnswer(200, dict(RECEIVED), stored=tuple(stored), woken=tuple(woken))


def callback_receive_oversized() -> CallbackAnswer:
    """A body announced larger than any callback: refused before it is read."""
    return _refused(413, f"callback body over {MAX_CALLBACK_BODY_BYTES} bytes")


def _match(row: IntegrationAuthentication, event: CallbackEvent) -> DeviceChange | None:
    """The device change of these credentials whose carrier request the callback names (and,
    when the callback names the device by ICCID or EID, that device)."""
    if not event.request_id:
        return None
    candidates = DeviceChange.objects.filter(
        bulk_change__integration_authentication=row, carrier_request_id=event.request_id
    ).select_related("bulk_change")
    if event.device_id and event.device_kind in {"iccid", "eid"}:
        candidates = candidates.filter(**{event.device_kind: event.device_id})
    return candidates.order_by("-pk").first()


def _store(
    row: IntegrationAuthentication, event: CallbackEvent, *, method: str, path: str, body: str
) -> CarrierCallback:
    """One row per (credentials, request, device): a re-send only counts another copy."""
    now = timezone.now()
    existing = CarrierCallback.objects.filter(
        integration_authentication=row, request_id=event.request_id, device_id=event.device_id
    ).first()
    if existing is None:
        device_change = _match(row, event)
        try:
            with transaction.atomic():
                created = CarrierCallback.objects.create(
                    integration=row.integration,
                    integration_authentication=row,
                    request_id=event.request_id,
                    device_id=event.device_id,
                    device_kind=event.device_kind,
                    outcome=event.outcome.value,
                    reason=event.reason,
                    device_change=device_change,
                    method=method,
                    path=path[:1000],
                    body=body,
                    last_received_at=now,
                )
        except IntegrityError:  # the same callback, stored by a concurrent request
            existing = CarrierCallback.objects.get(
                integration_authentication=row,
                request_id=event.request_id,
                device_id=event.device_id,
            )
        else:
            _audit(created, first=True)
            return created
    CarrierCallback.objects.filter(pk=existing.pk).update(
        copies=F("copies") + 1, last_received_at=now
    )
    existing.refresh_from_db()
    _audit(existing, first=False)
    return existing


def _audit(callback: CarrierCallback, *, first: bool) -> None:
    """An audit row on the matched device change (method, redacted path and body, our answer);
    an unmatched callback is logged for staff and listed in the admin."""
    what = f"{callback.outcome} for request {callback.request_id or '-'}"
    if callback.reason:
        what += f": {callback.reason}"
    if not first:
        what += f" (re-sent copy {callback.copies}, stored once)"
    if callback.device_change_id is None:
        logger.warning(
            "unmatched %s callback %s: %s", callback.get_integration_display(), callback.pk, what
        )
        return
    device_change = callback.device_change
    assert device_change is not None
    logs.log_write(
        bulk_change_id=device_change.bulk_change_id,
        device_change_id=device_change.pk,
        description=logs.CARRIER_CALLBACK,
        process_by=f"carrier:{callback.integration.lower()}",
        request_text=f"{callback.method} {callback.path}\n\n{callback.body}".strip(),
        response_text=f"200 {RECEIVED}; {what}",
        response_status=200,
        has_errors=callback.outcome == CarrierCallback.Outcome.FAILED,
    )


def _wake(callback: CarrierCallback) -> list[int]:
    """Make the matched device change due now; its undelayed message follows the commit."""
    device_change = callback.device_change
    assert device_change is not None
    woken = transitions.device_changes_wake(ids=[device_change.pk], now=timezone.now())
    for pk in woken:
        transaction.on_commit(
            partial(
                sqs.send_device_retry,
                bulk_change_id=device_change.bulk_change_id,
                device_change_id=pk,
                retry_number=device_change.attempts,
                delay_seconds=0,
                request_id=f"callback-{callback.pk}",
            )
        )
    return woken
