"""Shared fakes and helpers of the carrier client tests."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
import responses

from integrations.base import CallRecord, IntegrationError


class RecordingThrottle:
    """A :class:`~integrations.base.Throttle` that records: requests sent through it, how many
    held it at once (at most one in these single-threaded tests), and 429 penalties."""

    def __init__(self) -> None:
        self.acquired = 0
        self.holding = 0
        self.peak = 0
        self.penalties: list[float] = []

    @contextmanager
    def call(self) -> Iterator[None]:
        self.acquired += 1
        self.holding += 1
        self.peak = max(self.peak, self.holding)
        try:
            yield
        finally:
            self.holding -= 1

    def penalise(self, seconds: float) -> None:
        self.penalties.append(seconds)


class FakeTime:
    """An asynchronous processor's poll seams (``clock``, ``sleep``): sleeping moves the clock
    on, nothing waits, and the sleeps are recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def sent(mocked: responses.RequestsMock, index: int) -> requests.PreparedRequest:
    """The ``index``-th request the client sent."""
    request = mocked.calls[index].request
    assert isinstance(request, requests.PreparedRequest)
    return request


def sent_json(request: requests.PreparedRequest) -> Any:
    """A sent request's JSON body."""
    assert request.body is not None
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    return json.loads(body)


def http_date(seconds_from_now: float) -> str:
    """A Retry-After in its HTTP-date form."""
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


def assert_fails_as(
    call: Callable[[], object],
    *,
    error_type: type[IntegrationError],
    message: str,
    audit: list[CallRecord],
    status: int | None,
) -> IntegrationError:
    """``call()`` makes one HTTP call and raises exactly ``error_type`` with ``message`` (no
    traceback text in it), carrying that call's audit record, which has ``status``."""
    with pytest.raises(error_type) as raised:
        call()
    error = raised.value
    assert type(error) is error_type
    assert error.message == message
    assert str(error) == message
    assert "Traceback" not in error.message
    assert len(audit) == 1
    assert error.call is audit[0]
    assert audit[0].response_status == status
    return error
