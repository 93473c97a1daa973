"""Completion webhooks: signed JSON summaries to a loopback receiver, our own retries with
backoff after receiver errors (an attempt row and an audit row per try), the sweep that
recovers lost work, and the URL rules."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_q.models import Schedule
from standardwebhooks import Webhook, WebhookVerificationError

from bulkchanges.apps import LEGACY_RECOVERY_SCHEDULES
from bulkchanges.models import BulkChange, BulkChangeLog, DeviceChange, WebhookDelivery
from bulkchanges.services import webhooks
from bulkchanges.services.processing import bulk_change_complete_if_done
from tests.api.conftest import API, Partner, Receiver, create_body
from tests.conftest import Queue, create_bulk_change, drain, iccids, seed_sims, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def loopback_ok(settings: Any) -> None:
    """Plain http to a loopback receiver only as an extra origin (tests/conftest.py lists the
    loopback origins; DEBUG makes no difference)."""
    settings.DEBUG = False
    settings.PONDOPS_WEBHOOK_EXTRA_ORIGINS = ["http://127.0.0.1:*"]


def run_schedules() -> None:
    """One pass of django-q2's scheduler (sync mode: due tasks run inline), limited to webhook
    attempts so the reaper's schedule does not run in these tests."""
    from django_q.scheduler import scheduler

    Schedule.objects.exclude(func=webhooks.SEND_TASK).delete()
    scheduler()


def signature_ok(secret: str, received: Any) -> bool:
    """Verified as a receiver does: the standardwebhooks library with the secret as partners
    are shown it."""
    receiver_secret = webhooks.webhook_secret_for_receivers(secret)
    try:
        Webhook(receiver_secret).verify(received.body, received.headers)
    except WebhookVerificationError:
        return False
    return True


def complete(
    partner: Partner, *, callback_url: str, devices: int = 2, errors: int = 0
) -> BulkChange:
    """A bulk change whose devices a worker has finished, completed through the real service."""
    bulk_change = create_bulk_change(partner.world, iccids(devices), with_rev=False)
    BulkChange.objects.filter(pk=bulk_change.pk).update(callback_url=callback_url)
    ids = list(DeviceChange.objects.filter(bulk_change=bulk_change).values_list("pk", flat=True))
    DeviceChange.objects.filter(pk__in=ids[:errors]).update(status="ERROR", is_processed=True)
    DeviceChange.objects.filter(pk__in=ids[errors:]).update(status="PROCESSED", is_processed=True)
    assert bulk_change_complete_if_done(bulk_change_id=bulk_change.pk, process_by="worker:test")
    bulk_change.refresh_from_db()
    return bulk_change


def test_a_bulk_change_created_through_the_api_calls_back_signed_when_it_finishes(
    partner: Partner,
    sqs_queue: Queue,
    inline_workers: None,
    receiver: Receiver,
    loopback_ok: None,
) -> None:
    numbers = iccids(5)
    seed_sims(partner.world, numbers)
    created = partner.client.post(
        f"{API}/bulk-changes/", create_body(numbers, callback_url=receiver.url)
    )
    assert created.status_code == 201, created.content
    bulk_change = drain(BulkChange.objects.get(pk=created.json()["id"]))

    (received,) = receiver.wait(1)
    partner.tenant.refresh_from_db()
    assert signature_ok(partner.tenant.webhook_secret, received)
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["X-PondOps-Event"] == "bulk_change.completed"
    assert received.headers["X-PondOps-Attempt"] == "1"
    payload = received.json()
    assert payload["event"] == "bulk_change.completed"
    assert payload["event_id"].startswith(f"bulk-change-{bulk_change.pk}-completed-")
    summary = payload["bulk_change"]
    assert summary["id"] == bulk_change.pk and summary["status"] == "PROCESSED"
    assert summary["progress"]["total"] == 5 and summary["progress"]["succeeded"] == 5
    assert summary["processed_at"] and summary["target_status"] == "SUSPENDED"

    delivery = WebhookDelivery.objects.get(bulk_change=bulk_change)
    assert (delivery.attempt, delivery.status, delivery.response_status) == (1, "SUCCEEDED", 200)
    log = BulkChangeLog.objects.get(
        bulk_change=bulk_change, log_entry_description="Completion webhook"
    )
    assert log.response_status == 200 and not log.has_errors
    assert "token=[REDACTED]" in log.request_text and "abc123" not in log.request_text
    signature = received.headers["webhook-signature"]
    assert signature.startswith("v1,") and signature.split(",", 1)[1] not in log.request_text
    assert "webhook-signature: v1,[REDACTED]" in log.request_text
    assert "X-PondOps-Signature" not in received.headers  # one scheme: Standard Webhooks
    assert log.request_text.endswith(received.body.decode())
    state = partner.client.get(f"{API}/bulk-changes/{bulk_change.pk}/").json()["webhook"]
    assert state["status"] == "SUCCEEDED" and state["attempts"] == 1


