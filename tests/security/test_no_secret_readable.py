"""Issue 13, "Done when": no secret or partner API key is readable from any admin page or any
API response. The demo's data (five carriers and Rev.io, a tenant with its webhook secret,
callback credentials) is seeded against the simulators, POND (with Rev.io services) and Jasper
bulk changes are processed through the real pipeline so the audit log holds real carrier calls,
a partner key is issued; then every page of every registered admin — each changelist, each
object's change and history page, every custom bulk-change URL, the dashboard — is fetched as
a superuser, and every API endpoint with the partner's key, and no response may contain any
secret, in clear or in the forms it is sent in (base64 Basic auth, ``whsec_``)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import Model
from django.test import Client
from django.urls import URLPattern, reverse

from bulkchanges.models import BulkChange, IntegrationAuthentication, Tenant
from bulkchanges.services.demo import demo_bulk_changes_create, demo_seed
from bulkchanges.services.webhooks import webhook_secret_for_receivers
from integrations.simulators import SimulatorServer
from integrations.simulators.control import SimulatorControl
from tests.api.conftest import API, key_client, partner_key
from tests.conftest import Queue, drain

pytestmark = pytest.mark.django_db(transaction=True)

PROCESSED = ("POND", "JASPER")  # synchronous carriers: final within the test, audit rows real
OBJECTS_PER_MODEL = 5


def secret_values(tenant: Tenant, api_key: str) -> dict[str, str]:
    """Every secret the database holds for the demo (decrypted through the model), and the
    forms in which they travel, by a name for the failure message."""
    found: dict[str, str] = {"partner API key": api_key}
    found["API key secret part"] = api_key.partition(".")[2]
    found["webhook secret"] = tenant.webhook_secret
    found["webhook secret (whsec_)"] = webhook_secret_for_receivers(tenant.webhook_secret)
    for row in IntegrationAuthentication.objects.all():
        label = f"{row.integration} {row.account}"
        for field in ("secret", "secret_2", "callback_password", "callback_token"):
            value = getattr(row, field)
            if value:
                found[f"{label} {field}"] = value
        if row.secret:  # HTTP Basic auth as sent (Jasper, Rev.io)
            for user in {row.username, f"{row.username}@{row.account}"}:
                basic = base64.b64encode(f"{user}:{row.secret}".encode()).decode()
                found[f"{label} Basic auth"] = basic
    assert all(len(value) >= 16 for value in found.values()), "a secret too short to search"
    return found


def admin_urls(site: admin.AdminSite) -> Iterator[str]:
    """The index, every changelist and add page, and for a few objects of each model every
    URL of its admin that takes an object id (change, history, custom views)."""
    yield reverse("admin:index")
    for model, model_admin in site._registry.items():
        objects: list[Model] = list(model._default_manager.order_by("-pk")[:OBJECTS_PER_MODEL])
        for pattern in model_admin.get_urls():
            if not (isinstance(pattern, URLPattern) and pattern.name):
                continue
            route = str(pattern.pattern)
            if "<" not in route:  # the changelist, the add page, custom list-level pages
                yield reverse(f"admin:{pattern.name}")
            elif "object_id" in route and not pattern.name.endswith("_delete"):
                # (a delete confirmation lists the same fields as the change page)
                for obj in objects:
                    yield reverse(f"admin:{pattern.name}", args=[obj.pk])


def api_urls(bulk_change_ids: list[int]) -> Iterator[str]:
    yield f"{API}/bulk-changes/"
    yield "/api/schema/"
    for pk in bulk_change_ids:
        for suffix in ("", "devices/", "logs/", "export.csv"):
            yield f"{API}/bulk-changes/{pk}/{suffix}"


def leaks(body: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if value in body]


@pytest.fixture
def demo_world(
    simulator: SimulatorControl,
    simulator_server: SimulatorServer,
    device_statuses: None,
    sqs_queue: Queue,
    inline_workers: None,
) -> dict[str, Any]:
    data = demo_seed(
        simulator=simulator, simulator_url=simulator_server.url, admin_password="crawl-pass-1"
    )
    bulk_changes = demo_bulk_changes_create(data=data, devices=3)
    for bulk_change in bulk_changes:
        if bulk_change.integration in PROCESSED:
            assert drain(bulk_change).status == BulkChange.Status.PROCESSED
    key = partner_key("crawl-partner", data.tenant)
    return {"tenant": data.tenant, "key": key, "bulk_changes": bulk_changes}


def test_no_admin_page_shows_a_secret_or_a_partner_key(demo_world: dict[str, Any]) -> None:
    secrets = secret_values(demo_world["tenant"], demo_world["key"])
    client = Client()
    client.force_login(get_user_model().objects.get(username="admin"))  # the demo superuser

    fetched, found = 0, {}
    for url in admin_urls(admin.site):
        response = client.get(url)
        # 403: the add page of a read-only admin; 405: a POST-only confirmation
        assert response.status_code in (200, 302, 403, 405), (url, response.status_code)
        body = b"".join(response).decode() if response.streaming else response.content.decode()
        fetched += response.status_code == 200
        if leaked := leaks(body, secrets):
            found[url] = leaked

    assert not found, f"secrets shown by the admin: {found}"
    assert fetched > 100  # every model's pages answered, not a handful


def test_no_api_response_shows_a_secret_or_a_partner_key(demo_world: dict[str, Any]) -> None:
    secrets = secret_values(demo_world["tenant"], demo_world["key"])
    client = key_client(demo_world["key"])
    ids = [bulk_change.pk for bulk_change in demo_world["bulk_changes"]]

    found = {}
    for url in api_urls(ids):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        body = b"".join(response).decode() if response.streaming else response.content.decode()
        if leaked := leaks(body, secrets):
            found[url] = leaked

    assert not found, f"secrets in API responses: {found}"
