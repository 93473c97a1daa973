"""OpenAPI helpers: the API key security scheme, the documented error responses of each
operation, and a postprocessing hook that documents the headers DRF's views send (Retry-After
on 429, WWW-Authenticate on 401, Location on create)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse

from bulkchanges.api.errors import ErrorSerializer

ERRORS = {
    400: "Invalid request: `fields` names each problem.",
    401: "No API key, or an unknown, revoked or expired one, or its user is inactive "
    "(`Authorization: Api-Key <key>`).",
    403: "The key's role cannot do this (a read key cannot create or act), or its user no "
    "longer belongs to the key's tenant.",
    404: "No such bulk change (or device change, or page) for this key's tenant.",
    409: "Conflict: the bulk change's state forbids the action, or the Idempotency-Key was "
    "already used with a different request.",
    413: "Too many devices, or a request body over the size limit.",
    415: "Unsupported Content-Type.",
    429: "Too many requests for this key, or too many failed authentications from this "
    "address; retry after `Retry-After` seconds.",
}
ALWAYS = (401, 403, 429)


class PartnerApiKeyScheme(OpenApiAuthenticationExtension):
    """Declares :class:`~bulkchanges.api.auth.PartnerApiKeyAuthentication` in the schema (an
    ``apiKey`` in the Authorization header), so /api/schema/ names how to authenticate."""

    target_class = "bulkchanges.api.auth.PartnerApiKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`: a partner API key, shown once when issued.",
        }


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """Error responses for an operation: the given statuses plus 401, 403 and 429."""
    return {
        status: OpenApiResponse(ErrorSerializer, description=ERRORS[status])
        for status in sorted({*statuses, *ALWAYS})
    }


LOCATION = {"Location": {"description": "The bulk change's URL.", "schema": {"type": "string"}}}
# Per operation: status → headers.
OPERATION_HEADERS: dict[str, dict[str, dict[str, Any]]] = {
    "bulk_changes_create": {
        "201": LOCATION,
        "200": {
            **LOCATION,
            "Idempotent-Replayed": {
                "description": "true: this answers a repeat of an earlier request.",
                "schema": {"type": "string", "enum": ["true"]},
            },
        },
    },
    "bulk_changes_export_csv": {
        "200": {
            "Content-Disposition": {
                "description": 'attachment; filename="bulk-change-<id>.csv"',
                "schema": {"type": "string"},
            }
        }
    },
}

HEADERS: dict[str, dict[str, Any]] = {
    "429": {
        "Retry-After": {
            "description": "Seconds to wait before the next request.",
            "schema": {"type": "integer"},
        }
    },
    "401": {
        "WWW-Authenticate": {"description": "The scheme: Api-Key.", "schema": {"type": "string"}}
    },
}


def postprocess(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOK for what views enforce beyond their serializers:
    the response headers DRF sets, and query parameters that must not be empty when given
    (the FilterSets are strict)."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            responses = operation.get("responses", {})
            for status, headers in HEADERS.items():
                if status in responses:
                    responses[status].setdefault("headers", {}).update(headers)
            for status, headers in OPERATION_HEADERS.get(
                operation.get("operationId", ""), {}
            ).items():
                if status in responses:
                    responses[status].setdefault("headers", {}).update(headers)
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if parameter.get("in") != "query":
                    continue
                if schema.get("type") == "string":
                    schema.setdefault("minLength", 1)
                elif schema.get("type") == "array":
                    schema.setdefault("minItems", 1)
    return result
