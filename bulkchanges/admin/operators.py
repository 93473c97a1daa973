"""Which tenants an operator belongs to (``OperatorMembership``): edited by superusers on the
user's page (Django's user admin, re-registered here with the memberships inline, and for
superusers only: whoever may edit users may make anyone a superuser or a member of any
tenant), and listed on each tenant's page."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest

from bulkchanges.admin.tenancy import SuperuserOnlyAdmin, is_superuser
from bulkchanges.models import OperatorMembership


class MembershipInline(admin.TabularInline):
    """Superusers add and remove memberships; others at most read them."""

    model = OperatorMembership
    extra = 0
    readonly_fields = ("created_at",)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_superuser(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_superuser(request)


class UserMembershipInline(MembershipInline):
    fields = ("tenant", "created_at")
    verbose_name = "operator membership"
    verbose_name_plural = "operator memberships (the tenants this user sees in the console)"


class TenantMembershipInline(MembershipInline):
    """On a tenant's page: its operators, visible to whoever may view the tenant."""

    fields = ("user", "created_at")
    raw_id_fields = ("user",)
    verbose_name = "operator"
    verbose_name_plural = "operators (staff who see this tenant in the console)"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or request.user.has_perm(
            "bulkchanges.view_tenant"
        )


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class OperatorUserAdmin(SuperuserOnlyAdmin, UserAdmin):
    inlines = (UserMembershipInline,)  # Django's UserAdmin has no inlines of its own
    list_display = ("username", "email", "first_name", "last_name", "is_staff", "tenants")

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("operator_memberships__tenant")

    @admin.display(description="tenants")
    def tenants(self, user: Any) -> str:
        if user.is_superuser:
            return "all (superuser)"
        names = [membership.tenant.name for membership in user.operator_memberships.all()]
        return ", ".join(names) or "none"
