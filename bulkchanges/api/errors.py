"""The API's one error shape, ``{"code", "detail", "fields"}``, produced by one exception
handler for every failure: ApplicationError (the services' errors), DRF's validation, parse,
authentication, permission, not-found, throttling and method errors, Django's Http404 and
PermissionDenied, and anything unexpected (500, logged, no internals shown)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from bulkchanges.errors import ApplicationError

logger = logging.getLogger(__name__)


class ErrorSerializer(serializers.Serializer):
    """Every error response."""

    code = serializers.CharField(help_text="Stable machine-readable code, e.g. not_found.")
    detail = serializers.CharField(help_text="What went wrong, for a human.")
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Field (or header) name → messages; empty when the error has no field.",
    )


def error_body(code: str, detail: str, fields: Mapping[str, list[str]] | None = None) -> dict:
    return {"code": code, "detail": detail, "fields": dict(fields or {})}


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested validation detail as ``{"devices.3.iccid": ["…"]}``."""
    if isinstance(detail, Mapping):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            for field, messages in _flatten(value, name).items():
                out.setdefault(field, []).extend(messages)
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, Mapping | list) for item in detail):
            return {prefix or "non_field_errors": [str(item) for item in detail]}
        out = {}
        for index, item in enumerate(detail):
            if item:
                for field, messages in _flatten(item, f"{prefix}.{index}").items():
                    out.setdefault(field, []).extend(messages)
        return out
    return {prefix or "non_field_errors": [str(detail)]}


def _api_exception(exc: exceptions.APIException) -> tuple[str, str, dict[str, list[str]]]:
    if isinstance(exc, exceptions.ValidationError):
        return "invalid", "the request is invalid", _flatten(exc.detail)
    code = exc.default_code
    detail = exc.detail
    if isinstance(detail, Mapping | list):
        return code, str(exc.default_detail), _flatten(detail)
    code = getattr(detail, "code", None) or code
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        code = exc.default_code  # DRF's "not_authenticated" / "authentication_failed"
    return str(code), str(detail), {}


def exception_handler(exc: Exception, context: Mapping[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER for the whole API."""
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        body, status = error_body(exc.code, exc.detail, exc.fields), exc.status
    elif isinstance(exc, Http404):
        body, status = error_body("not_found", "not found"), 404
    elif isinstance(exc, DjangoPermissionDenied):
        body, status = error_body("permission_denied", "permission denied"), 403
    elif isinstance(exc, exceptions.APIException):
        code, detail, fields = _api_exception(exc)
        body, status = error_body(code, detail, fields), exc.status_code
        wait = getattr(exc, "wait", None)  # Throttled
        if wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
    else:
        view = context.get("view")
        logger.exception("unexpected error in %s", type(view).__name__ if view else "the API")
        body, status = error_body("server_error", "an unexpected error occurred"), 500
    return Response(body, status=status, headers=headers)


@csrf_exempt
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Unknown paths under /api/ (and unknown versions) answer in the API's error shape, with a
    hint when only the trailing slash is missing (no redirect: it would drop a POST's body)."""
    detail = f"no API endpoint at {request.path}"
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            detail += f"; did you mean {request.path}/ ?"
    return JsonResponse(error_body("not_found", detail), status=404)
