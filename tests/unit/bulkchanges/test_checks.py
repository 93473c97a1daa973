"""The timing system checks (bulkchanges/checks.py): each relation correctness needs is an
Error naming its settings, and the defaults pass."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.core.checks import CheckMessage, run_checks
from django.test import override_settings

from bulkchanges.services.processing.claims import DEVICE_LEASES


def timing_errors() -> dict[str, list[CheckMessage]]:
    found: dict[str, list[CheckMessage]] = {}
    for message in run_checks(tags=["pondops"]):
        found.setdefault(message.id or "", []).append(message)
    return found


def q_cluster(**changes: Any) -> dict[str, Any]:
    return {**settings.Q_CLUSTER, **changes}


def test_the_defaults_pass() -> None:
    assert timing_errors() == {}


def test_the_shortest_leases_the_tests_use_pass() -> None:
    """Renewed every third of their length, leases of any length keep three renewals (the
    check allows for lease / 3 * 3 rounding up)."""
    for lease in (0.23, 3, 4, 6):
        with override_settings(BULKCHANGE_LEASE_SECONDS=lease, BULKCHANGE_SLOT_LEASE_SECONDS=lease):
            assert timing_errors() == {}, lease


@pytest.mark.parametrize(
    ("timeout", "retry"),
    [(300, 300), (300, 303), (400, 360)],
    ids=["equal", "within-the-kill-margin", "retry-shorter"],
)
def test_a_retry_not_beyond_the_task_timeout_is_an_error(timeout: int, retry: int) -> None:
    with override_settings(Q_CLUSTER=q_cluster(timeout=timeout, retry=retry)):
        (error,) = timing_errors()["pondops.E010"]
    assert "BULKCHANGE_TASK_RETRY" in error.msg and "BULKCHANGE_TASK_TIMEOUT" in error.msg
    assert "run a second time" in error.msg
    assert (
        error.hint
        == "Set BULKCHANGE_TASK_RETRY above BULKCHANGE_TASK_TIMEOUT + 3 (defaults 360 and 300)."
    )


def test_a_retry_just_beyond_the_kill_margin_passes() -> None:
    with override_settings(Q_CLUSTER=q_cluster(timeout=300, retry=304)):
        assert "pondops.E010" not in timing_errors()


def test_no_task_timeout_is_an_error_and_ends_the_timing_checks() -> None:
    with override_settings(
        Q_CLUSTER=q_cluster(timeout=None), BULKCHANGE_DB_OUTAGE_WAIT_SECONDS=9e9
    ):
        errors = timing_errors()
    assert list(errors) == ["pondops.E010"]
    assert "Q_CLUSTER['timeout'] is None" in errors["pondops.E010"][0].msg


@pytest.mark.parametrize("wait", [300, 301])
def test_a_database_outage_wait_not_inside_the_task_timeout_is_an_error(wait: float) -> None:
    with override_settings(BULKCHANGE_DB_OUTAGE_WAIT_SECONDS=wait):
        (error,) = timing_errors()["pondops.E011"]
    assert "BULKCHANGE_DB_OUTAGE_WAIT_SECONDS" in error.msg
    assert "BULKCHANGE_TASK_TIMEOUT" in error.msg
    with override_settings(BULKCHANGE_DB_OUTAGE_WAIT_SECONDS=299):
        assert "pondops.E011" not in timing_errors()


def test_a_device_lease_renewed_less_than_three_times_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The interval comes from the code (a third of the lease): a change that renews less
    often is caught, not silently allowed to shorten the margin."""
    monkeypatch.setattr(DEVICE_LEASES, "interval", lambda: settings.BULKCHANGE_LEASE_SECONDS / 2)
    (error,) = timing_errors()["pondops.E012"]
    assert error.msg.startswith(
        "A claimed or handed-off device's lease (BULKCHANGE_LEASE_SECONDS=30 s)"
    )
    assert "renewed every 15 s" in error.msg


def test_a_slot_lease_renewed_less_than_three_times_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bulkchanges import ratelimit

    monkeypatch.setattr(ratelimit, "slot_renewal_interval", lambda: 5.0)
    (error,) = timing_errors()["pondops.E013"]
    assert "BULKCHANGE_SLOT_LEASE_SECONDS=10 s" in error.msg and "every 5 s" in error.msg


def test_a_device_attempt_longer_than_the_task_timeout_is_an_error() -> None:
    # 2 * (5 + 120) + 60 = 310 s > 300 s
    with override_settings(BULKCHANGE_HTTP_READ_TIMEOUT=120, BULKCHANGE_CONFIRM_SECONDS=60):
        (error,) = timing_errors()["pondops.E014"]
    assert error.msg.startswith("One device's CONFIRM attempt can take 310 s")
    for name in (
        "BULKCHANGE_HTTP_CONNECT_TIMEOUT",
        "BULKCHANGE_HTTP_READ_TIMEOUT",
        "BULKCHANGE_CONFIRM_SECONDS",
        "BULKCHANGE_TASK_TIMEOUT",
    ):
        assert name in error.msg
    with override_settings(BULKCHANGE_HTTP_READ_TIMEOUT=100, BULKCHANGE_CONFIRM_SECONDS=60):
        assert "pondops.E014" not in timing_errors()  # 270 s


def test_sqs_waits_beyond_what_sqs_accepts_are_errors() -> None:
    with override_settings(
        BULKCHANGE_SQS_WAIT_SECONDS=21, BULKCHANGE_MALFORMED_VISIBILITY_SECONDS=43201
    ):
        errors = timing_errors()["pondops.E015"]
    assert [error.msg.split(" is ")[0] for error in errors] == [
        "BULKCHANGE_SQS_WAIT_SECONDS",
        "BULKCHANGE_MALFORMED_VISIBILITY_SECONDS",
    ]
    with override_settings(
        BULKCHANGE_SQS_WAIT_SECONDS=20, BULKCHANGE_MALFORMED_VISIBILITY_SECONDS=43200
    ):
        assert "pondops.E015" not in timing_errors()


def test_manage_py_check_names_the_settings_and_fails() -> None:
    """A process refuses to start: the check runs in a fresh interpreter with the variables."""
    from tests.fixtures.fresh_settings import django_setup_fresh

    result = django_setup_fresh(
        {"BULKCHANGE_TASK_TIMEOUT": "400"},
        code="from django.core.management import call_command; call_command('check')",
    )
    assert result.returncode != 0
    assert "pondops.E010" in result.stderr
    assert "BULKCHANGE_TASK_RETRY above BULKCHANGE_TASK_TIMEOUT + 3" in result.stderr
