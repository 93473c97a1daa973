"""Reverts: undoing a finished bulk change by setting each device it changed back to the status
it had before (docs/operator-features.md, "Revert").

First a revert preview (:func:`revert_preview_create`): a :class:`Preview` with ``revert_of``
set and, per PROCESSED device change, a PreviewDevice whose target is that change's
``previous_status``. Devices that cannot be reverted are judged at once, without a read —
NOT_REVERTIBLE: no previous status was recorded, it names no status the carrier can set, or the
carrier's status table refuses the return (out of POND TERMINATED). The others are read like
any preview's devices (would change, already there, unknown…). Each lists the Rev.io service the
change created (``rev_service_id``): a revert never undoes one.

Then :func:`revert_create` makes, from that DONE preview, one bulk change per distinct previous
status with the devices that would change (``reverts`` and ``preview`` set, no RevService),
through the normal validation and creation service, gates included.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from bulkchanges.errors import ApplicationError
from bulkchanges.models import BulkChange, DeviceChange, Preview, PreviewDevice
from bulkchanges.services import logs
from bulkchanges.services.bulk_changes import (
    BATCH,
    ValidatedRequest,
    bulk_change_create,
    status_update_request_validate,
)
from bulkchanges.services.previews import preview_enqueue
from bulkchanges.types import DeviceRef, StatusUpdateRequest
from integrations.base import StatusUpdateProcessor, processor_class

logger = logging.getLogger(__name__)

Verdict = PreviewDevice.Verdict


def revert_target(processor_cls: type[StatusUpdateProcessor[Any]], previous: str) -> str | None:
    """The target that brings a device back to ``previous`` (a carrier status as the worker
    recorded it: a target name, or an inventory code such as Teal's ``online``), or None when
    the carrier cannot set it."""
    try:
        return processor_cls.canonical_status(previous)
    except ValueError:
        pass
    for name, mapping in processor_cls.statuses.items():
        if mapping.post_update_status.lower() == previous.strip().lower():
            return name
    return None


def _revert_devices(
    bulk_change: BulkChange, processor_cls: type[StatusUpdateProcessor[Any]], changed_to: str
) -> Iterator[PreviewDevice]:
    """One unsaved PreviewDevice per PROCESSED device change (the preview set later): to be
    read, or NOT_REVERTIBLE with the reason."""
    changes = bulk_change.device_changes.filter(status=DeviceChange.Status.PROCESSED).order_by("pk")
    for change in changes.iterator(chunk_size=BATCH):
        previous = change.previous_status.strip()
        target = revert_target(processor_cls, previous) if previous else None
        reason = ""
        if not previous:
            reason = "no previous status was recorded for this change"
        elif target is None:
            reason = f"{previous} is not a status {processor_cls.display_name} can set"
        elif target.lower() == changed_to.lower():
            reason = f"it was already {target} before this bulk change"
        else:
            reason = processor_cls.transition_refusal(current=changed_to, target=target)
        yield PreviewDevice(
            device_change=change,
            iccid=change.iccid,
            msisdn=change.msisdn,
            eid=change.eid,
            target_status=target or previous,
            rev_service_id=change.rev_service_id,
            verdict=Verdict.NOT_REVERTIBLE if reason else "",
            message=reason,
            read_at=timezone.now() if reason else None,
        )


def revert_preview_create(*, bulk_change: BulkChange, actor: str) -> Preview:
    """The revert preview of a bulk change in a final status (409 otherwise): its changed
    devices, each to be set back to its previous status, and those left out. Audited on the
    bulk change and on the preview; its reads are enqueued after the commit."""
    if bulk_change.status not in BulkChange.TERMINAL:
        raise ApplicationError(
            f"bulk change {bulk_change.pk} is {bulk_change.status}; only a bulk change in a "
            "final status can be reverted",
            code="conflict",
            status=409,
        )
    processor_cls = processor_class(bulk_change.integration)
    original = StatusUpdateRequest.from_legacy(bulk_change.request or {})
    changed_to = revert_target(processor_cls, original.update_status) or original.update_status
    if not bulk_change.device_changes.filter(status=DeviceChange.Status.PROCESSED).exists():
        raise ApplicationError(
            f"bulk change {bulk_change.pk} changed no device; there is nothing to revert",
            code="conflict",
            status=409,
        )
    request = StatusUpdateRequest(
        update_status=original.update_status,
        integration_authentication_id=original.integration_authentication_id,
        account_number=original.account_number,
        options=original.options,
    )
    with transaction.atomic():
        preview = Preview.objects.create(
            tenant=bulk_change.tenant,
            integration=bulk_change.integration,
            integration_authentication=bulk_change.integration_authentication,
            request=request.to_legacy(),
            revert_of=bulk_change,
            created_by=actor,
            queued_at=timezone.now(),
        )
        batch: list[PreviewDevice] = []
        for device in _revert_devices(bulk_change, processor_cls, changed_to):
            device.preview = preview
            batch.append(device)
            if len(batch) >= BATCH:
                PreviewDevice.objects.bulk_create(batch)
                batch = []
        PreviewDevice.objects.bulk_create(batch)
        left_out = preview.devices.filter(verdict=Verdict.NOT_REVERTIBLE).count()
        total = preview.devices.count()
        summary = f"revert preview {preview.pk}: {total - left_out:,} devices to read, " + (
            f"{left_out:,} left out (not revertible)"
        )
        logs.log_write(
            preview_id=preview.pk,
            description=logs.REVERT_PREVIEW_CREATED,
            process_by=actor,
            response_text=f"of bulk change {bulk_change.pk}: {summary}",
        )
        logs.log_write(
            bulk_change_id=bulk_change.pk,
            description=logs.REVERT_PREVIEW_CREATED,
            process_by=actor,
            response_text=summary,
        )
        transaction.on_commit(partial(preview_enqueue, preview.pk))
    return preview


def revert_create(*, preview: Preview, actor: str) -> list[BulkChange]:
    """From a DONE revert preview: one bulk change per distinct previous status with the
    devices that would change, ``reverts`` and ``preview`` set, no RevService, created through
    the normal validation and creation service. Once per preview (a second call is a 409
    naming the bulk changes already created). Audited on the reverted bulk change, each new
    one and the preview; the Rev.io services that are not undone are listed there."""
    original = preview.revert_of
    if original is None:
        raise ApplicationError(
            f"preview {preview.pk} is not a revert preview", code="conflict", status=409
        )
    if preview.status != Preview.Status.DONE:
        raise ApplicationError(
            f"revert preview {preview.pk} is {preview.status}; the revert is created from a "
            "finished (DONE) preview",
            code="conflict",
            status=409,
        )
    with transaction.atomic():
        Preview.objects.select_for_update().filter(pk=preview.pk).first()  # one revert at once
        already = list(BulkChange.objects.filter(preview=preview).values_list("pk", flat=True))
        if already:
            raise ApplicationError(
                f"the revert of preview {preview.pk} was already created: bulk changes "
                + ", ".join(str(pk) for pk in sorted(already)),
                code="conflict",
                status=409,
            )
        groups: dict[str, list[DeviceRef]] = defaultdict(list)
        for target, iccid, msisdn, eid in (
            preview.devices.filter(verdict=Verdict.WOULD_CHANGE)
            .order_by("pk")
            .values_list("target_status", "iccid", "msisdn", "eid")
            .iterator(chunk_size=BATCH)
        ):
            groups[target].append(DeviceRef(iccid=iccid, msisdn=msisdn, eid=eid))
        if not groups:
            raise ApplicationError(
                f"revert preview {preview.pk} has no device to set back",
                fields={"devices": ["no device would change"]},
            )
        request = StatusUpdateRequest.from_legacy(original.request or {})
        created: list[BulkChange] = []
        for target in sorted(groups):
            validated = _validated(original, request, target)
            bulk_change, _ = bulk_change_create(
                tenant=original.tenant,
                created_by=actor,
                validated=validated,
                devices=groups[target],
            )
            BulkChange.objects.filter(pk=bulk_change.pk).update(reverts=original, preview=preview)
            bulk_change.reverts, bulk_change.preview = original, preview
            logs.log_write(
                bulk_change_id=bulk_change.pk,
                description=logs.REVERT_CREATED,
                process_by=actor,
                response_text=f"reverts bulk change {original.pk}: {len(groups[target]):,} "
                f"devices back to {target} (revert preview {preview.pk})",
            )
            created.append(bulk_change)
        rev_services = sorted(
            service_id
            for service_id in preview.devices.values_list("rev_service_id", flat=True)
            if service_id is not None
        )
        summary = "; ".join(
            f"bulk change {bc.pk}: {len(groups[t]):,} back to {t}"
            for bc, t in zip(created, sorted(groups), strict=True)
        )
        not_undone = (
            f"; Rev.io services not undone: {', '.join(str(s) for s in rev_services[:50])}"
            + (f" and {len(rev_services) - 50} more" if len(rev_services) > 50 else "")
            if rev_services
            else ""
        )
        logs.log_write(
            bulk_change_id=original.pk,
            description=logs.REVERT_CREATED,
            process_by=actor,
            response_text=summary + not_undone,
        )
        logs.log_write(
            preview_id=preview.pk,
            description=logs.REVERT_CREATED,
            process_by=actor,
            response_text=summary + not_undone,
        )
    logger.info(
        "bulk change %s reverted by %s: %s",
        original.pk,
        actor,
        summary,
        extra={"bulk_change_id": original.pk},
    )
    return created


def _validated(original: BulkChange, request: StatusUpdateRequest, target: str) -> ValidatedRequest:
    """The revert's request for one previous status: the original's credentials, account and
    options, no RevService, the current status checked as usual."""
    return status_update_request_validate(
        tenant=original.tenant,
        integration=original.integration,
        update_status=target,
        credentials_id=original.integration_authentication_id,
        account_number=request.account_number,
        options=request.options,
    )
