"""Fixtures of the focused carrier client tests (``responses``; no network, no database)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from integrations.base import CallRecord
from tests.unit.integrations.support import FakeTime, RecordingThrottle


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """Every request must match a registered response, and every response must be used."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


@pytest.fixture
def audit() -> list[CallRecord]:
    """The audit records the client under test reports (its ``on_call``)."""
    return []


@pytest.fixture
def throttle() -> RecordingThrottle:
    return RecordingThrottle()


@pytest.fixture
def fake_time() -> FakeTime:
    """Poll seams for an asynchronous processor: sleeping moves the clock on, instantly."""
    return FakeTime()
