"""The console's admin site (bulkchanges/admin/site.py): PondOps' name on its pages, and
every bulkchanges model's pages on it."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from bulkchanges.admin.site import PondOpsAdminSite
from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    Device,
    DeviceChange,
    DeviceStatus,
    IntegrationAuthentication,
    PartnerApiKey,
    PartnerProfile,
    Tenant,
    WebhookDelivery,
)

pytestmark = pytest.mark.django_db


def test_the_console_pages_carry_the_product_name(staff_client: Callable[..., Client]) -> None:
    html = staff_client("view_tenant").get(reverse("admin:index")).content.decode()
    assert "<title>Dashboard | PondOps</title>" in html
    assert '<div id="site-name"><a href="/admin/">PondOps operations console</a></div>' in html
    assert "Django administration" not in html and "Django site admin" not in html


def test_the_login_page_carries_the_product_name(client: Client) -> None:
    html = client.get(reverse("admin:login")).content.decode()
    assert "PondOps operations console" in html and "Django administration" not in html


def test_every_model_admin_is_on_the_pondops_site() -> None:
    assert isinstance(admin.site, PondOpsAdminSite)
    for model in (
        BulkChange,
        DeviceChange,
        BulkChangeLog,
        Tenant,
        IntegrationAuthentication,
        DeviceStatus,
        Device,
        PartnerProfile,
        PartnerApiKey,
        WebhookDelivery,
    ):
        assert admin.site.is_registered(model), model


CHANGELISTS = {
    "bulkchange": "Bulk changes",
    "devicechange": "Device changes",
    "bulkchangelog": "Audit log",
    "carriercallback": "Carrier callbacks",
    "webhookdelivery": "Webhook deliveries",
    "integrationauthentication": "Integration authentications",
    "device": "Devices",
}


@pytest.mark.parametrize(("model", "title"), CHANGELISTS.items())
def test_lists_are_titled_in_plain_words_under_one_breadcrumb(
    admin_client: Client, model: str, title: str
) -> None:
    html = admin_client.get(reverse(f"admin:bulkchanges_{model}_changelist")).content.decode()
    assert f"<h1>{title}</h1>" in html
    assert f"<title>{title} | PondOps</title>" in html
    assert "Select " not in html.split("<h1>")[1].split("</h1>")[0]
    crumbs = html[html.index('class="breadcrumbs"') :].split("</div>")[0]
    assert ">Operations</a>" in crumbs and "Bulk changes &rsaquo; Bulk changes" not in crumbs


def test_no_view_site_link_leads_nowhere(admin_client: Client) -> None:
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "View site" not in html


def test_every_console_page_loads_the_time_script(admin_client: Client, client: Client) -> None:
    script = '<script src="/static/bulkchanges/pondops.js"></script>'
    for url in (
        reverse("admin:index"),
        reverse("admin:bulkchanges_devicechange_changelist"),
        reverse("admin:bulkchanges_bulkchangelog_changelist"),
        reverse("admin:password_change"),
    ):
        assert script in admin_client.get(url).content.decode(), url
    assert script in client.get(reverse("admin:login")).content.decode()


def test_the_password_and_logout_pages_carry_the_product_name(admin_client: Client) -> None:
    for url in (reverse("admin:password_change"), reverse("admin:password_change_done")):
        html = admin_client.get(url).content.decode()
        assert "PondOps operations console" in html and "Django" not in html, url
    html = admin_client.post(reverse("admin:logout")).content.decode()
    assert "PondOps operations console" in html and "Django administration" not in html


def test_recent_actions_show_what_the_user_did_through_the_console(
    admin_client: Client, device_statuses: None
) -> None:
    from django.contrib.auth.models import User
    from django.test import RequestFactory

    from bulkchanges.admin.history import history_record

    tenant = Tenant.objects.create(name="Acme IoT")
    request = RequestFactory().get("/")
    request.user = User.objects.get(username="admin")
    history_record(request, tenant, "Cancelled: 3 devices cancelled")

    html = admin_client.get(reverse("admin:index")).content.decode()

    recent = html[html.index('id="recent-actions-module"') :]
    assert "Acme IoT" in recent and "None available" not in recent
    # The object's HISTORY shows it with the console's time (seconds, a <time> element), and
    # Django's own pages format moments with seconds too (pondops/formats).
    history = admin_client.get(
        reverse("admin:bulkchanges_tenant_history", args=[tenant.pk])
    ).content.decode()
    assert "Cancelled: 3 devices cancelled" in history
    assert re.search(r'<time class="pondops-time" datetime="[^"]+Z"', history)
    assert "a.m." not in history and "p.m." not in history
    from django.utils import formats

    assert formats.date_format(tenant.created_at, "DATETIME_FORMAT").endswith(" UTC")


def test_every_page_with_a_moment_shows_it_the_console_way(
    admin_client: Client, device_statuses: None
) -> None:
    """Lists and pages of callbacks, webhook deliveries, tenants, devices, credentials and
    partner API keys: seconds, a <time> element, never Django's "Dec. 1, 2026, 7:52 p.m."."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from bulkchanges.models import CarrierCallback
    from tests.admin.conftest import Console, make_bulk_change

    tenant = Tenant.objects.create(name="Acme IoT")
    pond = IntegrationAuthentication.objects.create(
        tenant=tenant, integration="POND", base_url="http://127.0.0.1:9/pond", account="1"
    )
    rev = IntegrationAuthentication.objects.create(
        tenant=tenant, integration="REV", base_url="http://127.0.0.1:9/rev", account="R"
    )
    bulk_change = make_bulk_change(Console(tenant, pond, rev), 1)
    now = timezone.now()
    callback = CarrierCallback.objects.create(
        integration="THINGSPACE",
        integration_authentication=pond,
        request_id="req-1",
        outcome=CarrierCallback.Outcome.SUCCEEDED,
        method="POST",
        path="/carriers/thingspace/callbacks/1/",
    )
    delivery = WebhookDelivery.objects.create(
        bulk_change=bulk_change, completed_at=now, attempt=1, payload="{}", next_attempt_at=now
    )
    device = Device.objects.create(tenant=tenant, integration="POND", iccid="89148000000000000001")
    partner = User.objects.create_user("partner")
    PartnerProfile.objects.create(user=partner, tenant=tenant)
    key, _ = PartnerApiKey.objects.create_key(name="k", tenant=tenant, user=partner)
    with_times = [
        reverse("admin:bulkchanges_carriercallback_changelist"),
        reverse("admin:bulkchanges_carriercallback_change", args=[callback.pk]),
        reverse("admin:bulkchanges_webhookdelivery_changelist"),
        reverse("admin:bulkchanges_webhookdelivery_change", args=[delivery.pk]),
        reverse("admin:bulkchanges_tenant_changelist"),
        reverse("admin:bulkchanges_tenant_change", args=[tenant.pk]),
        reverse("admin:bulkchanges_device_changelist"),
        reverse("admin:bulkchanges_device_change", args=[device.pk]),
        reverse("admin:bulkchanges_partnerprofile_changelist"),
        reverse("admin:bulkchanges_partnerapikey_changelist"),
        reverse("admin:bulkchanges_partnerapikey_change", args=[key.pk]),
    ]
    without = [
        reverse("admin:bulkchanges_integrationauthentication_changelist"),
        reverse("admin:bulkchanges_integrationauthentication_change", args=[pond.pk]),
    ]
    for url in with_times + without:
        response = admin_client.get(url)
        html = response.content.decode()
        assert response.status_code == 200, url
        assert ('class="pondops-time"' in html) == (url in with_times), url
        assert "a.m." not in html and "p.m." not in html, url