def test_receiver_errors_are_retried_with_our_backoff_until_it_answers(
    partner: Partner, inline_workers: None, receiver: Receiver, loopback_ok: None, settings: Any
) -> None:
    assert settings.BULKCHANGE_RETRY_BASE_SECONDS == 1
    receiver.statuses = [500, 503]
    bulk_change = complete(partner, callback_url=receiver.url, errors=1)

    first, second, third = receiver.wait(3, timeout=30, poll=run_schedules)

    # backoff_seconds(n, base=1) = 2**n with jitter in [0.8, 1.2): ≥ 0.8 s, then ≥ 1.6 s.
    assert second.at - first.at >= 0.8
    assert third.at - second.at >= 1.6
    assert first.body == second.body == third.body  # one event, one body
    assert [r.headers["X-PondOps-Attempt"] for r in (first, second, third)] == ["1", "2", "3"]
    # One webhook-id for the event on every attempt (receivers drop repeats by it); each
    # attempt is signed at its own send time (the third comes ≥ 2.4 s after the first).
    event_id = first.json()["event_id"]
    assert [r.headers["webhook-id"] for r in (first, second, third)] == [event_id] * 3
    stamps = [int(r.headers["webhook-timestamp"]) for r in (first, second, third)]
    assert stamps == sorted(stamps) and stamps[2] > stamps[0]
    assert all(signature_ok(partner.tenant.webhook_secret, r) for r in (first, second, third))
    assert third.json()["bulk_change"]["status"] == "PROCESSED_WITH_ERRORS"
    attempts = list(
        WebhookDelivery.objects.filter(bulk_change=bulk_change).values_list(
            "attempt", "status", "response_status"
        )
    )
    assert attempts == [(1, "FAILED", 500), (2, "FAILED", 503), (3, "SUCCEEDED", 200)]
    logged = list(
        BulkChangeLog.objects.filter(
            bulk_change=bulk_change, log_entry_description="Completion webhook"
        )
        .order_by("id")
        .values_list("response_status", "has_errors", "error_text")
    )
    assert logged == [
        (500, True, "HTTP 500 from the callback URL"),
        (503, True, "HTTP 503 from the callback URL"),
        (200, False, ""),
    ]
    assert not Schedule.objects.filter(func=webhooks.SEND_TASK).exists()


def test_it_gives_up_after_the_last_attempt(
    partner: Partner, inline_workers: None, receiver: Receiver, loopback_ok: None, settings: Any
) -> None:
    settings.PONDOPS_WEBHOOK_MAX_ATTEMPTS = 2
    receiver.statuses = [500, 500, 500]
    bulk_change = complete(partner, callback_url=receiver.url)

    receiver.wait(2, timeout=20, poll=run_schedules)
    wait_for(
        lambda: WebhookDelivery.objects.filter(attempt=2, status="FAILED").exists(),
        timeout=10,
        message="attempt 2 recorded",
    )
    run_schedules()

    assert len(receiver.requests) == 2
    assert WebhookDelivery.objects.filter(bulk_change=bulk_change).count() == 2
    last = BulkChangeLog.objects.filter(log_entry_description="Completion webhook").latest("id")
    assert last.error_text == "gave up after 2 attempts: HTTP 500 from the callback URL"
    state = partner.client.get(f"{API}/bulk-changes/{bulk_change.pk}/").json()["webhook"]
    assert state["status"] == "FAILED" and state["attempts"] == 2
    assert state["last_error"].startswith("gave up")


