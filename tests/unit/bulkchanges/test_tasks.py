"""django-q2 tasks wait out a lost database connection instead of failing (a failed task is gone
with the Redis broker, and its unclaimed devices with it)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError

from bulkchanges import tasks


def test_a_task_runs_again_once_the_database_is_back(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(tasks.time, "sleep", slept.append)
    monkeypatch.setattr(tasks, "close_old_connections", lambda: None)
    answers: list[Any] = [OperationalError("server closed"), OperationalError("refused"), 7]

    def work() -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return int(answer)

    assert tasks._through_database_outages("devices [1]", work) == 7
    assert len(slept) == 2 and all(0 < delay <= 30 for delay in slept)


def test_a_task_fails_once_the_outage_outlasts_its_wait(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.BULKCHANGE_DB_OUTAGE_WAIT_SECONDS = 0
    monkeypatch.setattr(tasks.time, "sleep", lambda seconds: None)

    def work() -> int:
        raise OperationalError("still down")

    with pytest.raises(OperationalError, match="still down"):
        tasks._through_database_outages("devices [1]", work)


def test_other_errors_are_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def work() -> int:
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        tasks._through_database_outages("devices [1]", work)
    assert calls == [1]
