"""Admin registrations: enough to inspect the system; secrets are write-only and the audit log
is read-only. (The full operations console is built on top of these.)"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    Device,
    DeviceChange,
    DeviceStatus,
    IntegrationAuthentication,
    Tenant,
)

SECRET_FIELDS = ("secret", "secret_2")


class IntegrationAuthenticationForm(forms.ModelForm):
    """Secrets are never rendered; a blank field keeps the stored secret."""

    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave blank to keep the stored secret.",
    )
    secret_2 = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Write-only (ThingSpace UWS password).",
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
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELDS:
            self.initial[name] = ""

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        for name in SECRET_FIELDS:
            if not cleaned.get(name) and self.instance.pk:
                cleaned[name] = getattr(
                    IntegrationAuthentication.objects.only(name).get(pk=self.instance.pk), name
                )
        return cleaned


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "created_at")
    search_fields = ("name",)


@admin.register(IntegrationAuthentication)
class IntegrationAuthenticationAdmin(admin.ModelAdmin):
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
    search_fields = ("account", "username", "tenant__name")


@admin.register(DeviceStatus)
class DeviceStatusAdmin(admin.ModelAdmin):
    list_display = ("integration", "code", "display_name", "is_active_status")
    list_filter = ("integration",)


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ("iccid", "msisdn", "tenant", "integration", "status", "updated_at")
    list_filter = ("integration", "tenant")
    search_fields = ("=iccid", "=msisdn", "=eid")
    list_select_related = ("tenant", "status")


@admin.register(BulkChange)
class BulkChangeAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "tenant",
        "integration",
        "target_status",
        "status",
        "created_by",
        "created_at",
        "processed_at",
    )
    list_filter = ("status", "integration", "tenant")
    search_fields = ("=id", "=device_changes__iccid")
    readonly_fields = [field.name for field in BulkChange._meta.fields]
    list_select_related = ("tenant",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created through services (commands, API, the new-bulk-change form)


@admin.register(DeviceChange)
class DeviceChangeAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "bulk_change_id",
        "iccid",
        "status",
        "attempts",
        "last_error",
        "processed_at",
    )
    list_filter = ("status",)
    search_fields = ("=iccid", "=msisdn", "=bulk_change__id")
    readonly_fields = [field.name for field in DeviceChange._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(BulkChangeLog)
class BulkChangeLogAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "bulk_change_id",
        "device_change_id",
        "log_entry_description",
        "response_status",
        "has_errors",
        "process_by",
        "processed_at",
    )
    list_filter = ("has_errors", "log_entry_description")
    search_fields = ("=bulk_change__id", "=device_change__iccid")
    readonly_fields = [field.name for field in BulkChangeLog._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
