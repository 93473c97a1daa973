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
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
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


@cache
def sqs_client() -> SQSClient:
    """One client per process. Credentials come from boto3's chain; dummy ones only for a
    loopback endpoint (a local SQS server)."""
    endpoint = settings.AWS_ENDPOINT_URL_SQS or None
    kwargs: dict[str, Any] = {
        "region_name": settings.AWS_REGION,
        "config": Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=settings.BULKCHANGE_SQS_WAIT_SECONDS + 10,
        ),
    }
    if endpoint:
        kwargs["endpoint_url"] = endpoint
        if is_loopback_url(endpoint):
            kwargs.update(aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106
    client: SQSClient = boto3.client("sqs", **kwargs)
    return client


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


def queue_depth() -> dict[str, int]:
    """Approximate visible / in-flight / delayed counts (for the dashboard and health)."""
    attributes = sqs_client().get_queue_attributes(
        QueueUrl=queue_url(),
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return {key: int(value) for key, value in attributes.items()}


def dlq_redrive(*, max_messages: int = 10_000, dry_run: bool = False) -> int:
    """Move messages from the dead-letter queue back to the queue (after a fix), attributes
    and body unchanged; a message is deleted from the DLQ only after its copy was sent.
    Returns the messages moved (or, with ``dry_run``, seen)."""
    dlq_url: str = settings.PONDOPS_SQS_DLQ_URL
    if not dlq_url:
        raise RuntimeError("PONDOPS_SQS_DLQ_URL is not set")
    client, moved = sqs_client(), 0
    while moved < max_messages:
        batch = client.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, max_messages - moved),
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            VisibilityTimeout=0 if dry_run else 60,
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            if not dry_run:
                client.send_message(
                    QueueUrl=queue_url(),
                    MessageBody=message["Body"],
                    MessageAttributes=message.get("MessageAttributes", {}),
                )
                client.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
        if dry_run:
            break  # messages stay visible; one batch shows what is there
    logger.info(
        "redrive: %s %s messages from the dead-letter queue", "saw" if dry_run else "moved", moved
    )
    return moved
