"""Validating and creating bulk changes — the writes every entry point (admin, API, commands)
shares, so they validate and behave exactly alike. Operator actions on existing bulk changes
(cancel, retry) are in :mod:`bulkchanges.services.bulk_change_actions`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from bulkchanges import sqs, transitions
from bulkchanges.devicelists import ParsedDeviceList, RejectedLine, too_many_devices
from bulkchanges.errors import ApplicationError
from bulkchanges.models import (
    BulkChange,
    Device,
    DeviceChange,
    DeviceStatus,
    IntegrationAuthentication,
    Tenant,
)
from bulkchanges.types import DeviceRef, StatusUpdateRequest
from integrations.base import Integration, StatusUpdateProcessor, processor_class
from integrations.rev_request import RevServiceRequest

logger = logging.getLogger(__name__)

BATCH = 1000


@dataclass
class Preview:
    """What a device list would become: shown before submit (admin) and used on create."""

    devices: list[DeviceRef]
    duplicates: list[RejectedLine]  # the first ones (devicelists.REJECTED_KEPT) ...
    malformed: list[RejectedLine]
    duplicate_count: int  # ... and how many there are
    malformed_count: int
    unknown_iccids: list[str]
    errors: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ValidatedRequest:
    credentials: IntegrationAuthentication
    request: StatusUpdateRequest


def credentials_resolve(
    *, tenant: Tenant, integration: str, credentials_id: int | None
) -> IntegrationAuthentication:
    """The credentials to use: the id given (must be the tenant's, for that integration, active),
    else the tenant's only active row for the integration. ApplicationError names the choices."""
    rows = IntegrationAuthentication.objects.filter(
        tenant=tenant, integration=integration, is_active=True
    )
    if credentials_id is not None:
        found = rows.filter(pk=credentials_id).first()
        if found is None:
            raise ApplicationError(
                f"credentials {credentials_id} are not active {integration} credentials of "
                f"tenant {tenant.name}",
                fields={"credentials": ["unknown credentials"]},
            )
        return found
    choices = list(rows.order_by("pk")[:10])
    if len(choices) == 1:
        return choices[0]
    if not choices:
        raise ApplicationError(
            f"tenant {tenant.name} has no active {integration} credentials",
            fields={"credentials": ["none configured"]},
        )
    listed = ", ".join(f"{row.pk} ({row.account or row.username})" for row in choices)
    raise ApplicationError(
        f"tenant {tenant.name} has several active {integration} credentials; choose one of "
        f"{listed}",
        fields={"credentials": ["several configured"]},
    )


def status_update_request_validate(
    *,
    tenant: Tenant,
    integration: str,
    update_status: str,
    credentials_id: int | None = None,
    is_ignore_current_status: bool = False,
    post_update_status: str | None = None,
    account_number: str = "",
    options: Mapping[str, str] | None = None,
    rev_service: RevServiceRequest | None = None,
    change_request_type: str = BulkChange.ChangeRequestType.STATUS_UPDATE,
) -> ValidatedRequest:
    """Validate a status-update request for a tenant; ApplicationError with per-field messages."""
    errors: dict[str, list[str]] = {}
    if change_request_type not in BulkChange.PROCESSED_TYPES:
        label = (
            BulkChange.ChangeRequestType(change_request_type).label
            if change_request_type in BulkChange.ChangeRequestType.values
            else change_request_type
        )
        raise ApplicationError(
            f"change request type {label!r} is recognised but not processed by PondOps; "
            "only status updates are",
            code="unsupported_change_type",
            fields={"change_request_type": ["unsupported"]},
        )
    try:
        processor: type[StatusUpdateProcessor] = processor_class(integration)
    except LookupError:
        raise ApplicationError(
            f"integration {integration!r} cannot process status updates",
            fields={"integration": [f"choose one of {', '.join(_carriers())}"]},
        ) from None
    credentials = credentials_resolve(
        tenant=tenant, integration=integration, credentials_id=credentials_id
    )
    target = ""
    try:
        target = processor.canonical_status(update_status)
    except ValueError as exc:
        errors["update_status"] = [str(exc)]
    post_update_status_id: int | None = None
    if target:
        code = post_update_status or processor.statuses[target].post_update_status
        status = DeviceStatus.objects.filter(integration=integration, code__iexact=code).first()
        if status is None:
            errors["post_update_status"] = [f"no {integration} device status {code!r}"]
        else:
            post_update_status_id = status.pk
        option_problems = processor.check_options(target_status=target, options=options or {})
        if option_problems:
            errors["options"] = option_problems
    if rev_service is not None:
        rev_ok = IntegrationAuthentication.objects.filter(
            pk=rev_service.integration_authentication_id,
            tenant=tenant,
            integration=Integration.REV,
            is_active=True,
        ).exists()
        if not rev_ok:
            errors["rev_service"] = [
                f"credentials {rev_service.integration_authentication_id} are not active Rev.io "
                f"credentials of tenant {tenant.name}"
            ]
    if errors:
        raise ApplicationError("the status update request is invalid", fields=errors)
    request = StatusUpdateRequest(
        update_status=target,
        integration_authentication_id=credentials.pk,
        is_ignore_current_status=is_ignore_current_status,
        post_update_status_id=post_update_status_id,
        account_number=account_number,
        rev_service=rev_service,
        options=dict(options or {}),
    )
    return ValidatedRequest(credentials=credentials, request=request)


def _carriers() -> list[str]:
    from integrations.base import carrier_integrations

    return carrier_integrations()


def too_many_devices_error(*, field: str = "devices") -> ApplicationError:
    """413: a request names more devices than a bulk change may hold."""
    limit = settings.BULKCHANGE_MAX_DEVICES_PER_REQUEST
    return ApplicationError(
        too_many_devices(limit),
        code="too_many_devices",
        fields={field: [f"at most {limit:,} devices per request"]},
        status=413,
    )


def device_list_preview(*, tenant: Tenant, integration: str, parsed: ParsedDeviceList) -> Preview:
    """Counts and offending lines for a parsed list, plus ICCIDs our inventory does not know
    (allowed, but flagged)."""
    known: set[str] = set()
    iccids = [device.iccid for device in parsed.devices]
    for start in range(0, len(iccids), BATCH):
        known.update(
            Device.objects.filter(
                tenant=tenant, integration=integration, iccid__in=iccids[start : start + BATCH]
            ).values_list("iccid", flat=True)
        )
    return Preview(
        devices=parsed.devices,
        duplicates=parsed.duplicates,
        malformed=parsed.malformed,
        duplicate_count=parsed.duplicate_count,
        malformed_count=parsed.malformed_count,
        unknown_iccids=[iccid for iccid in iccids if iccid not in known],
    )


# A scheduled time this little in the past is taken as "now" (clocks and forms lag); more is
# refused, since nobody means to schedule something for yesterday.
SCHEDULE_PAST_TOLERANCE = timedelta(minutes=1)


@dataclass(frozen=True)
class Gates:
    """What holds a new bulk change back before the queue: approval (``approval_reason``, in
    words, blank when none is needed) and a scheduled time still ahead."""

    scheduled_for: datetime | None
    approval_reason: str
    now: datetime

    @property
    def scheduled_ahead(self) -> bool:
        return self.scheduled_for is not None and self.scheduled_for > self.now


def scheduled_for_validate(*, scheduled_for: datetime | None, now: datetime) -> datetime | None:
    """A bulk change's ``scheduled_for``: timezone-aware, at most BULKCHANGE_MAX_SCHEDULE_DAYS
    ahead, and not more than a minute in the past (a minute or less is taken as now).
    ApplicationError (field ``scheduled_for``) otherwise."""
    if scheduled_for is None:
        return None
    if timezone.is_naive(scheduled_for):
        raise ApplicationError(
            "scheduled_for needs a UTC offset (for example 2026-12-02T18:00:00+00:00)",
            fields={"scheduled_for": ["no UTC offset"]},
        )
    if scheduled_for < now - SCHEDULE_PAST_TOLERANCE:
        raise ApplicationError(
            f"scheduled_for {scheduled_for.isoformat()} is in the past; leave it empty to run "
            "at once",
            fields={"scheduled_for": ["in the past"]},
        )
    days = settings.BULKCHANGE_MAX_SCHEDULE_DAYS
    if scheduled_for > now + timedelta(days=days):
        raise ApplicationError(
            f"scheduled_for {scheduled_for.isoformat()} is more than {days} days ahead",
            fields={"scheduled_for": [f"at most {days} days ahead"]},
        )
    return scheduled_for


def approval_reason_for(*, tenant: Tenant, integration: str, target: str, device_count: int) -> str:
    """Why a bulk change needs a second person's approval, in words; blank when it does not.
    Destructive targets are data in each carrier's status table (``StatusMapping.destructive``)."""
    reasons: list[str] = []
    mapping = processor_class(integration).statuses.get(target)
    if mapping is not None and mapping.destructive:
        reasons.append(f"target {target} is destructive")
    threshold = tenant.approval_threshold
    if device_count > threshold:
        reasons.append(
            f"{device_count:,} devices is above this tenant's approval threshold of {threshold:,}"
        )
    return " and ".join(reasons)


def bulk_change_gates(
    *,
    tenant: Tenant,
    validated: ValidatedRequest,
    device_count: int,
    scheduled_for: datetime | None = None,
    now: datetime | None = None,
) -> Gates:
    """The gates a new bulk change passes through (validating ``scheduled_for``): shown by the
    admin's preview before submit and applied by :func:`bulk_change_create`."""
    now = now or timezone.now()
    return Gates(
        scheduled_for=scheduled_for_validate(scheduled_for=scheduled_for, now=now),
        approval_reason=approval_reason_for(
            tenant=tenant,
            integration=validated.credentials.integration,
            target=validated.request.update_status,
            device_count=device_count,
        ),
        now=now,
    )


def bulk_change_create(
    *,
    tenant: Tenant,
    created_by: str,
    validated: ValidatedRequest,
    devices: Sequence[DeviceRef],
    idempotency_key: str | None = None,
    callback_url: str = "",
    request_fingerprint: str = "",
    scheduled_for: datetime | None = None,
) -> tuple[BulkChange, bool]:
    """Record a status-update bulk change with its devices, in one transaction, in its first
    status (:func:`bulk_change_gates`): AWAITING_APPROVAL when its target is destructive or it
    has more devices than the tenant's approval threshold, else SCHEDULED while
    ``scheduled_for`` is ahead, else QUEUED — and only then is its SQS message sent, once the
    transaction commits. Returns (bulk_change, created): a repeated ``idempotency_key`` for the
    tenant returns the original with created=False.

    ``request_fingerprint`` (the API's hash of the normalised request) is stored with the key;
    a repeat of the key whose fingerprint differs from the stored one is a Conflict (409)
    instead of the original. Keys are kept as long as their bulk change (well over 24 h).

    Devices must already be validated and de-duplicated (``parse_device_list``); a bulk change
    with no device is refused.
    """
    if idempotency_key:
        existing = bulk_change_find_repeat(
            tenant=tenant, idempotency_key=idempotency_key, request_fingerprint=request_fingerprint
        )
        if existing is not None:
            return existing, False
    if not devices:
        raise ApplicationError(
            "a bulk change needs at least one valid device", fields={"devices": ["no valid device"]}
        )
    if len(devices) > settings.BULKCHANGE_MAX_DEVICES_PER_REQUEST:
        raise too_many_devices_error()
    credentials, request = validated.credentials, validated.request
    gates = bulk_change_gates(
        tenant=tenant, validated=validated, device_count=len(devices), scheduled_for=scheduled_for
    )
    if processor_class(credentials.integration).limits_daily_actions:
        _check_daily_action_budget(credentials=credentials, devices=devices)
    change_request = request.to_legacy()
    try:
        with transaction.atomic():
            bulk_change = BulkChange.objects.create(
                tenant=tenant,
                integration=credentials.integration,
                integration_authentication=credentials,
                change_request_type=BulkChange.ChangeRequestType.STATUS_UPDATE,
                created_by=created_by,
                **transitions.bulk_change_initial(
                    now=gates.now,
                    scheduled_for=gates.scheduled_for,
                    approval_reason=gates.approval_reason,
                ),
                request=change_request,
                idempotency_key=idempotency_key or "",
                request_fingerprint=request_fingerprint if idempotency_key else "",
                callback_url=callback_url,
            )
            for start in range(0, len(devices), BATCH):
                batch = devices[start : start + BATCH]
                inventory = dict(
                    Device.objects.filter(
                        integration=credentials.integration, iccid__in=[d.iccid for d in batch]
                    ).values_list("iccid", "pk")
                )
                DeviceChange.objects.bulk_create(
                    DeviceChange(
                        bulk_change=bulk_change,
                        device_id=inventory.get(device.iccid),
                        iccid=device.iccid,
                        msisdn=device.msisdn,
                        eid=device.eid,
                        change_request=change_request,
                    )
                    for device in batch
                )
            if bulk_change.status == BulkChange.Status.QUEUED:
                transaction.on_commit(
                    partial(sqs.send_bulk_change, bulk_change.pk, request_id=idempotency_key or "")
                )
    except IntegrityError:
        if not idempotency_key:
            raise
        existing = bulk_change_find_repeat(
            tenant=tenant, idempotency_key=idempotency_key, request_fingerprint=request_fingerprint
        )
        if existing is None:
            raise
        return existing, False
    logger.info(
        "bulk change %s created by %s: %s devices to %s on %s, %s",
        bulk_change.pk,
        created_by,
        len(devices),
        request.update_status,
        credentials.integration,
        bulk_change.status,
        extra={"bulk_change_id": bulk_change.pk, "request_id": idempotency_key or ""},
    )
    return bulk_change, True


def bulk_change_find_repeat(
    *, tenant: Tenant, idempotency_key: str, request_fingerprint: str = ""
) -> BulkChange | None:
    """The bulk change this tenant already created with ``idempotency_key``, or None. A
    different ``request_fingerprint`` than the stored one is a 409 (ApplicationError)."""
    existing = BulkChange.objects.filter(tenant=tenant, idempotency_key=idempotency_key).first()
    if existing is not None:
        _check_same_request(existing, request_fingerprint)
    return existing


def _check_same_request(existing: BulkChange, request_fingerprint: str) -> None:
    """A reused idempotency key must carry the same request (when both sides fingerprinted)."""
    if (
        request_fingerprint
        and existing.request_fingerprint
        and existing.request_fingerprint != request_fingerprint
    ):
        raise ApplicationError(
            f"Idempotency-Key {existing.idempotency_key!r} was already used for bulk change "
            f"{existing.pk} with a different request; use a new key for a new request",
            code="idempotency_key_reused",
            fields={"Idempotency-Key": ["already used with a different request"]},
            status=409,
        )


def _check_daily_action_budget(
    *, credentials: IntegrationAuthentication, devices: Sequence[DeviceRef]
) -> None:
    """Refuse a bulk change that would take a device past its carrier's daily provisioning
    budget (counted from our own DeviceChange history since midnight UTC; cancelled ones do
    not count), listing those devices."""
    budget = credentials.daily_action_budget
    day_start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    over: list[str] = []
    for start in range(0, len(devices), BATCH):
        batch = [device.iccid for device in devices[start : start + BATCH]]
        counts = (
            DeviceChange.objects.filter(
                iccid__in=batch,
                bulk_change__integration=credentials.integration,
                bulk_change__created_at__gte=day_start,
            )
            .exclude(status=DeviceChange.Status.CANCELLED)
            .order_by()
            .values_list("iccid")
            .annotate(actions=Count("id"))
        )
        over += [iccid for iccid, actions in counts if actions + 1 > budget]
    if over:
        listed = ", ".join(over[:20]) + (f" and {len(over) - 20} more" if len(over) > 20 else "")
        raise ApplicationError(
            f"{len(over)} devices would exceed the daily budget of {budget} provisioning "
            f"actions per line: {listed}",
            code="daily_budget_exceeded",
            fields={"devices": [f"over the daily budget: {listed}"]},
        )
