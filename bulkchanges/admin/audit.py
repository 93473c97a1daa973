"""Who the audit log names for a staff action."""

from __future__ import annotations

from django.http import HttpRequest


def actor(request: HttpRequest) -> str:
    """``admin:<username>`` (DESIGN section 3: ``process_by`` and ``created_by``)."""
    return f"admin:{request.user.get_username()}"
