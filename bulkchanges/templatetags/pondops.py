"""Template filters of the console: ``{% load pondops %}`` then ``{{ moment|pondops_time }}``
shows a moment the one way the console shows moments (``display.timestamp``: seconds, the
viewer's time zone once the page's script ran, UTC on hover); ``{{ row.process_by|pondops_by }}``
an audit row's author as ``display.process_by`` does."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.utils.safestring import SafeString

from bulkchanges.admin import display

register = template.Library()


@register.filter
def pondops_time(value: datetime | None) -> SafeString | str:
    return display.timestamp(value)


@register.filter
def pondops_by(value: str) -> SafeString:
    return display.process_by(value or "")
