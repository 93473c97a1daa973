"""Who the audit log names for a staff action."""

from __future__ import annotations

from django.http import HttpRequest


def actor(request: HttpRequest) -> str:
    """``admin:<username>`` (docs/architecture.md §9: ``process_by``)."""
    return f"admin:{request.user.get_username()}"
