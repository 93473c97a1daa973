"""The SQS message contract (docs/architecture.md §5): codec, client and senders.

A message carries message attributes (the legacy contract) and a JSON body with the same keys;
attributes win. Legacy producers send every attribute as DataType ``String`` (numbers as text,
.NET booleans ``True``/``False``) with a body of ``Not used``; we send ids and RetryNumber as
``Number``. Sends happen after commit and may fail: the database is the outbox, and the reaper
re-sends what is overdue, so a failed send is logged, never raised into the caller.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, ParamValidationError
from botocore.exceptions import ConnectionError as BotoCoreConnectionError
from django.conf import settings

from bulkchanges.loopback import is_loopback_url

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = logging.getLogger(__name__)

BULK_CHANGE_ID = "BulkChangeId"
DEVICE_CHANGE_ID = "M2MDeviceChangeId"
RETRY_NUMBER = "RetryNumber"
AUTOMATED = "IsFromAutomatedUpdateDeviceStatusLambda"
REQUEST_ID = "RequestId"


class MalformedMessage(ValueError):
    """The message cannot be processed as it is; it is left for the dead-letter queue."""


@dataclass(frozen=True)
class QueueMessage:
    bulk_change_id: int
    device_change_id: int = 0  # 0: every unprocessed device of the bulk change
    retry_number: int = 0
    is_automated: bool = False
    request_id: str = ""


def encode(message: QueueMessage) -> dict[str, Any]:
    """``send_message`` keyword arguments for ``message`` (attributes plus the JSON body)."""
    attributes: dict[str, dict[str, str]] = {
        BULK_CHANGE_ID: {"DataType": "Number", "StringValue": str(message.bulk_change_id)},
        DEVICE_CHANGE_ID: {"DataType": "Number", "StringValue": str(message.device_change_id)},
        RETRY_NUMBER: {"DataType": "Number", "StringValue": str(message.retry_number)},
        AUTOMATED: {"DataType": "String", "StringValue": str(message.is_automated).lower()},
    }
    if message.request_id:
        attributes[REQUEST_ID] = {"DataType": "String", "StringValue": message.request_id}
    body = {
        BULK_CHANGE_ID: message.bulk_change_id,
        DEVICE_CHANGE_ID: message.device_change_id,
        RETRY_NUMBER: message.retry_number,
        AUTOMATED: message.is_automated,
        REQUEST_ID: message.request_id,
    }
    return {"MessageAttributes": attributes, "MessageBody": json.dumps(body)}


def decode(raw: Mapping[str, Any]) -> QueueMessage:
    """Parse a received SQS message; MalformedMessage says why it cannot be used."""
    attributes = {
        str(name).lower(): value.get("StringValue")
        for name, value in (raw.get("MessageAttributes") or {}).items()
        if isinstance(value, Mapping)
    }
    body: dict[str, Any] = {}
    try:
        parsed = json.loads(raw.get("Body") or "")
        if isinstance(parsed, dict):
            body = {str(key).lower(): value for key, value in parsed.items()}
    except ValueError:
        pass  # "Not used" and other plain bodies carry nothing

    def field(name: str) -> Any:
        value = attributes.get(name.lower())
        return value if value not in (None, "") else body.get(name.lower())

    bulk_change_id = _integer(BULK_CHANGE_ID, field(BULK_CHANGE_ID), required=True)
    if bulk_change_id <= 0:
        raise MalformedMessage(f"{BULK_CHANGE_ID} must be > 0, got {bulk_change_id}")
    return QueueMessage(
        bulk_change_id=bulk_change_id,
        device_change_id=_integer(DEVICE_CHANGE_ID, field(DEVICE_CHANGE_ID)),
        retry_number=_integer(RETRY_NUMBER, field(RETRY_NUMBER)),
        is_automated=_boolean(AUTOMATED, field(AUTOMATED)),
        request_id=str(field(REQUEST_ID) or "")[:200],
    )


def _integer(name: str, value: Any, *, required: bool = False) -> int:
    if value is None or value == "":
        if required:
            raise MalformedMessage(f"{name} is missing")
        return 0
    if isinstance(value, bool):
        raise MalformedMessage(f"{name} is not a number: {value!r}")
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if text.endswith(".0"):  # a .NET decimal written as text
            text = text[:-2]
        if not text.lstrip("-").isdigit():
            raise MalformedMessage(f"{name} is not a number: {str(value)[:50]!r}")
        number = int(text)
    if number < 0:
        raise MalformedMessage(f"{name} must not be negative, got {number}")
    return number


def _boolean(name: str, value: Any) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in {"true", "false"}:
        raise MalformedMessage(f"{name} must be true or false, got {str(value)[:50]!r}")
    return text == "true"


# --- Client ----------------------------------------------------------------------------------

# What each kind of caller needs from botocore. ``send``: workers' and commands' short calls,
# with botocore's standard retries (a send that still fails is re-sent by the reaper).
# ``poll``: the long poll; no botocore retries — the poller's own loop retries with backoff and
# logs the outage once (``consumer.SqsConsumer``), and a dead endpoint costs at most the connect
# timeout or the long-poll wait plus the read margin. ``status``: the reads behind pages and
# /healthz, which must answer within about a second when SQS is slow or down.
SEND, POLL, STATUS = "send", "poll", "status"
POLL_READ_MARGIN_SECONDS = 5


def _client_config(purpose: str) -> Config:
    if purpose == POLL:
        return Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=3,
            read_timeout=settings.BULKCHANGE_SQS_WAIT_SECONDS + POLL_READ_MARGIN_SECONDS,
        )
    if purpose == STATUS:
        timeout = settings.PONDOPS_SQS_STATUS_TIMEOUT_SECONDS
        return Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=timeout,
        )
    if purpose == SEND:
        return Config(
            retries={"total_max_attempts": 3, "mode": "standard"},
            connect_timeout=3,
            read_timeout=10,
        )
    raise ValueError(f"unknown SQS client purpose {purpose!r}")


@cache
def sqs_client(purpose: str = SEND) -> SQSClient:
    """One client per process and purpose (``SEND``, ``POLL``, ``STATUS``: their timeouts and
    retries differ). Credentials come from boto3's chain; dummy ones only for a loopback
    endpoint (a local SQS server)."""
    endpoint = settings.AWS_ENDPOINT_URL_SQS or None
    kwargs: dict[str, Any] = {"region_name": settings.AWS_REGION, "config": _client_config(purpose)}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
        if is_loopback_url(endpoint):
            kwargs.update(aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106
    client: SQSClient = boto3.client("sqs", **kwargs)
    return client


# --- Errors ----------------------------------------------------------------------------------

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "RequestThrottled",
        "RequestThrottledException",
        "AWS.SimpleQueueService.RequestThrottled",
        "OverLimit",
        "AWS.SimpleQueueService.OverLimit",
        "TooManyRequestsException",
    }
)


class SqsUnavailable(Exception):
    """SQS could not be reached, throttled us, failed (5xx) or refused a call; ``reason`` is
    one line for a log or a heartbeat (no credentials: AWS's messages carry none)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def sqs_error_reason(error: BaseException) -> str | None:
    """The one classifier of SQS failures: a short reason for an error that means "SQS is not
    serving us right now" — connection errors and timeouts, throttling, 5xx and any other
    refusal (a queue that is missing while it is recreated, credentials being rotated) — or
    None for a bug on our side (botocore's parameter validation, anything not from botocore)."""
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", "") or "unknown")
        message = str(error.response.get("Error", {}).get("Message", "") or "")[:200]
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in THROTTLING_CODES:
            kind = "throttled"
        elif status >= 500:
            kind = f"server error {status}"
        else:
            kind = f"refused (HTTP {status or '?'})"
        return f"{kind}: {code}" + (f": {message}" if message else "")
    if isinstance(error, (BotoCoreConnectionError, HTTPClientError)):
        return f"unreachable: {type(error).__name__}: {str(error)[:200]}"
    if isinstance(error, BotoCoreError) and not isinstance(error, ParamValidationError):
        return f"{type(error).__name__}: {str(error)[:200]}"
    return None


@contextmanager
def sqs_call(operation: str) -> Iterator[None]:
    """Run SQS calls, raising :class:`SqsUnavailable` (``from`` botocore's error) for every
    failure :func:`sqs_error_reason` recognises; anything else propagates unchanged."""
    try:
        yield
    except (BotoCoreError, ClientError) as error:
        reason = sqs_error_reason(error)
        if reason is None:
            raise
        raise SqsUnavailable(f"{operation}: {reason}") from error


def queue_url() -> str:
    url: str = settings.PONDOPS_SQS_QUEUE_URL
    if not url:
        raise RuntimeError("PONDOPS_SQS_QUEUE_URL is not set")
    return url


def send(message: QueueMessage, *, delay_seconds: int = 0) -> str | None:
    """Send ``message``; returns its SQS id, or None when the send failed (logged — the reaper
    re-sends overdue work from the database, so nothing is stranded)."""
    extra = {
        "bulk_change_id": message.bulk_change_id,
        "device_change_id": message.device_change_id,
        "request_id": message.request_id,
    }
    try:
        response = sqs_client().send_message(
            QueueUrl=queue_url(), DelaySeconds=max(0, min(900, delay_seconds)), **encode(message)
        )
    except Exception:
        logger.exception(
            "SQS send failed for bulk change %s device change %s; the reaper will re-send it",
            message.bulk_change_id,
            message.device_change_id,
            extra=extra,
        )
        return None
    logger.info(
        "queued bulk change %s device change %s retry %s (delay %ss)",
        message.bulk_change_id,
        message.device_change_id,
        message.retry_number,
        delay_seconds,
        extra=extra,
    )
    return str(response.get("MessageId", ""))


def send_bulk_change(bulk_change_id: int, *, request_id: str = "") -> str | None:
    return send(QueueMessage(bulk_change_id=bulk_change_id, request_id=request_id))


def send_device_retry(
    *,
    bulk_change_id: int,
    device_change_id: int,
    retry_number: int,
    delay_seconds: int,
    request_id: str = "",
) -> str | None:
    return send(
        QueueMessage(
            bulk_change_id=bulk_change_id,
            device_change_id=device_change_id,
            retry_number=retry_number,
            request_id=request_id,
        ),
        delay_seconds=delay_seconds,
    )


def dlq_url() -> str:
    url: str = settings.PONDOPS_SQS_DLQ_URL
    if not url:
        raise RuntimeError("PONDOPS_SQS_DLQ_URL is not set")
    return url


def queue_depth(*, url: str, client: SQSClient) -> dict[str, int]:
    """Approximate visible / in-flight / delayed counts of the queue at ``url``."""
    with sqs_call("get_queue_attributes"):
        attributes = client.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
    return {key: int(value) for key, value in attributes.items()}


@dataclass(frozen=True)
class PeekedMessage:
    """A message seen on a queue without consuming it."""

    message_id: str
    receipt_handle: str
    body: str
    message_attributes: Mapping[str, Any]
    sent_at: datetime | None  # SentTimestamp: when it was first sent (kept in the DLQ)
    receive_count: int  # ApproximateReceiveCount, peeks included

    def send_arguments(self) -> dict[str, Any]:
        """``send_message`` keyword arguments that put this message back, unchanged."""
        return {"MessageBody": self.body, "MessageAttributes": dict(self.message_attributes)}


def queue_receive(
    *, url: str, client: SQSClient, visibility_timeout: int, max_messages: int = 10
) -> list[PeekedMessage]:
    """One short-poll receive with its system attributes. ``visibility_timeout`` 0 peeks (the
    messages stay visible); more hides them from other receivers for that long."""
    with sqs_call("receive_message"):
        response = client.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=0,
            VisibilityTimeout=visibility_timeout,
            MessageAttributeNames=["All"],
            AttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
        )
    return [_peeked(raw) for raw in response.get("Messages", [])]


