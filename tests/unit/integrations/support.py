"""Shared fakes and helpers of the carrier client tests."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
import responses


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
