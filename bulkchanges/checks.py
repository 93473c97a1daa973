"""System checks for the timing settings that correctness depends on (docs/operations/
timings.md). Each broken relation is an Error, so ``manage.py check``, ``migrate``,
``runserver`` and every process's start name the settings to change before any task runs.

The relations, with the mechanism as built:

- E010 django-q2's ``timeout`` < its ``retry`` (by more than the 3 s django-q2's guard adds
  before it kills a timed-out worker): the ORM broker offers a task again once ``retry``
  seconds pass unacknowledged, so a retry within a live task's life runs it twice at once.
- E011 BULKCHANGE_DB_OUTAGE_WAIT_SECONDS < the task timeout: a task waits out a database
  outage and then fails cleanly; killed by the timeout mid-wait instead, its chunk is lost to
  the Redis broker and waits for the stalled-bulk-change rule.
- E012, E013 each lease ≥ 3 of its keeper's renewal intervals (bulkchanges/leases.py): a live
  process keeps what it holds through a missed or slow renewal.
- E014 one device's CONFIRM attempt — the SUBMIT call, the confirm budget, the last poll — fits
  in the task timeout: a device that needs longer is killed mid-step on every attempt.
- E015 the SQS waits within what SQS accepts (long poll ≤ 20 s, visibility ≤ 12 h).

Not a rule: "retry < lease". The leases are short and renewed while their process lives (issue
11), so a live worker's lease never runs out however long its task takes; what has to outlive a
task is the renewal, not the lease. A lease longer than ``retry`` (> 360 s) would only bring
back the frozen account of a killed worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error

# django-q2's guard kills a worker this long after its task's timeout (django_q/worker.py adds
# it to the timer), so a task can live until timeout + this.
DJANGO_Q_KILL_MARGIN_SECONDS = 3
# Renewals that may be missed or slow before a live holder's lease runs out, plus the one due.
RENEWALS_PER_LEASE = 3
# Amazon SQS's limits: ReceiveMessage's WaitTimeSeconds and a message's VisibilityTimeout.
SQS_MAX_WAIT_SECONDS = 20
SQS_MAX_VISIBILITY_SECONDS = 12 * 3600
# Carrier calls a device makes in a CONFIRM attempt besides its polls: the SUBMIT, one poll
# started just before the budget ends.
CONFIRM_ATTEMPT_CALLS = 2


def timings_check(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Every timing relation above that the current settings break."""
    errors: list[CheckMessage] = []
    timeout = settings.Q_CLUSTER.get("timeout")
    retry = settings.Q_CLUSTER.get("retry", 60)  # django-q2's default
    if not timeout or timeout <= 0:
        errors.append(
            Error(
                f"Q_CLUSTER['timeout'] is {timeout!r}: a hung task would hold its worker and "
                "its chunk for ever",
                hint="Set BULKCHANGE_TASK_TIMEOUT to a number of seconds (default 300).",
                id="pondops.E010",
            )
        )
        return errors  # the relations below are all against the timeout
    if retry <= timeout + DJANGO_Q_KILL_MARGIN_SECONDS:
        errors.append(
            Error(
                f"django-q2 retries a task after {retry} s (BULKCHANGE_TASK_RETRY) while a task "
                f"may run {timeout} s (BULKCHANGE_TASK_TIMEOUT) plus the "
                f"{DJANGO_Q_KILL_MARGIN_SECONDS} s django-q2 takes to kill it: a live task "
                "would be run a second time at once",
                hint=(
                    "Set BULKCHANGE_TASK_RETRY above BULKCHANGE_TASK_TIMEOUT + "
                    f"{DJANGO_Q_KILL_MARGIN_SECONDS} (defaults 360 and 300)."
                ),
                id="pondops.E010",
            )
        )
    outage_wait = float(settings.BULKCHANGE_DB_OUTAGE_WAIT_SECONDS)
    if outage_wait >= timeout:
        errors.append(
            Error(
                f"A task waits up to {outage_wait:g} s for an unreachable database "
                f"(BULKCHANGE_DB_OUTAGE_WAIT_SECONDS) but is killed after {timeout} s "
                "(BULKCHANGE_TASK_TIMEOUT): it would die mid-wait instead of failing cleanly",
                hint="Keep BULKCHANGE_DB_OUTAGE_WAIT_SECONDS well below BULKCHANGE_TASK_TIMEOUT "
                "(defaults 120 and 300).",
                id="pondops.E011",
            )
        )
    errors += _lease_errors()
    errors += _device_attempt_errors(timeout)
    errors += _sqs_errors()
    return errors


