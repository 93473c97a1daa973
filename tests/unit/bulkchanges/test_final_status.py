"""The one place that decides a bulk change's final status."""

from __future__ import annotations

import pytest

from bulkchanges.selectors import final_status


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({"PROCESSED": 3}, "PROCESSED"),
        ({"PROCESSED": 1, "SKIPPED": 2}, "PROCESSED"),
        ({"SKIPPED": 2, "CANCELLED": 5}, "PROCESSED"),
        ({"ERROR": 2}, "ERROR"),
        ({"ERROR": 1, "CANCELLED": 3}, "ERROR"),
        ({"CANCELLED": 3}, "ERROR"),
        ({"PROCESSED": 1, "ERROR": 1}, "PROCESSED_WITH_ERRORS"),
        ({"PROCESSED": 1, "PENDING": 1}, None),
        ({"PROCESSED": 1, "RETRY_SCHEDULED": 1}, None),
        ({"ERROR": 1, "PROCESSING": 1}, None),
    ],
)
def test_final_status_ignores_cancelled_devices(
    counts: dict[str, int], expected: str | None
) -> None:
    assert final_status(counts) == expected
