"""Authentication, tenant binding, throttling, versioning and the error shape."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from bulkchanges.services.webhooks import webhook_secret_for_receivers
from tests.api.conftest import API, Partner, partner_token, token_client

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("get", "bulk-changes/"),
    ("post", "bulk-changes/"),
    ("get", "bulk-changes/1/"),
    ("get", "bulk-changes/1/devices/"),
    ("get", "bulk-changes/1/logs/"),
    ("post", "bulk-changes/1/retry/"),
    ("post", "bulk-changes/1/cancel/"),
    ("get", "bulk-changes/1/export.csv"),
    ("post", "webhook-secret/"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("token", [None, "0" * 40])
def test_every_endpoint_needs_a_valid_token(
    db: None, method: str, path: str, token: str | None
) -> None:
    response = getattr(token_client(token), method)(f"{API}/{path}")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["code"] == ("authentication_failed" if token else "not_authenticated")
    assert set(response.json()) == {"code", "detail", "fields"}


def test_an_inactive_users_token_is_refused(partner: Partner) -> None:
    get_user_model().objects.filter(username="acme-api").update(is_active=False)
    response = partner.client.get(f"{API}/bulk-changes/")
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"


def test_a_token_of_a_user_without_a_tenant_is_403(db: None) -> None:
    client = token_client(partner_token("drifter", None))
    response = client.get(f"{API}/bulk-changes/")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"


def test_throttling_per_token_answers_429_with_retry_after(partner: Partner, settings: Any) -> None:
    settings.PONDOPS_API_THROTTLE_RATE = "3/min"
    statuses = [partner.client.get(f"{API}/bulk-changes/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]

    throttled = partner.client.get(f"{API}/bulk-changes/")
    assert throttled.json()["code"] == "throttled"
    assert 1 <= int(throttled["Retry-After"]) <= 60
    # Another token has its own budget.
    other = token_client(partner_token("acme-2", partner.tenant))
    assert other.get(f"{API}/bulk-changes/").status_code == 200


def test_unknown_versions_and_paths_are_json_404s(partner: Partner) -> None:
    for path in ("/api/v2/bulk-changes/", "/api/v1/nothing-here/", "/api/"):
        response = partner.client.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


def test_wrong_methods_are_405_json(partner: Partner) -> None:
    response = partner.client.delete(f"{API}/bulk-changes/")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
    assert "GET" in response["Allow"]


def test_unexpected_errors_are_json_500s_without_internals(
    partner: Partner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bulkchanges.api import views

    def explode(**kwargs: Any) -> Any:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(views, "bulk_change_progress_map", explode)
    response = partner.client.get(f"{API}/bulk-changes/")
    assert response.status_code == 500
    assert response.json() == {
        "code": "server_error",
        "detail": "an unexpected error occurred",
        "fields": {},
    }


def test_rotating_the_webhook_secret_shows_it_once(partner: Partner) -> None:
    old = partner.tenant.webhook_secret
    response = partner.client.post(f"{API}/webhook-secret/")

    assert response.status_code == 201
    body = response.json()
    partner.tenant.refresh_from_db()
    assert partner.tenant.webhook_secret != old
    # Shown as Standard Webhooks receivers take it: whsec_ + base64 of the signing key bytes.
    assert body["webhook_secret"] == webhook_secret_for_receivers(partner.tenant.webhook_secret)
    assert body["webhook_secret"].startswith("whsec_")
    assert body["signature_header"] == "webhook-signature" and body["tenant"] == partner.tenant.pk
    detail_texts = str(partner.client.get(f"{API}/bulk-changes/").json())
    assert partner.tenant.webhook_secret not in detail_texts


def test_staff_rotate_a_named_tenants_secret(partner: Partner) -> None:
    staff = token_client(partner_token("ops", None, staff=True))
    assert staff.post(f"{API}/webhook-secret/").status_code == 400
    assert staff.post(f"{API}/webhook-secret/", {"tenant": 999999}).status_code == 404
    response = staff.post(f"{API}/webhook-secret/", {"tenant": partner.tenant.pk})
    assert response.status_code == 201 and response.json()["tenant"] == partner.tenant.pk


def test_each_tenant_gets_its_own_generated_secret(partner: Partner) -> None:
    from bulkchanges.models import Tenant

    other = Tenant.objects.create(name="Initech")
    assert len(other.webhook_secret) >= 40
    assert other.webhook_secret != partner.tenant.webhook_secret


def test_tokens_are_drf_tokens_managed_in_the_admin(admin_client: Any, partner: Partner) -> None:
    token = Token.objects.get(key=partner.token)
    assert admin_client.get("/admin/authtoken/tokenproxy/").status_code == 200
    assert admin_client.get("/admin/bulkchanges/partnerprofile/").status_code == 200
    assert admin_client.get("/admin/bulkchanges/webhookdelivery/").status_code == 200
    page = admin_client.get("/admin/bulkchanges/tenant/add/").content.decode()
    assert "webhook_secret" not in page
    assert token.user.partner_profile.tenant == partner.tenant


def test_a_missing_trailing_slash_is_a_json_404_with_a_hint(partner: Partner) -> None:
    response = partner.client.post(f"{API}/bulk-changes", {})
    assert response.status_code == 404
    assert response.json()["detail"].endswith(f"did you mean {API}/bulk-changes/ ?")
