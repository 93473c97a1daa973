"""Partner access in the console: which user belongs to which tenant, and the completion
webhooks' deliveries. Tokens themselves are created in DRF's own "Tokens" admin
(rest_framework.authtoken) or by ``manage.py create_partner_token``."""

from __future__ import annotations

from django.contrib import admin

from bulkchanges.admin.readonly import ReadOnlyAdmin
from bulkchanges.admin.tenancy import TenantScopedAdmin
from bulkchanges.models import PartnerProfile, WebhookDelivery


@admin.register(PartnerProfile)
class PartnerProfileAdmin(TenantScopedAdmin):
    tenant_path = "tenant"
    list_display = ("user", "tenant", "created_at")
    list_filter = ("tenant",)
    search_fields = ("user__username", "tenant__name")
    raw_id_fields = ("user",)
    list_select_related = ("user", "tenant")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    """Read-only: attempts are written by the webhook service only."""

    tenant_path = "bulk_change__tenant"

    list_display = (
        "id",
        "bulk_change_id",
        "attempt",
        "status",
        "response_status",
        "next_attempt_at",
        "finished_at",
    )
    list_filter = ("status",)
    search_fields = ("=bulk_change__id",)
    readonly_fields = [field.name for field in WebhookDelivery._meta.fields]
