"""Who is calling and what they may see: a partner token sees its tenant only; a staff token
sees every tenant. Throttling is per token."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from rest_framework.authentication import TokenAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from bulkchanges.errors import ApplicationError, NotFound
from bulkchanges.models import PartnerProfile, Tenant


@dataclass(frozen=True)
class PartnerScope:
    """The caller: ``tenant`` is None for staff (every tenant); ``home_tenant`` is the tenant of
    the caller's partner profile, if any (the default for staff writes)."""

    actor: str
    tenant: Tenant | None
    home_tenant: Tenant | None

    def tenant_for_write(self, tenant_id: int | None) -> Tenant:
        """The tenant a create or rotation acts on. Partners act on their own (naming another
        tenant is a 404, as for any unknown id); staff name one unless they have a profile."""
        if self.tenant is not None:
            if tenant_id is not None and tenant_id != self.tenant.pk:
                raise NotFound(f"tenant {tenant_id} does not exist")
            return self.tenant
        if tenant_id is None:
            if self.home_tenant is not None:
                return self.home_tenant
            raise ApplicationError(
                "staff tokens must name the tenant to act for",
                fields={"tenant": ["required for staff tokens"]},
            )
        found = Tenant.objects.filter(pk=tenant_id).first()
        if found is None:
            raise NotFound(f"tenant {tenant_id} does not exist")
        return found


def partner_scope(request: Request) -> PartnerScope:
    """The caller's scope (set by :class:`IsPartnerOrStaff`, computed here on first use)."""
    cached: PartnerScope | None = getattr(request, "_partner_scope", None)
    if cached is not None:
        return cached
    user: Any = request.user
    profile = PartnerProfile.objects.select_related("tenant").filter(user_id=user.pk).first()
    home = profile.tenant if profile else None
    if user.is_staff:
        scope = PartnerScope(actor=f"api:{user.get_username()}", tenant=None, home_tenant=home)
    elif home is not None:
        scope = PartnerScope(actor=f"api:{user.get_username()}", tenant=home, home_tenant=home)
    else:
        raise ApplicationError(
            "this token belongs to no tenant; ask PondOps to bind the user to one",
            code="permission_denied",
            status=403,
        )
    request._partner_scope = scope  # type: ignore[attr-defined]
    return scope


class IsPartnerOrStaff(BasePermission):
    """An active user with a token, who is staff or bound to a tenant."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        partner_scope(request)
        return True


class PartnerTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>`` (DRF's token), the only way into the partner API."""


class PartnerTokenThrottle(SimpleRateThrottle):
    """PONDOPS_API_THROTTLE_RATE requests per token (read on each request, so tests and
    operators can change it); 429 with Retry-After beyond it."""

    scope = "partner"

    def get_rate(self) -> str | None:
        rate: str | None = settings.PONDOPS_API_THROTTLE_RATE or None
        return rate

    def allow_request(self, request: Request, view: APIView) -> bool:
        # SimpleRateThrottle reads the rate once, in __init__; re-read it per request.
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        token = getattr(request.auth, "key", None)
        if token:
            ident = hashlib.sha256(str(token).encode()).hexdigest()[:32]
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = self.get_ident(request)
        return f"pondops:throttle:{self.scope}:{ident}"
