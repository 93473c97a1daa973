"""Partner access in the console: which user belongs to which tenant, their API keys, and the
completion webhooks' deliveries.

API keys are issued here (or by ``manage.py create_partner_token``) and shown once, on the
page that follows "Save"; only their hash is stored, so no page can show them again. The lists
show a key's prefix, never the key."""

from __future__ import annotations

from typing import Any

import rest_framework_api_key.admin  # registers the library's own APIKey, which PondOps doesn't use
from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import ForeignKey
from django.forms import ModelChoiceField
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.safestring import SafeString
from rest_framework_api_key.models import APIKey

from bulkchanges.admin import display
from bulkchanges.admin.readonly import ReadOnlyAdmin
from bulkchanges.admin.tenancy import TenantScopedAdmin, request_tenant_ids, tenant_scope
from bulkchanges.errors import ApplicationError
from bulkchanges.models import PartnerApiKey, PartnerProfile, WebhookDelivery
from bulkchanges.services.partners import partner_api_key_check, partner_api_key_issue

# The library's own APIKey model stands unused (PartnerApiKey is ours): keep it off the console.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)
assert rest_framework_api_key.admin  # imported for its registration, undone above

ISSUED_KEY = "_pondops_issued_api_key"  # the request attribute holding the key just issued


@admin.register(PartnerProfile)
class PartnerProfileAdmin(TenantScopedAdmin):
    tenant_path = "tenant"
    list_display = ("user", "tenant", "created")
    list_filter = ("tenant",)
    search_fields = ("user__username", "tenant__name")
    raw_id_fields = ("user",)
    list_select_related = ("user", "tenant")
    readonly_fields = ("created",)

    created = display.timestamp_column("created_at", "created")


class PartnerApiKeyForm(forms.ModelForm):
    """A new key's user, tenant, role, name and expiry, checked by the service's rules (the
    tenant must be the user's), each refusal shown on its field."""

    class Meta:
        model = PartnerApiKey
        fields = ("name", "tenant", "user", "role", "expiry_date")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if self.instance._state.adding and {"user", "tenant", "role"} <= set(cleaned):
            try:
                partner_api_key_check(
                    user=cleaned["user"],
                    tenant=cleaned["tenant"],
                    role=cleaned["role"],
                    name=cleaned.get("name") or "",
                    expiry_date=cleaned.get("expiry_date"),
                )
            except ApplicationError as error:
                raise ValidationError(
                    {field: messages for field, messages in error.fields.items()} or error.detail
                ) from None
        return cleaned


@admin.register(PartnerApiKey)
class PartnerApiKeyAdmin(TenantScopedAdmin):
    """Issue, list and revoke partner API keys. A key's user, tenant and role are fixed once
    issued (issue another key to change them); a revoked key is read-only for good."""

    tenant_path = "tenant"
    form = PartnerApiKeyForm
    list_display = (
        "prefix",
        "name",
        "tenant",
        "user",
        "role",
        "expires",
        "revoked",
        "last_used",
        "issued",
    )
    list_filter = ("role", "revoked", "tenant")
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("tenant", "user")
    ordering = ("-created",)

    expires = display.timestamp_column("expiry_date", "expires")
    last_used = display.timestamp_column("last_used_at", "last used")
    issued = display.timestamp_column("created", "issued")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return PartnerApiKeyForm.Meta.fields
        shown = (*self.list_display, "created_by")
        # An unrevoked key's expiry stays editable (a form field); a revoked one's is shown.
        return (
            shown
            if obj.revoked
            else tuple("expiry_date" if name == "expires" else name for name in shown)
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ()
        fixed = ("prefix", "tenant", "user", "role", "issued", "created_by", "last_used")
        return (*fixed, "name", "expires", "revoked") if obj.revoked else fixed

    def formfield_for_foreignkey(
        self, db_field: ForeignKey, request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        if db_field.name == "user":  # partner users of the operator's tenants only
            kwargs["queryset"] = tenant_scope(
                get_user_model().objects.filter(partner_profile__isnull=False),
                tenant_path="partner_profile__tenant",
                tenant_ids=request_tenant_ids(request),
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            obj.save()
            return
        key = partner_api_key_issue(api_key=obj, created_by=f"admin:{request.user.get_username()}")
        setattr(request, ISSUED_KEY, key)

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        """The page that shows the new key, once: rendered in answer to the POST (never
        stored in the session or a message); the admin's views are never cached."""
        key = getattr(request, ISSUED_KEY, None)
        if key is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Copy the new API key",
            "api_key": obj,
            "key": key,
        }
        return TemplateResponse(
            request, "admin/bulkchanges/partnerapikey/key_created.html", context
        )


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(TenantScopedAdmin, ReadOnlyAdmin):
    """Read-only: attempts are written by the webhook service only."""

    tenant_path = "bulk_change__tenant"

    list_display = (
        "id",
        "bulk_change_link",
        "attempt",
        "status",
        "response_status",
        "next_attempt",
        "finished",
    )
    list_filter = ("status",)
    search_fields = ("=bulk_change__id",)
    search_help_text = "A bulk change id."
    # Every field, its moments shown as the console shows moments.
    readonly_fields = [
        {
            "completed_at": "completed",
            "next_attempt_at": "next_attempt",
            "claimed_until": "claimed_until_time",
            "started_at": "started",
            "finished_at": "finished",
            "created_at": "created",
        }.get(field.name, field.name)
        for field in WebhookDelivery._meta.fields
    ]
    fields = tuple(readonly_fields)

    completed = display.timestamp_column("completed_at", "bulk change completed")
    next_attempt = display.timestamp_column("next_attempt_at", "next attempt")
    claimed_until_time = display.timestamp_column("claimed_until", "claimed until")
    started = display.timestamp_column("started_at", "started")
    finished = display.timestamp_column("finished_at", "finished")
    created = display.timestamp_column("created_at", "created")

    @admin.display(description="bulk change", ordering="bulk_change_id")
    def bulk_change_link(self, delivery: WebhookDelivery) -> SafeString:
        return display.bulk_change_link(delivery.bulk_change_id)
