"""The SQS consumer behind ``manage.py poll_sqs`` (docs/architecture.md §5).

Long-polls the queue, validates each message, hands each valid one to django-q2 and deletes it
from SQS only after the hand-off is durable (the task is in the broker). A malformed message is
logged with its reason and message id, its refusal recorded (``RefusedMessage``, for the
console's dead-letter page) and *not* deleted — its visibility is shortened so it returns soon
and the queue's redrive policy moves it to the dead-letter queue. A well-formed message for a
final or cancelled bulk change is a logged no-op and is deleted. A retry message that arrives
before its device's ``next_attempt_at`` is sent again with the remaining delay.

The poller outlives its dependencies: when SQS cannot be reached, throttles or fails, or the
database goes away, it waits (``retry.outage_delay_seconds``: capped exponential backoff with
jitter, reset by the next success) and tries again, logging each outage once when it starts
and once when it ends — never a traceback per attempt. It beats ``heartbeats.POLLER`` every
few seconds, so /healthz can tell a live poller from a dead one. While a message is handled,
its ids are in the log context (``pondops.logcontext``), on every line logged meanwhile.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection
from django.utils import timezone

from bulkchanges import heartbeats, sqs, tasks, transitions
from bulkchanges.models import BulkChange, DeviceChange
from bulkchanges.retry import outage_delay_seconds, sqs_delay_seconds
from bulkchanges.services.dead_letters import refused_message_record
from pondops.logcontext import log_context_bind

logger = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_SECONDS = 5.0
# What a database outage raises (a lost connection, a server that refuses); other database
# errors are bugs, handled like any other.
DATABASE_DOWN = (OperationalError, InterfaceError)


class DatabaseUnavailable(Exception):
    """The database failed while a message was handled: the batch stops, the message stays."""


def _database_reason(error: Exception, message_id: str = "") -> str:
    kept = f" (message {message_id} kept)" if message_id else ""
    return f"{type(error).__name__}: {str(error)[:200]}{kept}"


@dataclass
class PollStats:
    received: int = 0
    handed_off: int = 0
    no_ops: int = 0
    deferred: int = 0
    malformed: int = 0
    outages: int = 0


class Outage:
    """Whether a dependency (SQS, the database) is failing, since when and why; logs the
    change of state only: ERROR when an outage starts, WARNING when its reason changes, INFO
    "<name> reachable again after N s" when it ends."""

    def __init__(
        self, name: str, *, jitter: Callable[[], float] = random.random, cap: float = 30.0
    ) -> None:
        self.name = name
        self.cap = cap
        self.jitter = jitter
        self.since: datetime | None = None
        self.started = 0.0
        self.failures = 0
        self.reason = ""

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, reason: str) -> float:
        """Record a failure; returns how long to wait before the next attempt."""
        self.failures += 1
        if self.since is None:
            self.since, self.started = timezone.now(), time.monotonic()
            logger.error("%s unreachable: %s; retrying with backoff", self.name, reason)
        elif reason != self.reason:
            logger.warning("%s still unreachable, now: %s", self.name, reason)
        self.reason = reason
        return outage_delay_seconds(self.failures, cap=self.cap, jitter=self.jitter)

    def recovered(self) -> None:
        if self.since is not None:
            logger.info(
                "%s reachable again after %.0f s", self.name, time.monotonic() - self.started
            )
        self.since, self.failures, self.reason = None, 0, ""

    def describe(self) -> str:
        """The heartbeat's detail while the outage lasts."""
        since = self.since.isoformat(timespec="seconds") if self.since else "?"
        return f"{self.name} unreachable since {since}: {self.reason}"


