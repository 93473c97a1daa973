"""The admin login lockout's two hooks into django-axes (settings ``AXES_*``): who the client is,
and what a locked-out client is told.

The client address follows the API's rule (DRF's throttles, ``BaseThrottle.get_ident``):
REMOTE_ADDR, or, with ``REST_FRAMEWORK["NUM_PROXIES"]`` trusted proxies in front, the address
the outermost of them saw in X-Forwarded-For. One difference, on purpose: with NUM_PROXIES
unset DRF would trust the whole X-Forwarded-For header, which a client writes itself (a new
value per attempt would dodge the lockout); here unset means no proxy.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

LOCKOUT_TEMPLATE = "admin/login_locked.html"


def client_address(request: HttpRequest) -> str | None:
    """The client's address for the lockout (the API's rule; see the module docstring); None
    for a request that came from no address (a test client's ``force_login``)."""
    if api_settings.NUM_PROXIES is None:
        address = request.META.get("REMOTE_ADDR")
    else:
        address = BaseThrottle().get_ident(request)  # type: ignore[arg-type]
    return str(address) if address else None


def lockout_minutes() -> int:
    cool_off = settings.AXES_COOLOFF_TIME
    assert isinstance(cool_off, timedelta)
    return max(1, round(cool_off.total_seconds() / 60))


def login_lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """The lockout page: 429, what happened, how long it lasts, and how an operator lifts it.
    The right password is refused too until then."""
    context = {
        **admin.site.each_context(request),  # the console's name and header
        "title": "Login locked",
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "minutes": lockout_minutes(),
    }
    return render(request, LOCKOUT_TEMPLATE, context, status=429)
