"""The one classifier of SQS failures (``sqs.sqs_error_reason``) and its translation into
``SqsUnavailable``: what the poller waits out, and what is a bug that must surface."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from bulkchanges.sqs import SqsUnavailable, sqs_call, sqs_error_reason

URL = "http://127.0.0.1:9/"


def client_error(code: str, status: int, message: str = "") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "ReceiveMessage")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (EndpointConnectionError(endpoint_url=URL), "unreachable: EndpointConnectionError"),
        (ConnectTimeoutError(endpoint_url=URL), "unreachable: ConnectTimeoutError"),
        (ReadTimeoutError(endpoint_url=URL), "unreachable: ReadTimeoutError"),
        (ConnectionClosedError(endpoint_url=URL), "unreachable: ConnectionClosedError"),
        (client_error("ThrottlingException", 400, "Rate exceeded"), "throttled: Throttling"),
        (client_error("RequestThrottled", 403), "throttled: RequestThrottled"),
        (client_error("OverLimit", 403), "throttled: OverLimit"),
        (client_error("InternalError", 500), "server error 500: InternalError"),
        (client_error("ServiceUnavailable", 503), "server error 503: ServiceUnavailable"),
        (
            client_error("AWS.SimpleQueueService.NonExistentQueue", 400, "no such queue"),
            "refused (HTTP 400): AWS.SimpleQueueService.NonExistentQueue: no such queue",
        ),
        (NoCredentialsError(), "NoCredentialsError: Unable to locate credentials"),
    ],
)
def test_sqs_failures_are_reasons_to_wait(error: Exception, reason: str) -> None:
    found = sqs_error_reason(error)
    assert found is not None and found.startswith(reason)
    with pytest.raises(SqsUnavailable) as raised, sqs_call("receive_message"):
        raise error
    assert raised.value.reason.startswith(f"receive_message: {reason}")
    assert raised.value.__cause__ is error


@pytest.mark.parametrize(
    "error",
    [ParamValidationError(report="QueueUrl is required"), ValueError("a bug"), KeyError("x")],
)
def test_our_own_bugs_are_not_outages(error: Exception) -> None:
    assert sqs_error_reason(error) is None
    with pytest.raises(type(error)), sqs_call("receive_message"):
        raise error