@pytest.mark.parametrize("status", [400, 404, 410])
def test_a_permanent_answer_is_not_retried(
    partner: Partner, inline_workers: None, receiver: Receiver, loopback_ok: None, status: int
) -> None:
    receiver.statuses = [status]
    bulk_change = complete(partner, callback_url=receiver.url)

    receiver.wait(1)
    delivery = WebhookDelivery.objects.get(bulk_change=bulk_change)
    assert delivery.status == "FAILED" and len(receiver.requests) == 1
    assert delivery.error_text == f"gave up after 1 attempt: HTTP {status} from the callback URL"
    assert not Schedule.objects.filter(func=webhooks.SEND_TASK).exists()


@pytest.mark.parametrize("status", [408, 429, 500, 502])
def test_a_temporary_answer_is_retried(
    partner: Partner, inline_workers: None, receiver: Receiver, loopback_ok: None, status: int
) -> None:
    receiver.statuses = [status]
    bulk_change = complete(partner, callback_url=receiver.url)

    receiver.wait(1)
    first = WebhookDelivery.objects.get(bulk_change=bulk_change, attempt=1)
    assert first.error_text == f"HTTP {status} from the callback URL"
    assert WebhookDelivery.objects.get(bulk_change=bulk_change, attempt=2).status == "SCHEDULED"


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        *((status, True) for status in (None, 500, 501, 503, 408, 429)),
        *((status, False) for status in (301, 302, 400, 401, 403, 404, 410, 422)),
    ],
)
def test_webhook_should_retry(status: int | None, retry: bool) -> None:
    assert webhooks.webhook_should_retry(status) is retry


def test_a_connection_error_is_retried(
    partner: Partner, inline_workers: None, loopback_ok: None
) -> None:
    from tests.conftest import free_port

    bulk_change = complete(partner, callback_url=f"http://127.0.0.1:{free_port()}/hook")

    first = WebhookDelivery.objects.get(bulk_change=bulk_change, attempt=1)
    assert first.status == "FAILED" and first.response_status is None
    assert "ConnectionError" in first.error_text
    follow_up = WebhookDelivery.objects.get(bulk_change=bulk_change, attempt=2)
    assert follow_up.status == "SCHEDULED"
    assert follow_up.next_attempt_at > first.finished_at  # type: ignore[operator]
    schedule = Schedule.objects.get(func=webhooks.SEND_TASK)
    assert schedule.schedule_type == Schedule.ONCE
    assert schedule.next_run == follow_up.next_attempt_at


def test_retry_after_from_the_receiver_is_honoured(partner: Partner, inline_workers: None) -> None:
    bulk_change = create_bulk_change(partner.world, iccids(1), with_rev=False)
    delivery = WebhookDelivery.objects.create(
        bulk_change=bulk_change,
        completed_at=timezone.now(),
        attempt=1,
        url="https://partner.example/hook",
        payload="{}",
        status="SENDING",
        next_attempt_at=timezone.now(),
    )
    outcome = webhooks.Outcome("POST …", 429, "slow down", error="HTTP 429", retry_after=120)
    before = timezone.now()

    webhooks._record(delivery, outcome)

    follow_up = WebhookDelivery.objects.get(attempt=2)
    assert follow_up.next_attempt_at >= before + timedelta(seconds=120)


def test_no_callback_url_means_no_webhook(partner: Partner, inline_workers: None) -> None:
    complete(partner, callback_url="")
    assert not WebhookDelivery.objects.exists()
    assert not BulkChangeLog.objects.filter(log_entry_description="Completion webhook").exists()


