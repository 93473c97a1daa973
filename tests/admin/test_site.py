"""The console's admin site (bulkchanges/admin/site.py): PondOps' name on its pages, and
every bulkchanges model's pages on it."""

from __future__ import annotations

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
