"""The request id of a web request: taken from the caller's ``X-Request-ID`` when it is sane,
made up otherwise, bound to the log context for the request and returned in the response, so
a partner or a proxy can quote it and an operator find every line the request logged."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils.log import log_response

from pondops.logcontext import log_context_bind

REQUEST_ID_HEADER = "X-Request-ID"
# Bounded and plain: an id goes into log lines and headers, so no spaces, quotes or control
# characters, and no more than a UUID with a prefix needs.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def request_id_from(value: str | None) -> str:
    """The caller's id when it is 1 to 128 characters of letters, digits and ``._:-`` (starting
    with a letter or digit); a new random one otherwise."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Binds ``request_id`` to the log context for the whole request (place it first, so the
    lines of every later middleware carry it) and sets ``X-Request-ID`` on the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        with log_context_bind(request_id=request_id):
            response = self.get_response(request)
            if response.status_code >= 400:
                # Django logs an error answer ("Unauthorized: /metrics") only after the last
                # middleware has returned, outside this context; logged here it carries the
                # id, and Django, seeing it logged, does not log it again.
                log_response(
                    "%s: %s",
                    response.reason_phrase,
                    request.path,
                    response=response,
                    request=request,
                )
        response[REQUEST_ID_HEADER] = request_id
        return response
