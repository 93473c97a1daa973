"""The gates in the partner API: ``scheduled_for`` on create, approve / reject (a key with the
approve role of another user), reschedule (submit role), and the detail's gate fields."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from bulkchanges.models import BulkChange, BulkChangeLog, PartnerApiKey
from bulkchanges.services.partners import partner_api_key_issue
from tests.api.conftest import API, Partner, create_body, key_client, partner_key
from tests.conftest import iccids

pytestmark = pytest.mark.django_db
Status = BulkChange.Status
APPROVE = PartnerApiKey.Role.APPROVE


def _create(partner: Partner, **overrides: Any) -> dict[str, Any]:
    response = partner.client.post(
        f"{API}/bulk-changes/", create_body(iccids(2), **overrides), format="json"
    )
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def _approver(partner: Partner, username: str = "acme-approver") -> Any:
    return key_client(partner_key(username, partner.tenant, role=APPROVE))


def test_create_with_scheduled_for_is_scheduled_without_a_message(
    partner: Partner, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    when = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        body = _create(partner, scheduled_for=when.isoformat())
    assert body["status"] == Status.SCHEDULED
    assert body["scheduled_for"] == when.isoformat().replace("+00:00", "Z")
    assert body["approval_reason"] == "" and body["decision"] == ""
    assert sent == []


@pytest.mark.parametrize(
    ("scheduled_for", "message"),
    [
        ("2026-13-01T00:00:00+00:00", "Datetime has wrong format"),
        ("2030-01-01T12:00:00", "add a UTC offset"),
        ("2000-01-01T12:00:00+00:00", "is in the past"),
        ("2999-01-01T12:00:00+00:00", "more than 180 days ahead"),
    ],
)
def test_create_refuses_a_bad_scheduled_for_with_a_400(
    partner: Partner, sent: list[Any], scheduled_for: str, message: str
) -> None:
    response = partner.client.post(
        f"{API}/bulk-changes/",
        create_body(iccids(2), scheduled_for=scheduled_for),
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "scheduled_for" in response.json()["fields"]
    assert message in str(response.json())
    assert not BulkChange.objects.exists()


def test_a_destructive_create_awaits_approval_and_says_why(
    partner: Partner, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        body = _create(partner, target_status="terminated")
    assert body["status"] == Status.AWAITING_APPROVAL
    assert body["approval_reason"] == "target TERMINATED is destructive"
    assert sent == []


def test_another_users_approve_key_approves_and_it_is_queued(
    partner: Partner, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    created = _create(partner, target_status="TERMINATED")
    with django_capture_on_commit_callbacks(execute=True):
        response = _approver(partner).post(
            f"{API}/bulk-changes/{created['id']}/approve/", {"note": "checked"}, format="json"
        )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == Status.QUEUED
    assert (body["decision"], body["decided_by"], body["decision_note"]) == (
        "APPROVED",
        "api:acme-approver",
        "checked",
    )
    assert body["decided_at"]
    assert [m.bulk_change_id for m in sent] == [created["id"]]
    row = BulkChangeLog.objects.get(log_entry_description="Bulk change approved")
    assert row.process_by == "api:acme-approver"


def test_the_creators_own_approve_key_is_refused(partner: Partner, sent: list[Any]) -> None:
    """A second key of the same partner user, with the approve role, is still the creator."""
    created = _create(partner, target_status="TERMINATED")
    own = PartnerApiKey.objects.get(user__username="acme-api")
    key = partner_api_key_issue(
        api_key=PartnerApiKey(user=own.user, tenant=partner.tenant, role=APPROVE),
        created_by="tests",
    )
    for action in ("approve", "reject"):
        response = key_client(key).post(f"{API}/bulk-changes/{created['id']}/{action}/")
        assert response.status_code == 403, response.content
        assert response.json()["code"] == "permission_denied"
        assert "a different person must approve or reject it" in response.json()["detail"]
    assert BulkChange.objects.get(pk=created["id"]).status == Status.AWAITING_APPROVAL


def test_a_submit_key_cannot_approve_or_reject(partner: Partner, sent: list[Any]) -> None:
    created = _create(partner, target_status="TERMINATED")
    other_submitter = key_client(partner_key("acme-other", partner.tenant))
    for action in ("approve", "reject"):
        response = other_submitter.post(f"{API}/bulk-changes/{created['id']}/{action}/")
        assert response.status_code == 403
        assert "needs a key with the approve role" in response.json()["detail"]


def test_a_read_key_cannot_reschedule(partner: Partner, sent: list[Any]) -> None:
    created = _create(partner, scheduled_for=(timezone.now() + timedelta(hours=1)).isoformat())
    reader = key_client(partner_key("acme-reader", partner.tenant, role="read"))
    response = reader.post(
        f"{API}/bulk-changes/{created['id']}/reschedule/",
        {"scheduled_for": (timezone.now() + timedelta(hours=2)).isoformat()},
        format="json",
    )
    assert response.status_code == 403


def test_reject_cancels_and_a_second_decision_is_a_409(
    partner: Partner, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    created = _create(partner, target_status="TERMINATED")
    approver = _approver(partner)
    with django_capture_on_commit_callbacks(execute=True):
        rejected = approver.post(
            f"{API}/bulk-changes/{created['id']}/reject/", {"note": "wrong"}, format="json"
        )
    assert rejected.status_code == 200, rejected.content
    assert rejected.json()["status"] == Status.CANCELLED
    assert rejected.json()["progress"]["counts"]["CANCELLED"] == 2
    late = _approver(partner, "acme-approver-2").post(
        f"{API}/bulk-changes/{created['id']}/approve/"
    )
    assert late.status_code == 409
    assert late.json()["code"] == "conflict"
    assert "rejected by api:acme-approver" in late.json()["detail"]
    assert sent == []


def test_approving_a_scheduled_one_ahead_keeps_it_scheduled(
    partner: Partner, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    when = timezone.now() + timedelta(days=2)
    created = _create(partner, target_status="TERMINATED", scheduled_for=when.isoformat())
    with django_capture_on_commit_callbacks(execute=True):
        response = _approver(partner).post(f"{API}/bulk-changes/{created['id']}/approve/")
    assert response.status_code == 200 and response.json()["status"] == Status.SCHEDULED
    assert sent == []


def test_reschedule(partner: Partner, sent: list[Any]) -> None:
    created = _create(partner, scheduled_for=(timezone.now() + timedelta(hours=1)).isoformat())
    new = (timezone.now() + timedelta(days=3)).replace(microsecond=0)
    response = partner.client.post(
        f"{API}/bulk-changes/{created['id']}/reschedule/",
        {"scheduled_for": new.isoformat()},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["scheduled_for"] == new.isoformat().replace("+00:00", "Z")
    row = BulkChangeLog.objects.get(log_entry_description="Bulk change rescheduled")
    assert row.process_by == "api:acme-api"

    missing = partner.client.post(f"{API}/bulk-changes/{created['id']}/reschedule/", {})
    assert missing.status_code == 400 and "scheduled_for" in missing.json()["fields"]


def test_reschedule_of_a_queued_bulk_change_is_a_409(partner: Partner, sent: list[Any]) -> None:
    created = _create(partner)
    response = partner.client.post(
        f"{API}/bulk-changes/{created['id']}/reschedule/",
        {"scheduled_for": (timezone.now() + timedelta(hours=1)).isoformat()},
        format="json",
    )
    assert response.status_code == 409
    assert "only a scheduled bulk change" in response.json()["detail"]


def test_another_tenants_bulk_change_is_a_404(partner: Partner, other: Any) -> None:
    approver = _approver(partner)
    for action in ("approve", "reject", "reschedule"):
        response = approver.post(f"{API}/bulk-changes/{other.bulk_change.pk}/{action}/")
        assert response.status_code == 404, (action, response.content)


def test_an_idempotent_repeat_with_another_schedule_is_a_409(
    partner: Partner, sent: list[Any]
) -> None:
    when = timezone.now() + timedelta(hours=1)
    body = create_body(iccids(2), scheduled_for=when.isoformat())
    first = partner.client.post(
        f"{API}/bulk-changes/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert first.status_code == 201
    same_instant = when.astimezone(timezone.get_fixed_timezone(120)).isoformat()
    again = partner.client.post(
        f"{API}/bulk-changes/",
        body | {"scheduled_for": same_instant},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    later = partner.client.post(
        f"{API}/bulk-changes/",
        body | {"scheduled_for": (when + timedelta(hours=1)).isoformat()},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert later.status_code == 409
