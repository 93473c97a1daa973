"""Authentication by API key (expiry, revocation, roles, tenant binding), throttling per key
and of failed authentication per address, versioning and the error shape."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from bulkchanges.models import PartnerApiKey, PartnerProfile, Tenant
from bulkchanges.services.partners import partner_token_revoke
from bulkchanges.services.webhooks import webhook_secret_for_receivers
from tests.api.conftest import API, Partner, create_body, key_client, partner_key
from tests.conftest import iccids

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


WRITES = [(method, path) for method, path in ENDPOINTS if method == "post"]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("key", [None, "0" * 40, "abcdefgh.not-a-real-key"])
def test_every_endpoint_needs_a_valid_key(
    db: None, method: str, path: str, key: str | None
) -> None:
    response = getattr(key_client(key), method)(f"{API}/{path}")

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"
    assert response.json()["code"] == ("authentication_failed" if key else "not_authenticated")
    assert set(response.json()) == {"code", "detail", "fields"}
    if key:
        assert response.json()["detail"] == "invalid API key"


def test_the_old_token_scheme_is_refused_naming_the_new_one(partner: Partner) -> None:
    client = key_client(None)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {partner.key}")

    response = client.get(f"{API}/bulk-changes/")

    assert response.status_code == 401
    assert response.json()["detail"] == (
        "unsupported authorization scheme 'Bearer'; send 'Authorization: Api-Key <key>'"
    )


def test_an_expired_key_is_401_api_key_expired(partner: Partner) -> None:
    PartnerApiKey.objects.update(expiry_date=timezone.now() - timedelta(seconds=1))

    response = partner.client.get(f"{API}/bulk-changes/")

    assert response.status_code == 401
    assert response.json() == {
        "code": "authentication_failed",
        "detail": "API key expired",
        "fields": {},
    }


def test_a_key_works_until_its_expiry(pond_world: Any) -> None:
    key = partner_key("acme-api", pond_world.tenant, expiry_date=timezone.now() + timedelta(days=1))
    assert key_client(key).get(f"{API}/bulk-changes/").status_code == 200


def test_a_revoked_key_is_401_api_key_revoked(partner: Partner) -> None:
    partner_token_revoke(prefix=partner.key.split(".")[0], actor="test")

    response = partner.client.get(f"{API}/bulk-changes/")

    assert response.status_code == 401
    assert response.json()["detail"] == "API key revoked"


def test_an_inactive_users_key_is_refused(partner: Partner) -> None:
    get_user_model().objects.filter(username="acme-api").update(is_active=False)
    response = partner.client.get(f"{API}/bulk-changes/")
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"
    assert response.json()["detail"] == "the API key's user is inactive"


def test_a_key_whose_user_moved_to_another_tenant_is_403(partner: Partner) -> None:
    PartnerProfile.objects.filter(user__username="acme-api").update(
        tenant=Tenant.objects.create(name="Initech")
    )
    response = partner.client.get(f"{API}/bulk-changes/")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert response.json()["detail"] == (
        "this API key's user does not belong to the key's tenant; ask PondOps to issue a new key"
    )


def test_a_read_key_reads(pond_world: Any) -> None:
    reader = key_client(partner_key("reader", pond_world.tenant, role="read"))
    assert reader.get(f"{API}/bulk-changes/").status_code == 200


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_read_key_cannot_create_or_act(pond_world: Any, method: str, path: str) -> None:
    reader = key_client(partner_key("reader", pond_world.tenant, role="read"))

    response = getattr(reader, method)(f"{API}/{path}", create_body(iccids(1)))

    assert response.status_code == 403
    assert response.json() == {
        "code": "permission_denied",
        "detail": "this API key has the read role, which cannot do this; "
        "it needs a key with the submit role",
        "fields": {},
    }


@pytest.mark.parametrize("role", ["submit", "approve"])
def test_submit_and_approve_keys_create(pond_world: Any, sent: list[Any], role: str) -> None:
    client = key_client(partner_key(f"{role}-bot", pond_world.tenant, role=role))
    response = client.post(f"{API}/bulk-changes/", create_body(iccids(1)))
    assert response.status_code == 201, response.content


def test_use_is_recorded_at_most_once_a_minute(partner: Partner) -> None:
    assert partner.client.get(f"{API}/bulk-changes/").status_code == 200
    first = PartnerApiKey.objects.get().last_used_at
    assert first is not None and timezone.now() - first < timedelta(seconds=30)

    partner.client.get(f"{API}/bulk-changes/")
    assert PartnerApiKey.objects.get().last_used_at == first


def test_throttling_per_key_answers_429_with_retry_after(partner: Partner, settings: Any) -> None:
    settings.PONDOPS_API_THROTTLE_RATE = "3/min"
    statuses = [partner.client.get(f"{API}/bulk-changes/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]

    throttled = partner.client.get(f"{API}/bulk-changes/")
    assert throttled.json()["code"] == "throttled"
    assert 1 <= int(throttled["Retry-After"]) <= 60
    # Another key has its own budget.
    other = key_client(partner_key("acme-2", partner.tenant))
    assert other.get(f"{API}/bulk-changes/").status_code == 200


# --- Failed authentication, throttled per client address ----------------------------------


def test_bad_keys_from_one_address_are_throttled_and_other_addresses_are_not(
    partner: Partner, settings: Any
) -> None:
    settings.PONDOPS_API_AUTH_FAILURE_RATE = "3/min"
    guesser = key_client("abcdefgh.guess", REMOTE_ADDR="127.0.0.2")

    statuses = [guesser.get(f"{API}/bulk-changes/").status_code for _ in range(4)]

    assert statuses == [401, 401, 401, 429]
    throttled = guesser.get(f"{API}/bulk-changes/")
    assert throttled.json()["code"] == "throttled"
    assert throttled.json()["detail"].startswith(
        "too many failed API key authentications from your address."
    )
    assert 1 <= int(throttled["Retry-After"]) <= 60
    # While it waits, the address is refused whatever it sends — a right guess included.
    right_guess = key_client(partner.key, REMOTE_ADDR="127.0.0.2")
    assert right_guess.get(f"{API}/bulk-changes/").status_code == 429
    # A valid key from another address is unaffected, and a bad one there has its own budget.
    elsewhere = key_client(partner.key, REMOTE_ADDR="127.0.0.3")
    assert elsewhere.get(f"{API}/bulk-changes/").status_code == 200
    bad_elsewhere = key_client("abcdefgh.guess", REMOTE_ADDR="127.0.0.3")
    assert bad_elsewhere.get(f"{API}/bulk-changes/").status_code == 401


def test_valid_keys_never_spend_the_failure_budget(partner: Partner, settings: Any) -> None:
    settings.PONDOPS_API_AUTH_FAILURE_RATE = "3/min"
    settings.PONDOPS_API_THROTTLE_RATE = ""
    statuses = {partner.client.get(f"{API}/bulk-changes/").status_code for _ in range(6)}
    assert statuses == {200}


def test_a_forged_x_forwarded_for_does_not_escape_the_failure_throttle(
    db: None, settings: Any
) -> None:
    settings.PONDOPS_API_AUTH_FAILURE_RATE = "2/min"
    statuses = [
        key_client("abcdefgh.guess", REMOTE_ADDR="127.0.0.2", HTTP_X_FORWARDED_FOR=f"127.0.1.{n}")
        .get(f"{API}/bulk-changes/")
        .status_code
        for n in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(
    db: None, settings: Any
) -> None:
    settings.PONDOPS_API_AUTH_FAILURE_RATE = "2/min"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}

    def attempt(client_address: str) -> int:
        client = key_client(
            "abcdefgh.guess", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=client_address
        )
        return int(client.get(f"{API}/bulk-changes/").status_code)

    assert [attempt("127.0.1.1") for _ in range(3)] == [401, 401, 429]
    assert attempt("127.0.1.2") == 401  # the proxy's other clients keep their own budget


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


def test_a_staff_users_key_rotates_only_its_own_tenants_secret(partner: Partner, db: None) -> None:
    other = Tenant.objects.create(name="Initech")
    staff = key_client(partner_key("ops", partner.tenant, staff=True, superuser=True))
    assert staff.post(f"{API}/webhook-secret/", {"tenant": other.pk}).status_code == 404
    response = staff.post(f"{API}/webhook-secret/")
    assert response.status_code == 201 and response.json()["tenant"] == partner.tenant.pk


def test_each_tenant_gets_its_own_generated_secret(partner: Partner) -> None:
    other = Tenant.objects.create(name="Initech")
    assert len(other.webhook_secret) >= 40
    assert other.webhook_secret != partner.tenant.webhook_secret


def test_a_missing_trailing_slash_is_a_json_404_with_a_hint(partner: Partner) -> None:
    response = partner.client.post(f"{API}/bulk-changes", {})
    assert response.status_code == 404
    assert response.json()["detail"].endswith(f"did you mean {API}/bulk-changes/ ?")
