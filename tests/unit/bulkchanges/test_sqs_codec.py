"""The SQS message contract (docs/architecture.md §5): our format and the legacy producers'."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bulkchanges.sqs import MalformedMessage, QueueMessage, decode, encode


def attrs(**values: tuple[str, str]) -> dict[str, Any]:
    return {
        name: {"DataType": kind, "StringValue": value} for name, (kind, value) in values.items()
    }


def test_our_messages_round_trip_with_number_attributes_and_a_json_body() -> None:
    message = QueueMessage(
        bulk_change_id=7, device_change_id=42, retry_number=3, is_automated=True, request_id="req-1"
    )
    sent = encode(message)
    assert sent["MessageAttributes"]["BulkChangeId"] == {"DataType": "Number", "StringValue": "7"}
    assert sent["MessageAttributes"]["IsFromAutomatedUpdateDeviceStatusLambda"] == {
        "DataType": "String",
        "StringValue": "true",
    }
    assert json.loads(sent["MessageBody"])["M2MDeviceChangeId"] == 42
    received = {"MessageAttributes": sent["MessageAttributes"], "Body": sent["MessageBody"]}
    assert decode(received) == message


def test_legacy_messages_with_string_attributes_and_dotnet_booleans_are_accepted() -> None:
    raw = {
        "Body": "Not used",
        "MessageAttributes": attrs(
            BulkChangeId=("String", "15"),
            M2MDeviceChangeId=("String", "0"),
            RetryNumber=("String", "2"),
            IsFromAutomatedUpdateDeviceStatusLambda=("String", "True"),
            NewServiceActivations=("String", "[]"),
            ServiceProviderId=("String", "3"),
        ),
    }
    assert decode(raw) == QueueMessage(bulk_change_id=15, retry_number=2, is_automated=True)


def test_attributes_win_over_the_body_and_the_body_fills_gaps() -> None:
    raw = {
        "Body": json.dumps({"BulkChangeId": 99, "RetryNumber": 4, "RequestId": "from-body"}),
        "MessageAttributes": attrs(BulkChangeId=("Number", "5")),
    }
    assert decode(raw) == QueueMessage(bulk_change_id=5, retry_number=4, request_id="from-body")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"Body": "Not used"}, "BulkChangeId is missing"),
        (
            {"Body": "{}", "MessageAttributes": attrs(BulkChangeId=("Number", "abc"))},
            "BulkChangeId is not a number: 'abc'",
        ),
        (
            {"Body": "", "MessageAttributes": attrs(BulkChangeId=("Number", "0"))},
            "BulkChangeId must be > 0",
        ),
        (
            {
                "Body": "",
                "MessageAttributes": attrs(
                    BulkChangeId=("String", "1"), RetryNumber=("String", "-1")
                ),
            },
            "RetryNumber must not be negative",
        ),
        (
            {
                "Body": "",
                "MessageAttributes": attrs(
                    BulkChangeId=("String", "1"),
                    IsFromAutomatedUpdateDeviceStatusLambda=("String", "maybe"),
                ),
            },
            "must be true or false",
        ),
    ],
)
def test_malformed_messages_say_why(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        decode(raw)
