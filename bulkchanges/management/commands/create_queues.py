"""``manage.py create_queues`` — create the bulk-change queue and its dead-letter queue."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from bulkchanges import sqs


class Command(BaseCommand):
    help = "Create the SQS queue and its DLQ (RedrivePolicy) and print both URLs."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default="pondops-bulk-changes")
        parser.add_argument("--visibility-timeout", type=int, default=60)
        parser.add_argument("--max-receive-count", type=int, default=5)

    def handle(self, *args: Any, **options: Any) -> None:
        client = sqs.sqs_client()
        name = options["name"]
        dlq_url = client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
        dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        attributes: dict[Any, str] = {
            "VisibilityTimeout": str(options["visibility_timeout"]),
            "RedrivePolicy": json.dumps(
                {
                    "deadLetterTargetArn": dlq_arn,
                    "maxReceiveCount": str(options["max_receive_count"]),
                }
            ),
        }
        queue_url = client.create_queue(QueueName=name)["QueueUrl"]
        client.set_queue_attributes(QueueUrl=queue_url, Attributes=attributes)
        self.stdout.write(f"PONDOPS_SQS_QUEUE_URL={queue_url}")
        self.stdout.write(f"PONDOPS_SQS_DLQ_URL={dlq_url}")
