"""Model admins for rows that only the services write."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest


class ReadOnlyAdmin(admin.ModelAdmin):
    """Staff may view these rows but never add, edit or delete them here: bulk changes and
    their devices are created through the services, their audit log and webhook deliveries
    are written by the services only (and deleting a bulk change would delete its log)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
