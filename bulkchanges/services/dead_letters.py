"""The dead-letter queue's writes: recording why the consumer refused a message, moving
dead-lettered messages back to the queue (redrive) and deleting them — for
``manage.py redrive_dlq`` and the console's dead-letter page alike.

Acting on chosen messages needs their current receipt handles, which only a receive gives: a
pass receives the DLQ in batches with a visibility timeout (so no message is seen twice in one
pass), acts on the chosen ones and makes the others visible again at the end. A message is
deleted from the DLQ only after its copy was sent, so a failure half-way duplicates a message
(harmless: the consumer is idempotent) and never loses one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from bulkchanges import sqs
from bulkchanges.models import RefusedMessage

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

Act = Callable[[sqs.PeekedMessage, "SQSClient"], None]

BODY_LIMIT = 10 * 1024
SQS_MAX_RETENTION = timedelta(days=14)
# How long a pass keeps the DLQ messages it received hidden; longer than any pass takes.
PASS_VISIBILITY_SECONDS = 120


def refused_message_record(
    *,
    message_id: str,
    body: str,
    message_attributes: Mapping[str, Any],
    reason: str,
    receive_count: int,
    now: datetime | None = None,
) -> RefusedMessage:
    """Upsert the refusal of SQS message ``message_id`` (idempotent per refusal: the count and
    last time move, the first time stays). Raises the database's error when it is down: the
    caller keeps the message, which returns."""
    now = now or timezone.now()
    with transaction.atomic():
        refused, created = RefusedMessage.objects.select_for_update().get_or_create(
            message_id=message_id,
            defaults={
                "body": body[:BODY_LIMIT],
                "message_attributes": dict(message_attributes),
                "reason": reason,
                "receive_count": receive_count,
                "first_refused_at": now,
                "last_refused_at": now,
            },
        )
        if not created:
            refused.reason = reason
            refused.receive_count = receive_count
            refused.refusals += 1
            refused.last_refused_at = now
            refused.save(update_fields=["reason", "receive_count", "refusals", "last_refused_at"])
        else:
            RefusedMessage.objects.filter(last_refused_at__lt=now - SQS_MAX_RETENTION).delete()
    return refused


@dataclass
class DeadLetterPass:
    """What one pass over the DLQ did."""

    seen: int = 0
    acted: list[str] = field(default_factory=list)  # message ids redriven / deleted
    missing: list[str] = field(default_factory=list)  # chosen ids not found in the DLQ


def dead_letters_redrive(
    *,
    actor: str,
    message_ids: Collection[str] | None = None,
    max_messages: int = 10_000,
    dry_run: bool = False,
    user_id: int | None = None,
) -> DeadLetterPass:
    """Send dead-lettered messages back to the queue, body and attributes unchanged, then
    delete them from the DLQ: the ``message_ids`` chosen, or every message (``None``) up to
    ``max_messages``. ``dry_run`` only counts what would move. Logged under ``actor``; with a
    ``user_id`` (the console) each message also gets an admin LogEntry."""
    queue = sqs.queue_url()

    def redrive(message: sqs.PeekedMessage, client: SQSClient) -> None:
        with sqs.sqs_call("send_message"):
            client.send_message(QueueUrl=queue, **message.send_arguments())

    return _dead_letters_pass(
        verb="redrove",
        act=None if dry_run else redrive,
        actor=actor,
        message_ids=message_ids,
        max_messages=max_messages,
        user_id=user_id,
        audit=(CHANGE, "Redriven to the bulk-change queue"),
    )


def dead_letters_delete(
    *, actor: str, message_ids: Collection[str], user_id: int | None = None
) -> DeadLetterPass:
    """Delete the chosen dead-lettered messages for good (a message nobody should process)."""
    return _dead_letters_pass(
        verb="deleted",
        act=lambda message, client: None,  # nothing before the pass deletes it
        actor=actor,
        message_ids=message_ids,
        max_messages=10_000,
        user_id=user_id,
        audit=(DELETION, "Deleted from the dead-letter queue"),
    )


def _dead_letters_pass(
    *,
    verb: str,
    act: Act | None,
    actor: str,
    message_ids: Collection[str] | None,
    max_messages: int,
    user_id: int | None,
    audit: tuple[int, str],
) -> DeadLetterPass:
    """Receive the DLQ batch by batch (each message hidden for the pass), ``act`` on each
    chosen message and delete it, make the unchosen visible again. ``act`` None: a dry run
    that only counts (nothing is hidden: it peeks)."""
    dlq, client = sqs.dlq_url(), sqs.sqs_client()
    wanted = set(message_ids) if message_ids is not None else None
    result, unchosen = DeadLetterPass(), []
    try:
        while result.seen < max_messages and (wanted is None or wanted - set(result.acted)):
            batch = sqs.queue_receive(
                url=dlq,
                client=client,
                visibility_timeout=0 if act is None else PASS_VISIBILITY_SECONDS,
                max_messages=max_messages - result.seen,
            )
            if not batch:
                break
            for message in batch:
                result.seen += 1
                if wanted is not None and message.message_id not in wanted:
                    unchosen.append(message)
                    continue
                if act is not None:
                    act(message, client)
                    with sqs.sqs_call("delete_message"):
                        client.delete_message(QueueUrl=dlq, ReceiptHandle=message.receipt_handle)
                result.acted.append(message.message_id)
            if act is None:
                break  # peeked messages stay visible: one batch shows what is there
    finally:
        sqs.queue_make_visible(url=dlq, client=client, messages=unchosen)
        if act is not None and result.acted:
            _forget(result.acted, user_id=user_id, audit=audit)
    result.missing = sorted(wanted - set(result.acted)) if wanted is not None else []
    logger.info(
        "dead-letter queue: %s %s %s messages (%s seen)%s",
        actor,
        "would move" if act is None else verb,
        len(result.acted),
        result.seen,
        f"; not found: {', '.join(result.missing)}" if result.missing else "",
    )
    return result


def _forget(message_ids: list[str], *, user_id: int | None, audit: tuple[int, str]) -> None:
    """The messages left the DLQ: their refusal rows go (a redriven copy has a new id), and the
    console's staff member's action is on the admin's log."""
    RefusedMessage.objects.filter(message_id__in=message_ids).delete()
    if user_id is None:
        return
    flag, text = audit
    content_type = ContentType.objects.get_for_model(RefusedMessage)
    LogEntry.objects.bulk_create(
        LogEntry(
            user_id=user_id,
            content_type=content_type,
            object_id=message_id,
            object_repr=f"SQS message {message_id}"[:200],
            action_flag=flag,
            change_message=text,
        )
        for message_id in message_ids
    )
