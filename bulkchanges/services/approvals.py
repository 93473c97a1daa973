"""Four-eyes approval (docs/operator-features.md): a bulk change held in AWAITING_APPROVAL is
approved or rejected by a different person. Shared by the admin and the API; the CLI cannot
approve. Who may decide at all (the staff permission and tenant scope, the partner key's role)
is checked at the edge; this module refuses the creator and decides with one conditional
update, so of two decisions the first wins and the other gets a Conflict."""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction
from django.utils import timezone

from bulkchanges import sqs, transitions
from bulkchanges.errors import ApplicationError, Conflict
from bulkchanges.models import BulkChange
from bulkchanges.selectors import device_status_counts
from bulkchanges.services import logs
from bulkchanges.services.webhooks import webhook_completion_schedule

logger = logging.getLogger(__name__)

MAX_NOTE = 2000


def actor_username(actor: str) -> str:
    """The user an actor string names: ``admin:alice``, ``api:alice`` and ``cli:alice`` are all
    alice, so a person cannot approve through one door what they created through another."""
    _, _, username = actor.partition(":")
    return (username or actor).removesuffix(" [automated]").strip()


def _check_not_creator(*, bulk_change: BulkChange, actor: str) -> None:
    if actor_username(actor).casefold() == actor_username(bulk_change.created_by).casefold():
        raise ApplicationError(
            f"bulk change {bulk_change.pk} was created by {bulk_change.created_by}; a "
            "different person must approve or reject it",
            code="permission_denied",
            status=403,
        )


def _lost(bulk_change: BulkChange) -> Conflict:
    """The 409 for a decision that came too late, saying what came first."""
    bulk_change.refresh_from_db()
    decided = (
        f" ({bulk_change.decision.lower()} by {bulk_change.decided_by})"
        if bulk_change.decision
        else ""
    )
    return Conflict(
        f"bulk change {bulk_change.pk} is {bulk_change.status}{decided}; only a bulk change "
        "awaiting approval can be approved or rejected"
    )


def _note(note: str) -> str:
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ApplicationError(
            f"the note is longer than {MAX_NOTE} characters",
            fields={"note": [f"at most {MAX_NOTE} characters"]},
        )
    return note


def bulk_change_approve(*, bulk_change: BulkChange, actor: str, note: str = "") -> BulkChange:
    """Approve a bulk change awaiting approval: QUEUED (its SQS message after commit), or
    SCHEDULED while its ``scheduled_for`` is ahead (the reaper releases it). Refuses the
    creator (403) and a bulk change no longer awaiting approval (409: another decision or a
    cancel came first). Returns the bulk change as it now stands."""
    note = _note(note)
    _check_not_creator(bulk_change=bulk_change, actor=actor)
    now = timezone.now()
    with transaction.atomic():
        reached = transitions.bulk_change_approve(
            bulk_change_id=bulk_change.pk, now=now, by=actor, note=note
        )
        if reached is None:
            raise _lost(bulk_change)
        bulk_change.refresh_from_db(fields=["scheduled_for"])
        when = bulk_change.scheduled_for
        then = (
            f"scheduled for {when.isoformat()}"
            if reached == BulkChange.Status.SCHEDULED and when is not None
            else "queued now"
        )
        logs.log_write(
            bulk_change_id=bulk_change.pk,
            description=logs.OPERATOR_APPROVE,
            process_by=actor,
            response_text=f"approved by {actor}: {then}" + (f"; note: {note}" if note else ""),
        )
        if reached == BulkChange.Status.QUEUED:
            transaction.on_commit(
                partial(sqs.send_bulk_change, bulk_change.pk, request_id=f"approved-by-{actor}")
            )
    logger.info(
        "bulk change %s approved by %s: %s",
        bulk_change.pk,
        actor,
        reached,
        extra={"bulk_change_id": bulk_change.pk},
    )
    bulk_change.refresh_from_db()
    return bulk_change


def bulk_change_reject(*, bulk_change: BulkChange, actor: str, note: str = "") -> BulkChange:
    """Reject a bulk change awaiting approval: CANCELLED at once (no device was ever claimable),
    every device CANCELLED, the decision's audit row and the completion row, then — as for
    every final status — the completion webhook. Same refusals as :func:`bulk_change_approve`."""
    note = _note(note)
    _check_not_creator(bulk_change=bulk_change, actor=actor)
    now = timezone.now()
    with transaction.atomic():
        if not transitions.bulk_change_reject(
            bulk_change_id=bulk_change.pk, now=now, by=actor, note=note
        ):
            raise _lost(bulk_change)
        cancelled = transitions.device_changes_cancel(bulk_change_id=bulk_change.pk, now=now)
        logs.log_write(
            bulk_change_id=bulk_change.pk,
            description=logs.OPERATOR_REJECT,
            process_by=actor,
            response_text=f"rejected by {actor}: {cancelled} devices cancelled"
            + (f"; note: {note}" if note else ""),
        )
        counts = device_status_counts(bulk_change_id=bulk_change.pk)
        summary = ", ".join(f"{status} {n}" for status, n in counts.items() if n)
        logs.log_write(
            bulk_change_id=bulk_change.pk,
            description=logs.COMPLETION,
            process_by=actor,
            response_text=f"{BulkChange.Status.CANCELLED}: {summary}",
            has_errors=True,
        )
        transaction.on_commit(
            partial(webhook_completion_schedule, bulk_change_id=bulk_change.pk), robust=True
        )
    logger.info(
        "bulk change %s rejected by %s",
        bulk_change.pk,
        actor,
        extra={"bulk_change_id": bulk_change.pk},
    )
    bulk_change.refresh_from_db()
    return bulk_change
