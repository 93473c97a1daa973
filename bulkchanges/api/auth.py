"""Who is calling and what they may do. A partner API key (``Authorization: Api-Key <key>``,
stored hashed by djangorestframework-api-key) acts for one user within exactly one tenant
with one role; nothing widens that tenant — not a staff flag, not a superuser flag. Failed
authentication is throttled per client address, valid keys per key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from bulkchanges.errors import ApplicationError, NotFound
from bulkchanges.models import PartnerApiKey, Tenant

if TYPE_CHECKING:  # rest_framework.views imports this module (DEFAULT_AUTHENTICATION_CLASSES)
    from rest_framework.views import APIView

KEYWORD = "Api-Key"
# Keys converted from DRF tokens (migration 0012) have no "prefix." part: their prefix is
# their first characters.
LEGACY_PREFIX_LENGTH = 8
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is written at most this often

Role = PartnerApiKey.Role


@dataclass(frozen=True)
class PartnerScope:
    """The caller: the key's one tenant and role, and the name audit rows record."""

    actor: str
    tenant: Tenant
    role: str
    key_prefix: str

    def tenant_for_write(self, tenant_id: int | None) -> Tenant:
        """The tenant a create or rotation acts on: always the key's own. Naming another
        tenant is a 404, as for any unknown id (``tenant`` stays accepted for callers that
        name their own)."""
        if tenant_id is not None and tenant_id != self.tenant.pk:
            raise NotFound(f"tenant {tenant_id} does not exist")
        return self.tenant


def partner_scope(request: Request) -> PartnerScope:
    """The scope of the request's API key (authenticated by :class:`PartnerApiKeyAuthentication`
    and checked by :class:`IsPartner`)."""
    api_key: PartnerApiKey = request.auth  # type: ignore[assignment]
    return PartnerScope(
        actor=f"api:{api_key.user.get_username()}",
        tenant=api_key.tenant,
        role=api_key.role,
        key_prefix=api_key.prefix,
    )


def key_prefix(key: str) -> str:
    """The prefix that finds a key's row: before the dot, or a legacy key's first characters."""
    prefix, dot, _ = key.partition(".")
    return prefix if dot else key[:LEGACY_PREFIX_LENGTH]


class ApiAuthFailureThrottle(SimpleRateThrottle):
    """At most PONDOPS_API_AUTH_FAILURE_RATE failed authentications per client address (read on
    each request; empty: no limit). An address over it gets 429 with Retry-After for every
    request that carries credentials, valid ones included — otherwise a guesser would learn
    which guess was right from the one answer that is not a 429. Only failures are counted,
    so partners with valid keys, from any address, never spend this budget.

    The client address is REMOTE_ADDR, or with PONDOPS_TRUSTED_PROXY_HOPS = N > 0 (DRF's
    NUM_PROXIES) the address N hops back in X-Forwarded-For; a client cannot pick its own.
    Counts live in Django's cache (Redis in production, shared by every host); like DRF's
    throttles they are approximate under concurrent failures."""

    scope = "api-auth-failure"

    def __init__(self) -> None:  # the rate is read per request, not once
        pass

    def get_rate(self) -> str | None:
        rate: str | None = settings.PONDOPS_API_AUTH_FAILURE_RATE or None
        return rate

    def get_cache_key(self, request: Request, view: APIView | None = None) -> str:
        return f"pondops:throttle:{self.scope}:{self.get_ident(request)}"

    def _load(self, request: Request) -> bool:
        self.rate = self.get_rate()
        if self.rate is None:
            return False
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        since = self.now - (self.duration or 0)
        self.history = [at for at in self.cache.get(self.key, []) if at > since]
        return True

    def blocked_for(self, request: Request) -> float | None:
        """Seconds this address must wait before trying again; None while under the limit."""
        if not self._load(request) or len(self.history) < (self.num_requests or 0):
            return None
        return self.wait()

    def record_failure(self, request: Request) -> None:
        if self._load(request):
            self.history.insert(0, self.now)
            self.cache.set(self.key, self.history, self.duration)


class PartnerApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Api-Key <key>``, the only way into the partner API. Returns the key's
    user and the key itself (``request.auth``). Refusals are 401s naming the cause: an
    unsupported scheme, an unknown key, "API key revoked", "API key expired" (the last two
    only to a caller holding the real key) or an inactive user; each counts against the
    client address (:class:`ApiAuthFailureThrottle`)."""

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD

    def authenticate(self, request: Request) -> tuple[Any, PartnerApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None  # 401 "not_authenticated"
        wait = ApiAuthFailureThrottle().blocked_for(request)
        if wait is not None:
            raise Throttled(
                wait=wait, detail="too many failed API key authentications from your address."
            )
        scheme, _, key = header.partition(" ")
        if scheme.lower() != KEYWORD.lower():
            self._fail(
                request,
                f"unsupported authorization scheme {scheme[:20]!r}; "
                f"send 'Authorization: {KEYWORD} <key>'",
            )
        key = key.strip()
        if not key or " " in key:
            self._fail(request, f"malformed Authorization header; send '{KEYWORD} <key>'")
        api_key = (
            PartnerApiKey.objects.select_related("tenant", "user", "user__partner_profile")
            .filter(prefix=key_prefix(key))
            .first()
        )
        if api_key is None or not api_key.is_valid(key):
            self._fail(request, "invalid API key")
        assert api_key is not None
        if api_key.revoked:
            self._fail(request, "API key revoked")
        if api_key.has_expired:
            self._fail(request, "API key expired")
        if not api_key.user.is_active:
            self._fail(request, "the API key's user is inactive")
        _touch(api_key)
        return api_key.user, api_key

    def _fail(self, request: Request, detail: str) -> None:
        ApiAuthFailureThrottle().record_failure(request)
        raise AuthenticationFailed(detail)


def _touch(api_key: PartnerApiKey) -> None:
    """Record when the key was last used, at most once a minute (no write per request)."""
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        PartnerApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


class IsPartner(BasePermission):
    """A partner API key whose tenant is its user's tenant, holding the role the view needs:
    ``view.required_role`` if it names one, else read for GET/HEAD/OPTIONS and submit for
    anything else (a read key cannot create or act)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        api_key = request.auth
        if not isinstance(api_key, PartnerApiKey):
            return False
        profile = getattr(api_key.user, "partner_profile", None)
        if profile is None or profile.tenant_id != api_key.tenant_id:
            raise ApplicationError(
                "this API key's user does not belong to the key's tenant; "
                "ask PondOps to issue a new key",
                code="permission_denied",
                status=403,
            )
        required = getattr(view, "required_role", None) or (
            Role.READ if request.method in SAFE_METHODS else Role.SUBMIT
        )
        if not api_key.allows(required):
            raise ApplicationError(
                f"this API key has the {api_key.role} role, which cannot do this; "
                f"it needs a key with the {required} role",
                code="permission_denied",
                status=403,
            )
        return True


class PartnerApiKeyThrottle(SimpleRateThrottle):
    """PONDOPS_API_THROTTLE_RATE requests per API key (read on each request, so tests and
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
        prefix = getattr(request.auth, "prefix", None)
        ident = f"key-{prefix}" if prefix else self.get_ident(request)
        return f"pondops:throttle:{self.scope}:{ident}"