class SqsConsumer:
    """One poller. ``stop`` is set by SIGTERM/SIGINT: the current batch finishes (or the
    current backoff wait is cut short), then ``run`` returns."""

    def __init__(
        self,
        *,
        max_messages: int = 10,
        wait_seconds: int | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.client = sqs.sqs_client(sqs.POLL)
        self.queue_url = sqs.queue_url()
        self.max_messages = max(1, min(10, max_messages))
        self.wait_seconds = (
            settings.BULKCHANGE_SQS_WAIT_SECONDS if wait_seconds is None else wait_seconds
        )
        self.stop = threading.Event()
        self.stats = PollStats()
        self.sqs_outage = Outage("SQS", jitter=jitter)
        self.database_outage = Outage("database", jitter=jitter)
        self._last_beat: float | None = None  # time.monotonic() of the last beat

    def run(self, *, once: bool = False) -> PollStats:
        while not self.stop.is_set():
            delay = self.step()
            if once:
                break
            if delay:
                self.stop.wait(delay)
        return self.stats

    def step(self) -> float:
        """One iteration of the loop: receive and handle one batch, then beat. Returns how long
        to wait before the next (0 after a success; the backoff while SQS or the database is
        down). Never raises for an outage."""
        try:
            self._check_database()
            self.poll_once()
        except sqs.SqsUnavailable as outage:
            delay = self._failed(self.sqs_outage, outage.reason)
        except DatabaseUnavailable as outage:
            delay = self._failed(self.database_outage, str(outage))
        else:
            self.sqs_outage.recovered()
            self.database_outage.recovered()
            delay = 0.0
        self._beat()
        return delay

    def _failed(self, outage: Outage, reason: str) -> float:
        if not outage.down:
            self.stats.outages += 1
        return outage.failed(reason)

    def _beat(self) -> None:
        """At most every HEARTBEAT_INTERVAL_SECONDS; not while the database is known to be
        down (the beat would fail; its staleness is the signal)."""
        if self.database_outage.down:
            return
        if (
            self._last_beat is not None
            and time.monotonic() - self._last_beat < HEARTBEAT_INTERVAL_SECONDS
        ):
            return
        self._last_beat = time.monotonic()
        detail = self.sqs_outage.describe() if self.sqs_outage.down else "receiving"
        heartbeats.heartbeat_beat(kind=heartbeats.POLLER, detail=detail)

    def _check_database(self) -> None:
        """While the database is down, ask it before receiving: a message received now would
        only fail and count a receive towards the dead-letter queue."""
        close_old_connections()
        if not self.database_outage.down:
            return
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except DATABASE_DOWN as error:
            raise DatabaseUnavailable(_database_reason(error)) from error

    def poll_once(self) -> int:
        """One receive and its batch. Raises ``sqs.SqsUnavailable`` when SQS fails (the rest of
        the batch returns when its visibility ends) and ``DatabaseUnavailable`` when the
        database does."""
        with sqs.sqs_call("receive_message"):
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
        """Validate, hand off and delete one message. Returns what happened (for tests/logs).
        Raises ``DatabaseUnavailable`` (the message stays) and ``sqs.SqsUnavailable``."""
        message_id = str(raw.get("MessageId", "?"))
        try:
            message = sqs.decode(raw)
            with log_context_bind(
                bulk_change_id=message.bulk_change_id,
                device_change_id=message.device_change_id,
                request_id=message.request_id,
            ):
                outcome = self._dispatch(message)
        except sqs.MalformedMessage as problem:
            self._refuse(raw, problem)
            return "malformed"
        except DATABASE_DOWN as error:
            raise DatabaseUnavailable(_database_reason(error, message_id)) from error
        except sqs.SqsUnavailable:
            raise
        except Exception:  # our side failed otherwise (a bug, the broker): keep the message
            logger.exception(
                "SQS message %s could not be handed off; it will be delivered again",
                message_id,
                extra={"sqs_message_id": message_id},
            )
            return "failed"
        with sqs.sqs_call("delete_message"):
            self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=raw["ReceiptHandle"])
        return outcome

    def _refuse(self, raw: Mapping[str, Any], problem: sqs.MalformedMessage) -> None:
        """Log and record why, then let the message return soon, so the redrive policy moves
        it to the dead-letter queue."""
        self.stats.malformed += 1
        message_id = str(raw.get("MessageId", "?"))
        receive_count = str((raw.get("Attributes") or {}).get("ApproximateReceiveCount", "?"))
        logger.error(
            "malformed SQS message %s (receive %s): %s; left for the dead-letter queue",
            message_id,
            receive_count,
            problem,
            extra={"sqs_message_id": message_id},
        )
        try:
            refused_message_record(
                message_id=message_id,
                body=str(raw.get("Body", "")),
                message_attributes=raw.get("MessageAttributes") or {},
                reason=str(problem),
                receive_count=int(receive_count) if receive_count.isdigit() else 0,
            )
        except DATABASE_DOWN as error:
            raise DatabaseUnavailable(_database_reason(error, message_id)) from error
        with sqs.sqs_call("change_message_visibility"):
            self.client.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=raw["ReceiptHandle"],
                VisibilityTimeout=settings.BULKCHANGE_MALFORMED_VISIBILITY_SECONDS,
            )

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
