"""The console's partner API keys (bulkchanges/admin/partners.py): issued on the add page and
shown once, on the page that answers "Save"; listed by prefix only; bound to the user's
tenant; read-only once revoked."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient
from rest_framework_api_key.models import APIKey

from bulkchanges.models import PartnerApiKey, PartnerProfile, Tenant
from bulkchanges.services.partners import partner_token_revoke

pytestmark = pytest.mark.django_db

ADD = "/admin/bulkchanges/partnerapikey/add/"
LIST = "/admin/bulkchanges/partnerapikey/"


@pytest.fixture
def acme() -> Tenant:
    tenant = Tenant.objects.create(name="Acme IoT")
    user = get_user_model().objects.create_user(username="acme-api")
    PartnerProfile.objects.create(user=user, tenant=tenant)
    return tenant


def issue(admin_client: Client, tenant: Tenant, **fields: str) -> str:
    user = get_user_model().objects.get(username="acme-api")
    form = {"name": "orders", "tenant": tenant.pk, "user": user.pk, "role": "submit"} | fields
    return admin_client.post(ADD, form).content.decode()


def test_a_key_issued_in_the_admin_is_shown_once_and_works(
    admin_client: Client, acme: Tenant
) -> None:
    page = issue(admin_client, acme)

    api_key = PartnerApiKey.objects.get()
    key = page.split('id="pondops-api-key" class="pondops-api-key">')[1].split("</code>")[0]
    assert key.startswith(f"{api_key.prefix}.")
    assert "it is shown only this once" in page and "Authorization: Api-Key &lt;key&gt;" in page
    assert (api_key.tenant, api_key.role, api_key.created_by) == (acme, "submit", "admin:admin")
    client = APIClient(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get("/api/v1/bulk-changes/").status_code == 200
    secret = key.split(".", 1)[1]
    for again in (LIST, f"{LIST}{api_key.pk}/change/"):
        html = admin_client.get(again).content.decode()
        assert api_key.prefix in html and secret not in html


def test_the_key_page_is_not_cached(admin_client: Client, acme: Tenant) -> None:
    user = get_user_model().objects.get(username="acme-api")
    form = {"name": "orders", "tenant": acme.pk, "user": user.pk, "role": "read"}
    response = admin_client.post(ADD, form)
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]


def test_a_key_for_another_tenant_than_its_users_is_refused(
    admin_client: Client, acme: Tenant
) -> None:
    globex = Tenant.objects.create(name="Globex")

    page = issue(admin_client, globex)

    assert "not the user&#x27;s tenant" in page
    assert not PartnerApiKey.objects.exists()


def test_only_partner_users_are_offered(admin_client: Client, acme: Tenant) -> None:
    get_user_model().objects.create_user(username="ops-without-tenant", is_staff=True)
    page = admin_client.get(ADD).content.decode()
    assert "acme-api" in page and "ops-without-tenant" not in page


def test_a_revoked_key_is_read_only(admin_client: Client, acme: Tenant) -> None:
    issue(admin_client, acme)
    api_key = PartnerApiKey.objects.get()
    change = f"{LIST}{api_key.pk}/change/"
    assert 'name="revoked"' in admin_client.get(change).content.decode()

    partner_token_revoke(prefix=api_key.prefix, actor="test")

    assert 'name="revoked"' not in admin_client.get(change).content.decode()


def test_the_librarys_own_key_model_and_drfs_tokens_are_not_on_the_console(
    admin_client: Client,
) -> None:
    assert admin.site.is_registered(PartnerApiKey)
    assert not admin.site.is_registered(APIKey)
    assert admin_client.get("/admin/rest_framework_api_key/apikey/").status_code == 404
    assert admin_client.get("/admin/authtoken/tokenproxy/").status_code == 404
