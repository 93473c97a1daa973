"""Tenants, credentials, device statuses and the device inventory. Credentials' secrets are
write-only: never rendered, and a blank field keeps the stored value."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from bulkchanges.admin import display
from bulkchanges.admin.filters import IdentifierPrefixSearch
from bulkchanges.admin.operators import TenantMembershipInline
from bulkchanges.admin.tenancy import ReferenceDataAdmin, TenantScopedAdmin, is_superuser
from bulkchanges.errors import ApplicationError
from bulkchanges.models import (
    CredentialsChange,
    Device,
    DeviceStatus,
    IntegrationAuthentication,
    Tenant,
)
from bulkchanges.services.callback_registration import carrier_callback_register
from bulkchanges.services.inventory import (
    SECRET_FIELDS,
    base_url_change_problems,
    credentials_change_summary,
    integration_authentication_save,
)
from integrations.base import Integration, default_limits

LIMIT_FIELDS = ("rate_limit", "max_concurrency")


def _limits_text(name: str) -> str:
    """Each integration's documented value of ``rate_limit`` or ``max_concurrency``."""
    index = LIMIT_FIELDS.index(name)
    return ", ".join(
        f"{label} {default_limits(value)[index]:.3g}" for value, label in Integration.choices
    )


class IntegrationAuthenticationForm(forms.ModelForm):
    """Secrets are never rendered; a blank field keeps the stored secret."""

    base_url = forms.URLField(max_length=500, assume_scheme="https")
    own_callback_url = forms.URLField(
        max_length=500,
        required=False,
        assume_scheme="https",
        help_text=IntegrationAuthentication._meta.get_field("own_callback_url").help_text,
    )
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave blank to keep the stored secret.",
    )
    secret_2 = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only (ThingSpace UWS password; Rev.io API-management subscription key). "
        "Leave blank to keep the stored one.",
    )

    class Meta:
        model = IntegrationAuthentication
        fields = (
            "tenant",
            "integration",
            "base_url",
            "account",
            "username",
            "client_id",
            "secret",
            "secret_2",
            "rate_limit",
            "max_concurrency",
            "daily_action_budget",
            "writes_enabled",
            "is_active",
            "own_callback_url",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            self.initial[name] = ""
        if not self.instance.pk:  # a new row starts at its carrier's documented limits
            for name in LIMIT_FIELDS:
                self.fields[name].required = False
                self.fields[name].help_text = (
                    f"{self.fields[name].help_text} Blank: the carrier's documented limit "
                    f"({_limits_text(name)})."
                ).strip()
                self.initial[name] = None

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        integration = cleaned.get("integration")
        # The secrets typed in this change (a blank field keeps the stored one, below).
        self.reentered = [name for name in SECRET_FIELDS if cleaned.get(name)]
        if integration and cleaned.get("base_url"):
            missing = base_url_change_problems(
                pk=self.instance.pk,
                integration=integration,
                base_url=cleaned["base_url"],
                reentered=self.reentered,
            )
            for name, problems in missing.items():
                self.add_error(name, problems)
        if not self.instance.pk and integration:
            for name, value in zip(LIMIT_FIELDS, default_limits(integration), strict=True):
                if cleaned.get(name) in (None, ""):
                    cleaned[name] = value
                    setattr(self.instance, name, value)
        for name in SECRET_FIELDS:
            if not cleaned.get(name) and self.instance.pk:
                cleaned[name] = getattr(
                    IntegrationAuthentication.objects.only(name).get(pk=self.instance.pk), name
                )
        return cleaned


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    """An operator sees and may rename their own tenants; only superusers add or delete one,
    or change its approval threshold (an operator raising it would switch off the four-eyes
    gate for their own bulk changes)."""

    tenant_path = "pk"
    list_display = ("id", "name", "created")
    search_fields = ("name",)
    inlines = (TenantMembershipInline,)
    readonly_fields = ("created",)

    created = display.timestamp_column("created_at", "created")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_superuser(request) and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_superuser(request) and super().has_delete_permission(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if is_superuser(request) else (*fields, "approval_threshold")


@admin.register(IntegrationAuthentication)
class IntegrationAuthenticationAdmin(TenantScopedAdmin):
    tenant_path = "tenant"
    form = IntegrationAuthenticationForm
    list_display = (
        "id",
        "tenant",
        "integration",
        "account",
        "username",
        "rate_limit",
        "max_concurrency",
        "writes_enabled",
        "is_active",
    )
    list_filter = ("integration", "writes_enabled", "is_active")
    list_select_related = ("tenant",)
    search_fields = ("account", "username", "tenant__name")
    actions = ("register_thingspace_callback",)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Through the one service that saves and audits a credentials change."""
        integration_authentication_save(
            row=obj,
            actor=request.user.get_username(),
            via=CredentialsChange.Via.ADMIN,
            reentered=getattr(form, "reentered", ()),
        )

    @admin.action(description="Register ThingSpace callback", permissions=("change",))
    def register_thingspace_callback(
        self, request: HttpRequest, queryset: QuerySet[IntegrationAuthentication]
    ) -> None:
        """Register CarrierService for each selected ThingSpace row (the same service as
        ``manage.py register_carrier_callbacks``)."""
        for credentials in queryset.order_by("pk"):
            try:
                result = carrier_callback_register(credentials=credentials)
            except ApplicationError as error:
                self.message_user(request, str(error), level=messages.ERROR)
                continue
            registered = (
                result.registration == IntegrationAuthentication.CallbackRegistration.REGISTERED
            )
            level = messages.SUCCESS if registered else messages.WARNING
            self.message_user(request, result.message, level=level)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        """A view-only page renders fields as text: there the secrets are replaced by whether
        one is stored."""
        fields = list(super().get_fields(request, obj))
        if obj is None or self.has_change_permission(request, obj):
            return fields
        return [name for name in fields if name not in SECRET_FIELDS]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [
            *super().get_readonly_fields(request, obj),
            "secrets_stored",
            "callback_registration",
            "callback_registered",
            "audited_changes",
        ]

    callback_registered = display.timestamp_column("callback_registered_at", "callback registered")

    @admin.display(description="audited changes")
    def audited_changes(self, credentials: IntegrationAuthentication) -> str:
        """Who changed what, newest first (the last 50): read-only, never a secret."""
        changes = CredentialsChange.objects.filter(credentials=credentials)[:50]
        if not credentials.pk or not changes:
            return "-"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li>{} — {} ({}): {}</li>",
                (
                    (
                        display.timestamp(change.changed_at),
                        change.actor,
                        change.get_via_display(),
                        ("created: " if change.created else "")
                        + credentials_change_summary(change),
                    )
                    for change in changes
                ),
            ),
        )

    @admin.display(description="secrets")
    def secrets_stored(self, credentials: IntegrationAuthentication) -> str:
        return ", ".join(
            f"{name}: {'stored' if getattr(credentials, name) else 'not set'}"
            for name in SECRET_FIELDS
        )


@admin.register(DeviceStatus)
class DeviceStatusAdmin(ReferenceDataAdmin):
    """Every carrier's statuses, shared by all tenants: read-only but for superusers."""

    list_display = ("integration", "code", "display_name", "is_active_status")
    list_filter = ("integration",)


@admin.register(Device)
class DeviceAdmin(IdentifierPrefixSearch, TenantScopedAdmin):
    tenant_path = "tenant"
    list_display = ("iccid", "msisdn", "tenant", "integration", "status", "updated")
    list_filter = ("integration", "tenant")
    prefix_search_fields = ("iccid", "msisdn", "eid")
    search_help_text = "The start of an ICCID, MSISDN or EID (digits; spaces are ignored)."
    list_select_related = ("tenant", "status")
    readonly_fields = ("updated",)

    updated = display.timestamp_column("updated_at", "updated")
