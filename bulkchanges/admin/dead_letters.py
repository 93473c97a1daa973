"""The dead-letter queue in the console: the messages in the DLQ now (a live read of SQS), each
with the reason the consumer refused it (``RefusedMessage``, or "no reason recorded"), and two
actions — redrive (back to the bulk-change queue) and delete — on the selected messages or, for
redrive, all of them. For superusers only (``DeadLetterAdmin``: the queue has no tenant).
Each action is confirmed first and
written to the admin's log under the staff member's name (``services.dead_letters``)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from bulkchanges import sqs
from bulkchanges.admin import display
from bulkchanges.admin.audit import actor
from bulkchanges.admin.confirm import confirm_page
from bulkchanges.admin.readonly import ReadOnlyAdmin
from bulkchanges.admin.tenancy import SuperuserOnlyAdmin
from bulkchanges.models import RefusedMessage
from bulkchanges.selectors import DeadLetter, dead_letters_list
from bulkchanges.services.dead_letters import dead_letters_delete, dead_letters_redrive

PAGE_TEMPLATE = "admin/bulkchanges/dead_letters.html"
BODY_EXCERPT = 160
ACTIONS = {
    "redrive_selected": (
        "Redrive the selected messages?",
        "Each message is sent back to the bulk-change queue unchanged and removed from the "
        "dead-letter queue; the consumer validates it again. Fix the cause first, or it "
        "returns here.",
        "Yes, redrive them",
        False,
    ),
    "redrive_all": (
        "Redrive every message in the dead-letter queue?",
        "Every message now in the dead-letter queue is sent back to the bulk-change queue "
        "unchanged and removed from the dead-letter queue.",
        "Yes, redrive all",
        False,
    ),
    "delete_selected": (
        "Delete the selected messages for good?",
        "The messages are removed from the dead-letter queue and never processed. This "
        "cannot be undone.",
        "Yes, delete them",
        True,
    ),
}


@admin.register(RefusedMessage)
class DeadLetterAdmin(SuperuserOnlyAdmin, ReadOnlyAdmin):
    """The model's list is the live dead-letter page; its rows are only what the page joins.

    Superusers only: a dead letter is often a message that names no bulk change (so no
    tenant), SQS's depth cannot be split by tenant, and redrive-all acts on the whole queue."""

    def has_manage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("bulkchanges.manage_dead_letters")

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._act(request)
        listing = dead_letters_list()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Dead-letter queue",
            "listing": listing,
            "rows": [_row(dead_letter) for dead_letter in listing.messages],
            "can_manage": self.has_manage_permission(request),
            "dlq_configured": bool(_dlq_url()),
        }
        return TemplateResponse(request, PAGE_TEMPLATE, context)

    def _act(self, request: HttpRequest) -> HttpResponse:
        if not self.has_manage_permission(request):
            raise PermissionDenied
        action = request.POST.get("action", "")
        if action not in ACTIONS:
            messages.error(request, "Choose an action.")
            return HttpResponseRedirect(request.path)
        selected = request.POST.getlist("_selected_action")
        if action != "redrive_all" and not selected:
            messages.warning(request, "Select the messages first.")
            return HttpResponseRedirect(request.path)
        title, explanation, submit, danger = ACTIONS[action]
        if request.POST.get("post") != "yes":
            return confirm_page(
                self,
                request,
                title=title,
                explanation=explanation,
                submit=submit,
                back_url=request.path,
                action=action,
                danger=danger,
                selected_ids=[] if action == "redrive_all" else selected,
                message_ids=[] if action == "redrive_all" else selected,
            )
        ids = None if action == "redrive_all" else selected
        try:
            if action == "delete_selected":
                done = dead_letters_delete(
                    actor=actor(request), message_ids=selected, user_id=request.user.pk
                )
            else:
                done = dead_letters_redrive(
                    actor=actor(request), message_ids=ids, user_id=request.user.pk
                )
        except (sqs.SqsUnavailable, RuntimeError) as error:  # RuntimeError: a queue not configured
            messages.error(request, f"Nothing more was done: {error}")
            return HttpResponseRedirect(request.path)
        verb = "deleted" if action == "delete_selected" else "sent back to the queue"
        messages.success(request, f"{len(done.acted)} messages {verb}.")
        if done.missing:
            messages.warning(
                request,
                f"Not in the dead-letter queue any more: {', '.join(done.missing)}.",
            )
        return HttpResponseRedirect(reverse("admin:bulkchanges_refusedmessage_changelist"))


def _row(dead_letter: DeadLetter) -> dict[str, Any]:
    message = dead_letter.message
    return {
        "message_id": message.message_id,
        "sent_at": message.sent_at,
        "receive_count": message.receive_count,
        "body": message.body[:BODY_EXCERPT] + ("…" if len(message.body) > BODY_EXCERPT else ""),
        "reason": dead_letter.reason,
        "refused_at": dead_letter.refused_at,
        "bulk_change_id": dead_letter.bulk_change_id,
        "bulk_change_url": (
            display.bulk_change_url(dead_letter.bulk_change_id)
            if dead_letter.bulk_change_id
            else ""
        ),
        "device_change_id": dead_letter.device_change_id,
    }


def _dlq_url() -> str:
    try:
        return sqs.dlq_url()
    except RuntimeError:
        return ""