def queue_browse(*, url: str, client: SQSClient, limit: int = 100) -> list[PeekedMessage]:
    """Up to ``limit`` messages of the queue, each once: received in batches hidden for
    ``BROWSE_VISIBILITY_SECONDS`` (so a batch never repeats the one before), then made visible
    again at once. For the dead-letter queue's page; never for the live queue (the poller would
    not see them for that moment)."""
    seen: dict[str, PeekedMessage] = {}
    try:
        while len(seen) < limit:
            batch = queue_receive(
                url=url,
                client=client,
                visibility_timeout=BROWSE_VISIBILITY_SECONDS,
                max_messages=limit - len(seen),
            )
            fresh = [message for message in batch if message.message_id not in seen]
            if not fresh:
                break
            seen.update((message.message_id, message) for message in fresh)
    finally:
        queue_make_visible(url=url, client=client, messages=list(seen.values()))
    return list(seen.values())


BROWSE_VISIBILITY_SECONDS = 30


def queue_make_visible(*, url: str, client: SQSClient, messages: list[PeekedMessage]) -> None:
    """Make received messages visible again at once. Best effort: a message this fails for
    becomes visible when its visibility timeout ends (logged)."""
    for start in range(0, len(messages), 10):
        entries: list[Any] = [
            {"Id": str(n), "ReceiptHandle": message.receipt_handle, "VisibilityTimeout": 0}
            for n, message in enumerate(messages[start : start + 10])
        ]
        try:
            with sqs_call("change_message_visibility_batch"):
                client.change_message_visibility_batch(QueueUrl=url, Entries=entries)
        except SqsUnavailable as error:
            logger.warning("%s messages stay hidden until their timeout: %s", len(entries), error)


def _peeked(raw: Mapping[str, Any]) -> PeekedMessage:
    attributes = raw.get("Attributes") or {}
    sent = str(attributes.get("SentTimestamp", ""))
    return PeekedMessage(
        message_id=str(raw.get("MessageId", "")),
        receipt_handle=str(raw.get("ReceiptHandle", "")),
        body=str(raw.get("Body", "")),
        message_attributes=raw.get("MessageAttributes") or {},
        sent_at=datetime.fromtimestamp(int(sent) / 1000, tz=UTC) if sent.isdigit() else None,
        receive_count=int(str(attributes.get("ApproximateReceiveCount", "0")) or 0),
    )
