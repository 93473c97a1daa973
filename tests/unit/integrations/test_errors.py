"""The one classifier of HTTP statuses and Retry-After parsing: small pure functions,
table-driven (how CarrierHttp applies them is test_http.py)."""

from __future__ import annotations

import pytest

from integrations.base import is_transient_status, parse_retry_after


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (409, False),
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (501, False),
    ],
)
def test_status_classification_follows_the_carrier_contracts(status: int, transient: bool) -> None:
    assert is_transient_status(status) is transient


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 120 ", 120.0),
        ("garbage", None),
        ("-5", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 60.0),
        ("Wed, 21 Oct 2015 07:26:00 GMT", 0.0),  # already past: retry now
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    header: str | None, expected: float | None
) -> None:
    now = 1445412420.0  # 2015-10-21 07:27:00 UTC
    assert parse_retry_after(header, now=now) == expected