def test_a_second_completion_after_a_manual_retry_is_a_new_event(
    partner: Partner, inline_workers: None, receiver: Receiver, loopback_ok: None
) -> None:
    bulk_change = complete(partner, callback_url=receiver.url, errors=1)
    receiver.wait(1)
    failed = DeviceChange.objects.filter(bulk_change=bulk_change, status="ERROR")
    failed.update(status="PROCESSED")
    BulkChange.objects.filter(pk=bulk_change.pk).update(status="PROCESSING", processed_at=None)

    assert bulk_change_complete_if_done(bulk_change_id=bulk_change.pk, process_by="worker:test")

    first, second = receiver.wait(2)
    assert first.json()["event_id"] != second.json()["event_id"]
    assert (first.json()["bulk_change"]["status"], second.json()["bulk_change"]["status"]) == (
        "PROCESSED_WITH_ERRORS",
        "PROCESSED",
    )
    # The same completion announced twice (a repeated hook) is one event.
    assert webhooks.webhook_completion_schedule(bulk_change_id=bulk_change.pk) is None


@pytest.mark.parametrize("debug", [False, True])
def test_a_loopback_target_not_listed_as_extra_is_refused_without_retrying_even_with_debug(
    partner: Partner, inline_workers: None, receiver: Receiver, settings: Any, debug: bool
) -> None:
    settings.DEBUG = debug
    settings.PONDOPS_WEBHOOK_EXTRA_ORIGINS = []
    complete(partner, callback_url=receiver.url)

    assert receiver.requests == []
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "FAILED"
    assert delivery.error_text == (
        "gave up after 1 attempt: refused: refused to connect to 127.0.0.1: "
        "a loopback address (127.0.0.1)"
    )


def test_the_sweep_recovers_lost_tasks_dead_senders_and_unannounced_completions(
    partner: Partner, inline_workers: None, receiver: Receiver, loopback_ok: None, settings: Any
) -> None:
    settings.BULKCHANGE_REAPER_GRACE_SECONDS = 60
    long_ago = timezone.now() - timedelta(minutes=5)
    # 1. A completion whose hook never ran (crash between commit and on_commit).
    unannounced = create_bulk_change(partner.world, iccids(1), with_rev=False)
    BulkChange.objects.filter(pk=unannounced.pk).update(
        status="PROCESSED", processed_at=long_ago, callback_url=receiver.url
    )
    # 2. An attempt whose task was lost.
    lost = create_bulk_change(partner.world, iccids(1, start=10), with_rev=False)
    WebhookDelivery.objects.create(
        bulk_change=lost,
        completed_at=long_ago,
        attempt=1,
        url=receiver.url,
        payload='{"lost": true}',
        next_attempt_at=long_ago,
    )
    # 3. An attempt whose sender died mid-request.
    dead = create_bulk_change(partner.world, iccids(1, start=20), with_rev=False)
    WebhookDelivery.objects.create(
        bulk_change=dead,
        completed_at=long_ago,
        attempt=1,
        url=receiver.url,
        payload='{"dead": true}',
        status="SENDING",
        claimed_until=timezone.now() - timedelta(seconds=1),
        next_attempt_at=long_ago,
    )

    report = webhooks.webhook_deliveries_sweep()

    assert report == "1 expired, 1 re-enqueued, 1 scheduled"
    bodies = sorted(r.body for r in receiver.wait(2))
    assert b'{"lost": true}' in bodies
    assert any(json.loads(b).get("bulk_change", {}).get("id") == unannounced.pk for b in bodies)
    assert WebhookDelivery.objects.get(bulk_change=dead, attempt=1).status == "FAILED"
    assert WebhookDelivery.objects.get(bulk_change=dead, attempt=2).status == "SCHEDULED"
    assert webhooks.webhook_deliveries_sweep() == "0 expired, 0 re-enqueued, 0 scheduled"


