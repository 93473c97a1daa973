"""The confirmation page every console action shows before it acts (retry, cancel, export;
from a list's action menu or a bulk change's buttons): what will happen, to which rows, and a
button that posts the action again with ``post=yes``."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse

CONFIRM_TEMPLATE = "admin/bulkchanges/confirm_action.html"


def confirm_page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    title: str,
    explanation: str,
    submit: str,
    back_url: str,
    action: str = "",
    danger: bool = False,
    **rows: Any,
) -> TemplateResponse:
    """``action`` names the list action to post back to (empty: the page's own URL);
    ``rows`` are the template's ``rows`` (bulk changes) or ``device_rows`` and
    ``selected_ids`` (device changes)."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        "explanation": explanation,
        "submit": submit,
        "action": action,
        "danger": danger,
        "select_across": request.POST.get("select_across") == "1",
        "back_url": back_url,
        **rows,
    }
    return TemplateResponse(request, CONFIRM_TEMPLATE, context)
