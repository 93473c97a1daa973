"""Views outside the admin and the partner API: the carriers' inbound callbacks. (The health
probes answer in bulkchanges.health's middleware, before host validation.)"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from bulkchanges.services.callbacks import (
    MAX_CALLBACK_BODY_BYTES,
    callback_receive,
    callback_receive_oversized,
)


@csrf_exempt
@require_http_methods(["GET", "POST"])
def carrier_callback(request: HttpRequest, integration: str, credentials_id: int) -> JsonResponse:
    """``/carriers/<integration>/callbacks/<credentials-id>/``: a carrier tells us a request it
    accepted has completed (docs/carriers/README.md). Authenticated by the carrier's own means,
    stored, answered at once; no carrier call is made here."""
    length = request.META.get("CONTENT_LENGTH") or "0"
    if length.isdigit() and int(length) > MAX_CALLBACK_BODY_BYTES:
        answer = callback_receive_oversized()
    else:
        answer = callback_receive(
            integration=integration,
            credentials_id=credentials_id,
            method=request.method or "POST",
            path=request.get_full_path(),
            query={key: request.GET.get(key, "") for key in request.GET},
            body=request.body,
            remote_addr=request.META.get("REMOTE_ADDR", ""),
        )
    return JsonResponse(dict(answer.body), status=answer.status)