def test_migrate_removes_the_recovery_schedules_of_earlier_releases(db: None) -> None:
    """The sweep and the reaper run in ``run_reaper`` now, never on the work queue."""
    from django.core.management import call_command

    for name in LEGACY_RECOVERY_SCHEDULES:
        Schedule.objects.create(name=name, func="bulkchanges.tasks.reap", schedule_type="I")
    call_command("migrate", verbosity=0)
    assert not Schedule.objects.filter(name__in=LEGACY_RECOVERY_SCHEDULES).exists()


@pytest.mark.parametrize(
    ("url", "extra", "ok"),
    [
        ("https://partner.example/hook", [], True),
        ("https://partner.example:8443/a/b?c=d", [], True),
        ("http://partner.example/hook", [], False),
        ("http://partner.example/hook", ["http://127.0.0.1:*"], False),
        ("http://127.0.0.1:8000/hook", ["http://127.0.0.1:*"], True),
        ("http://localhost:8000/hook", ["http://localhost:*"], True),
        ("http://[::1]:9000/hook", ["http://[::1]:*"], True),
        ("http://127.0.0.1:8000/hook", ["http://127.0.0.1:9000"], False),
        ("http://127.0.0.1:8000/hook", [], False),
        ("https://127.0.0.1/hook", [], False),
        ("https://localhost/hook", [], False),
        ("https://[::1]/hook", [], False),
        ("https://[::ffff:10.0.0.1]/hook", [], False),
        ("https://192.168.1.10/hook", [], False),
        ("https://100.64.0.1/hook", [], False),
        ("https://0.0.0.0/hook", [], False),
        ("https://169.254.169.254/latest", [], False),
        ("https://169.254.169.254/latest", ["http://127.0.0.1:*"], False),
        ("ftp://partner.example/hook", [], False),
        ("https://u:p@partner.example/hook", [], False),
        ("", [], True),
    ],
)
@pytest.mark.parametrize("debug", [False, True])
def test_callback_url_rules_whatever_debug_says(
    url: str, extra: list[str], ok: bool, debug: bool, settings: Any
) -> None:
    from bulkchanges.errors import ApplicationError

    settings.DEBUG = debug
    settings.PONDOPS_WEBHOOK_EXTRA_ORIGINS = extra
    if ok:
        assert webhooks.callback_url_validate(url) == url
    else:
        with pytest.raises(ApplicationError) as error:
            webhooks.callback_url_validate(url)
        assert "callback_url" in error.value.fields


def test_signature_is_hmac_sha256_of_id_timestamp_and_body_keyed_with_the_secret_bytes() -> None:
    body = '{"event":"bulk_change.completed"}'
    sent_at = datetime(2026, 5, 4, 3, 2, 1, 987654, tzinfo=UTC)
    headers = webhooks.webhook_signature_headers(
        secret="s3cret", message_id="bulk-change-7-completed-1", sent_at=sent_at, body=body
    )
    signed = f"bulk-change-7-completed-1.{int(sent_at.timestamp())}.{body}".encode()
    digest = base64.b64encode(hmac.new(b"s3cret", signed, hashlib.sha256).digest()).decode()
    assert headers == {
        "webhook-id": "bulk-change-7-completed-1",
        "webhook-timestamp": "1777863721",
        "webhook-signature": f"v1,{digest}",
    }


def test_receivers_are_shown_the_secret_as_whsec_and_base64_of_its_bytes() -> None:
    shown = webhooks.webhook_secret_for_receivers("s3cret-é")
    assert shown == "whsec_" + base64.b64encode("s3cret-é".encode()).decode()
    assert base64.b64decode(shown.removeprefix("whsec_")) == "s3cret-é".encode()


def test_urls_are_logged_without_query_values() -> None:
    assert (
        webhooks.url_for_log("https://h.example:8443/p?token=abc&x=1")
        == "https://h.example:8443/p?token=[REDACTED]&x=[REDACTED]"
    )