def _lease_errors() -> list[CheckMessage]:
    from bulkchanges.ratelimit import slot_renewal_interval
    from bulkchanges.services.processing.claims import DEVICE_LEASES

    leases = [
        ("BULKCHANGE_LEASE_SECONDS", "a claimed or handed-off device's", DEVICE_LEASES.interval(),
         "pondops.E012"),
        ("BULKCHANGE_SLOT_LEASE_SECONDS", "a concurrency slot's", slot_renewal_interval(),
         "pondops.E013"),
    ]  # fmt: skip
    errors: list[CheckMessage] = []
    for name, what, interval, check_id in leases:
        lease = float(getattr(settings, name))
        if lease < RENEWALS_PER_LEASE * interval - 1e-9:  # lease / 3 * 3 may round up
            errors.append(
                Error(
                    f"{what.capitalize()} lease ({name}={lease:g} s) is renewed every "
                    f"{interval:g} s: fewer than {RENEWALS_PER_LEASE} renewals fit in it, so "
                    "one slow or missed renewal loses a live process's lease",
                    hint=f"Make {name} at least {RENEWALS_PER_LEASE} renewal intervals long.",
                    id=check_id,
                )
            )
    return errors


def _device_attempt_errors(timeout: float) -> list[CheckMessage]:
    call = float(settings.BULKCHANGE_HTTP_CONNECT_TIMEOUT) + float(
        settings.BULKCHANGE_HTTP_READ_TIMEOUT
    )
    attempt = CONFIRM_ATTEMPT_CALLS * call + float(settings.BULKCHANGE_CONFIRM_SECONDS)
    if attempt < timeout:
        return []
    return [
        Error(
            f"One device's CONFIRM attempt can take {attempt:g} s — a SUBMIT call and a last "
            f"poll of {call:g} s each (BULKCHANGE_HTTP_CONNECT_TIMEOUT + "
            "BULKCHANGE_HTTP_READ_TIMEOUT) and the confirm budget "
            f"(BULKCHANGE_CONFIRM_SECONDS) — but a task is killed after {timeout} s "
            "(BULKCHANGE_TASK_TIMEOUT): a slow carrier's device would be killed mid-step on "
            "every attempt",
            hint="Raise BULKCHANGE_TASK_TIMEOUT (and BULKCHANGE_TASK_RETRY above it) or lower "
            "the HTTP timeouts or BULKCHANGE_CONFIRM_SECONDS.",
            id="pondops.E014",
        )
    ]


def _sqs_errors() -> list[CheckMessage]:
    limits = [
        ("BULKCHANGE_SQS_WAIT_SECONDS", SQS_MAX_WAIT_SECONDS, "a long poll", 20),
        ("BULKCHANGE_MALFORMED_VISIBILITY_SECONDS", SQS_MAX_VISIBILITY_SECONDS,
         "a visibility timeout", 10),
    ]  # fmt: skip
    errors: list[CheckMessage] = []
    for name, limit, what, default in limits:
        value = int(getattr(settings, name))
        if value > limit:
            errors.append(
                Error(
                    f"{name} is {value}: SQS refuses {what} over {limit} s, so every such "
                    "call would fail",
                    hint=f"Set {name} to at most {limit} (default {default}).",
                    id="pondops.E015",
                )
            )
    return errors
