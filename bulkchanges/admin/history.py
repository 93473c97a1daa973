"""Django's admin history (LogEntry) for what staff do through the console's own views and
actions: Django records its own add/change/delete forms; every PondOps action (retry,
resubmit, cancel, reschedule, approve, reject, preview, revert, export) calls
:func:`history_record` too, so "Recent actions" and an object's HISTORY show it. The audit
trail proper stays BulkChangeLog (``bulkchanges.services.logs``); this is the console's view
of who did what."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.http import HttpRequest


def history_record(
    request: HttpRequest,
    objects: models.Model | Iterable[models.Model],
    message: str,
    *,
    added: bool = False,
) -> None:
    """One LogEntry per object, under the request's user, saying ``message`` (plain text,
    e.g. "Cancelled: 12 devices cancelled, 3 in flight"); ``added``: the action created them
    (shown as "Added" in the history)."""
    rows = [objects] if isinstance(objects, models.Model) else list(objects)
    user_id = getattr(request.user, "pk", None)
    if user_id is None or not rows:
        return
    LogEntry.objects.bulk_create(
        LogEntry(
            user_id=user_id,
            content_type=ContentType.objects.get_for_model(row, for_concrete_model=False),
            object_id=str(row.pk),
            object_repr=str(row)[:200],
            action_flag=ADDITION if added else CHANGE,
            change_message=message,
        )
        for row in rows
    )
