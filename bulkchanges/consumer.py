"""The SQS consumer behind ``manage.py poll_sqs`` (docs/architecture.md §5).

Long-polls the queue, validates each message, hands each valid one to django-q2 and deletes it
from SQS only after the hand-off is durable (the task is in the broker). A malformed message is
logged with its reason and message id and *not* deleted — its visibility is shortened so it
returns soon and the queue's redrive policy moves it to the dead-letter queue. A well-formed
message for a final or cancelled bulk change is a logged no-op and is deleted. A retry message
that arrives before its device's ``next_attempt_at`` is sent again with the remaining delay.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from bulkchanges import sqs, tasks, transitions
from bulkchanges.models import BulkChange, DeviceChange
from bulkchanges.retry import sqs_delay_seconds

logger = logging.getLogger(__name__)


@dataclass
class PollStats:
    received: int = 0
    handed_off: int = 0
    no_ops: int = 0
    deferred: int = 0
    malformed: int = 0


class SqsConsumer:
    """One poller. ``stop`` is set by SIGTERM/SIGINT: the current batch finishes, then
    ``run`` returns."""

    def __init__(self, *, max_messages: int = 10, wait_seconds: int | None = None) -> None:
        self.client = sqs.sqs_client()
        self.queue_url = sqs.queue_url()
        self.max_messages = max(1, min(10, max_messages))
        self.wait_seconds = (
            settings.BULKCHANGE_SQS_WAIT_SECONDS if wait_seconds is None else wait_seconds
        )
        self.stop = threading.Event()
        self.stats = PollStats()

    def run(self, *, once: bool = False) -> PollStats:
        while not self.stop.is_set():
            self.poll_once()
            if once:
                break
        return self.stats

    def poll_once(self) -> int:
        close_old_connections()
        response = self.client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.max_messages,
            WaitTimeSeconds=self.wait_seconds,
            MessageAttributeNames=["All"],
            AttributeNames=["ApproximateReceiveCount"],
        )
        messages = response.get("Messages", [])
        for message in messages:
            self.stats.received += 1
            self.handle(message)
        return len(messages)

    def handle(self, raw: Mapping[str, Any]) -> str:
        """Validate, hand off and delete one message. Returns what happened (for tests/logs)."""
        message_id = raw.get("MessageId", "?")
        try:
            message = sqs.decode(raw)
            outcome = self._dispatch(message)
        except sqs.MalformedMessage as problem:
            self.stats.malformed += 1
            receive_count = (raw.get("Attributes") or {}).get("ApproximateReceiveCount", "?")
            logger.error(
                "malformed SQS message %s (receive %s): %s; left for the dead-letter queue",
                message_id,
                receive_count,
                problem,
                extra={"sqs_message_id": message_id},
            )
            self.client.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=raw["ReceiptHandle"],
                VisibilityTimeout=settings.BULKCHANGE_MALFORMED_VISIBILITY_SECONDS,
            )
            return "malformed"
        except Exception:  # our side failed (database down…): keep the message, it returns
            logger.exception(
                "SQS message %s could not be handed off; it will be delivered again",
                message_id,
                extra={"sqs_message_id": message_id},
            )
            return "failed"
        self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=raw["ReceiptHandle"])
        return outcome

    def _dispatch(self, message: sqs.QueueMessage) -> str:
        extra = {
            "bulk_change_id": message.bulk_change_id,
            "device_change_id": message.device_change_id,
            "request_id": message.request_id,
        }
        bulk_change = (
            BulkChange.objects.filter(pk=message.bulk_change_id)
            .only("status", "change_request_type")
            .first()
        )
        if bulk_change is None:
            raise sqs.MalformedMessage(f"unknown bulk change {message.bulk_change_id}")
        if bulk_change.change_request_type not in BulkChange.PROCESSED_TYPES:
            raise sqs.MalformedMessage(
                f"bulk change {bulk_change.pk} has change request type "
                f"{bulk_change.change_request_type}, which PondOps does not process"
            )
        if bulk_change.status in BulkChange.TERMINAL:
            return self._no_op("bulk change", bulk_change, extra)
        if bulk_change.status == BulkChange.Status.NEW:  # released by another system
            transitions.bulk_change_release(bulk_change_id=bulk_change.pk, now=timezone.now())
        if message.device_change_id:
            return self._dispatch_device(message, extra)
        tasks.enqueue_bulk_change(
            message.bulk_change_id, request_id=message.request_id, automated=message.is_automated
        )
        self.stats.handed_off += 1
        return "handed-off"

    def _dispatch_device(self, message: sqs.QueueMessage, extra: dict[str, Any]) -> str:
        device_change = (
            DeviceChange.objects.filter(
                pk=message.device_change_id, bulk_change_id=message.bulk_change_id
            )
            .only("status", "next_attempt_at")
            .first()
        )
        if device_change is None:
            raise sqs.MalformedMessage(
                f"device change {message.device_change_id} is not part of bulk change "
                f"{message.bulk_change_id}"
            )
        if device_change.status in DeviceChange.TERMINAL:
            return self._no_op("device change", device_change, extra)
        due = device_change.next_attempt_at
        now = timezone.now()
        waiting = (DeviceChange.Status.RETRY_SCHEDULED, DeviceChange.Status.AWAITING_CARRIER)
        if device_change.status in waiting and due and due > now:
            remaining = (due - now).total_seconds()
            sent = sqs.send_device_retry(
                bulk_change_id=message.bulk_change_id,
                device_change_id=message.device_change_id,
                retry_number=message.retry_number,
                delay_seconds=sqs_delay_seconds(remaining),
                request_id=message.request_id,
            )
            if sent is None:  # keep the original; it will be delivered again
                raise RuntimeError("could not re-send an early retry message")
            self.stats.deferred += 1
            logger.info(
                "device change %s retry due in %.0fs; message sent again",
                device_change.pk,
                remaining,
                extra=extra,
            )
            return "deferred"
        tasks.enqueue_devices(
            [message.device_change_id],
            request_id=message.request_id,
            automated=message.is_automated,
        )
        self.stats.handed_off += 1
        return "handed-off"

    def _no_op(self, kind: str, row: BulkChange | DeviceChange, extra: dict[str, Any]) -> str:
        """A message for a row already final does nothing: it is counted, logged and deleted."""
        self.stats.no_ops += 1
        logger.info("%s %s is %s; message is a no-op", kind, row.pk, row.status, extra=extra)
        return "no-op"
