"""How the console shows things: status badges, progress bars, durations, a bulk change's
request in words and audit text made readable. Presentation only — every number comes from
``bulkchanges.selectors``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape, format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe

from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    DeviceChange,
    DeviceStatus,
    IntegrationAuthentication,
)
from bulkchanges.selectors import Progress
from bulkchanges.services import logs
from bulkchanges.types import OPTION_KEYS, StatusUpdateRequest
from integrations.base import redact
from integrations.rev_request import RevServiceRequest

EMPTY = "—"


def status_badge(status: str) -> SafeString:
    """A coloured badge for a bulk change or device change status (CSS: pondops.css)."""
    label = status.replace("_", " ").lower().capitalize()
    return format_html(
        '<span class="pondops-badge pondops-badge--{}" data-status="{}">{}</span>',
        status.lower().replace("_", "-"),
        status,
        label,
    )


def progress_bar(progress: Progress, *, compact: bool = False) -> SafeString:
    """A stacked bar (succeeded, errors, cancelled, then waiting on the carrier — not done yet,
    not failed) with ``done/total (percent)``; ``compact`` (the list) leaves the percent to the
    tooltip. With cancelled devices the label says what changed and what was cancelled instead
    (done/total would read 100 % for a job that changed a third of its devices), the tooltip
    the whole of it ("8 changed before the cancel took effect, 22 cancelled")."""
    total = progress.total or 1
    cancelled = progress.counts.get(DeviceChange.Status.CANCELLED, 0)
    title = ", ".join(f"{n} {status.lower()}" for status, n in progress.counts.items() if n)
    label = f"{progress.done}/{progress.total}"
    if not compact:
        label += f" ({progress.percent:g}%)"
    label_html: SafeString | str = label
    if cancelled:  # a cancelled job is not "30/30 (100%)": say what changed and what did not
        parts = [(progress.changed, "changed"), (cancelled, "cancelled")] + [
            (n, what)
            for n, what in ((progress.failed, "failed"), (progress.in_flight, "finishing"))
            if n
        ]
        # A line each: no wider than "30/30", in a list's column as beside the page's bar.
        label_html = format_html_join(mark_safe("<br>"), "{} {}", parts)
    return format_html(
        '<div class="pondops-progress" title="{}" data-done="{}" data-total="{}">'
        '<div class="pondops-progress__bar">'
        '<span class="pondops-progress__ok" style="width: {}%"></span>'
        '<span class="pondops-progress__error" style="width: {}%"></span>'
        '<span class="pondops-progress__cancelled" style="width: {}%"></span>'
        '<span class="pondops-progress__waiting" style="width: {}%"></span>'
        "</div>"
        '<span class="pondops-progress__label">{}</span></div>',
        (progress.cancel_summary() if cancelled else f"{progress.percent:g}% done: {title}")
        if title
        else "no devices",
        progress.done,
        progress.total,
        _percent(progress.succeeded, total),
        _percent(progress.failed, total),
        _percent(cancelled, total),
        _percent(progress.awaiting_carrier, total),
        label_html,
    )


def _percent(part: int, total: int) -> str:
    return f"{part * 100 / total:.2f}"


def timestamp(value: datetime | None) -> SafeString | str:
    """The console's one way to show a moment: ``2026-12-01 19:52:56`` with seconds, in a
    ``<time>`` element carrying the ISO instant, UTC on hover. Rendered in UTC; the console's
    script (``bulkchanges/static/bulkchanges/pondops.js``) rewrites it into the viewer's time
    zone, keeping UTC in the title. A dash for no value."""
    if value is None:
        return EMPTY
    utc = value.astimezone(UTC)
    return format_html(
        '<time class="pondops-time" datetime="{}" title="{} UTC">{} UTC</time>',
        utc.isoformat(timespec="seconds").replace("+00:00", "Z"),
        f"{utc:%Y-%m-%d %H:%M:%S}",
        f"{utc:%Y-%m-%d %H:%M:%S}",
    )


def duration(delta: timedelta) -> str:
    """Compact: ``12s``, ``4m 05s``, ``2h 07m``, ``3d 4h``."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def age(created_at: datetime, *, now: datetime | None = None) -> str:
    return duration((now or timezone.now()) - created_at)


def time_to_complete(bulk_change: BulkChange, *, now: datetime | None = None) -> str:
    """Queued (or, never queued, created) to its FIRST completion — a later manual retry's
    reopen and finish never rewrite it (``first_processed_at``); ``running 3m 10s`` while it
    has not finished once; "not started" while scheduled or awaiting approval, "never
    started" when cancelled before it was queued; a dash otherwise."""
    if bulk_change.status in BulkChange.GATED:
        return "not started"
    if bulk_change.queued_at is None and bulk_change.status == BulkChange.Status.CANCELLED:
        return "never started"  # cancelled (or rejected) while scheduled or awaiting approval
    start = bulk_change.queued_at or bulk_change.created_at
    first = bulk_change.first_processed_at or bulk_change.processed_at
    if first is not None:
        return duration(first - start)
    if bulk_change.status in BulkChange.OPEN:
        return f"running {age(start, now=now)}"
    return EMPTY


# What each bulk change status means, in plain words, for the top of its page.
STATUS_EXPLANATIONS: dict[str, str] = {
    BulkChange.Status.NEW: "Recorded by another system; it starts when its queue message arrives.",
    BulkChange.Status.SCHEDULED: "Waiting for its scheduled time; no device has been sent to "
    "the carrier yet.",
    BulkChange.Status.AWAITING_APPROVAL: "Waiting for a second person to approve or reject "
    "it; no device has been sent to the carrier yet.",
    BulkChange.Status.QUEUED: "Queued: waiting for a worker to pick it up.",
    BulkChange.Status.PROCESSING: "Running: workers are changing its devices now.",
    BulkChange.Status.CANCELLING: "Cancelled: devices not yet sent were cancelled; devices "
    "that already sent a carrier write are finishing.",
    BulkChange.Status.PROCESSED: "Finished: every device was changed, or already had the "
    "target status.",
    BulkChange.Status.PROCESSED_WITH_ERRORS: "Finished with failures: some devices were "
    "changed, some failed (see Failures).",
    BulkChange.Status.ERROR: "Finished, but no device was changed (see Failures).",
    BulkChange.Status.CANCELLED: "Cancelled: no more devices will be changed.",
}


def status_explanation(bulk_change: BulkChange) -> str:
    """The status in words; a final one adds that nothing moves any more unless retried."""
    words = STATUS_EXPLANATIONS.get(bulk_change.status, bulk_change.status)
    if bulk_change.status in BulkChange.TERMINAL:
        words += (
            " Nothing more happens unless someone retries it."
            if bulk_change.status != BulkChange.Status.CANCELLED
            else " This is final."
        )
    return words


def throughput(devices_per_minute: float | None) -> str:
    """``42.5 devices/min``; a dash before the first device of the run finished."""
    if devices_per_minute is None:
        return EMPTY
    return f"{devices_per_minute:.1f} devices/min"


def eta(seconds: float | None) -> str:
    """``about 4m 05s left``; a dash while unknown."""
    if seconds is None:
        return EMPTY
    return f"about {duration(timedelta(seconds=seconds))} left"


def bulk_change_url(bulk_change_id: int) -> str:
    """The bulk change's page."""
    return reverse("admin:bulkchanges_bulkchange_change", args=[bulk_change_id])


def bulk_change_link(bulk_change_id: int) -> SafeString:
    return format_html('<a href="{}">{}</a>', bulk_change_url(bulk_change_id), bulk_change_id)


def device_changes_url(bulk_change_id: int, **filters: str) -> str:
    """The DeviceChange list filtered to one bulk change (and, say, ``status__exact``)."""
    query = urlencode({"bulk_change": str(bulk_change_id), **filters})
    return f"{reverse('admin:bulkchanges_devicechange_changelist')}?{query}"


def logs_url(**filters: str | int) -> str:
    return f"{reverse('admin:bulkchanges_bulkchangelog_changelist')}?{urlencode(filters)}"


# --- The request in words --------------------------------------------------------------------


@dataclass(frozen=True)
class RequestLine:
    label: str
    value: str


def request_in_words(bulk_change: BulkChange) -> list[RequestLine]:
    """The StatusUpdateRequest as an operator reads it. A request that does not parse (written
    by another system) is shown as its raw JSON instead."""
    try:
        request = StatusUpdateRequest.from_legacy(bulk_change.request or {})
    except (ValueError, TypeError) as error:
        return [
            RequestLine("Request", json.dumps(bulk_change.request, indent=2, sort_keys=True)),
            RequestLine("Note", f"this request cannot be read as a status update: {error}"),
        ]
    return describe_request(request, integration=bulk_change.integration)


def describe_request(request: StatusUpdateRequest, *, integration: str) -> list[RequestLine]:
    target = request.update_status
    if request.is_ignore_current_status:
        current = "Every device is sent to the carrier, whatever its current status"
    else:
        current = f"Devices already {target} are skipped without a carrier call"
    post_status = EMPTY
    if request.post_update_status_id is not None:
        status = DeviceStatus.objects.filter(pk=request.post_update_status_id).first()
        post_status = (
            f"{status.display_name} ({status.code})"
            if status
            else f"device status {request.post_update_status_id} (no longer exists)"
        )
    lines = [
        RequestLine("Target status (UpdateStatus)", f"{target} on {integration}"),
        RequestLine("Current status (IsIgnoreCurrentStatus)", current),
        RequestLine("Inventory status afterwards (PostUpdateStatusId)", post_status),
        RequestLine(
            "Carrier credentials", _credentials_label(request.integration_authentication_id)
        ),
        RequestLine("Account number", request.account_number or EMPTY),
    ]
    options = [
        f"{legacy_key}: {request.options[name]}"
        for legacy_key, name in OPTION_KEYS.items()
        if request.options.get(name)
    ]
    if options:
        lines.append(RequestLine("Carrier options", "; ".join(options)))
    lines.append(RequestLine("Rev.io service (RevService)", _rev_in_words(request.rev_service)))
    return lines


def _credentials_label(pk: int) -> str:
    row = IntegrationAuthentication.objects.select_related("tenant").filter(pk=pk).first()
    return f"{row} [#{pk}]" if row else f"#{pk} (no longer exists)"


def _rev_in_words(rev: RevServiceRequest | None) -> str:
    if rev is None:
        return "none: no Rev.io service is opened"
    if rev.package_id:
        products = f"package {rev.package_id}"
    elif rev.products:
        products = "products " + ", ".join(f"{p.product_id} at {p.rate}" for p in rev.products)
    else:
        products = "no products"
    parts = [
        f"open service type {rev.service_type_id} for customer {rev.customer_id} with {products}",
        f"prorate {'yes' if rev.prorate else 'no'}",
    ]
    if rev.provider_id:
        parts.append(f"provider {rev.provider_id}")
    if rev.activated_date:
        parts.append(f"activated {rev.activated_date.isoformat()}")
    if rev.effective_date:
        parts.append(f"effective {rev.effective_date.isoformat()}")
    if rev.usage_plan_group_id:
        parts.append(f"usage plan group {rev.usage_plan_group_id}")
    parts.append(f"credentials {_credentials_label(rev.integration_authentication_id)}")
    return "; ".join(parts)


# --- Audit text ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogEntry:
    """A log row as the bulk change page shows it: a short note without an HTTP call (an
    outcome, an operator action, the completion) inline; a call's texts behind a toggle."""

    row: BulkChangeLog
    note: str
    request: str
    response: str


def log_entry(row: BulkChangeLog) -> LogEntry:
    response = readable(row.response_text)
    if not row.request_text and len(response) <= 300 and "\n" not in response.strip():
        return LogEntry(row=row, note=response.strip(), request="", response="")
    return LogEntry(row=row, note="", request=readable(row.request_text), response=response)


def readable(text: str) -> str:
    """Audit request/response text for reading: redacted again (the one redaction function is
    safe to apply twice, and guards rows written before a rule existed) and JSON bodies
    pretty-printed. A request is ``METHOD path``, headers, a blank line, then the body."""
    text = redact(text or "")
    head, separator, body = text.partition("\n\n")
    if separator:
        return f"{head}\n\n{_pretty(body)}"
    return _pretty(text)


def _pretty(body: str) -> str:
    stripped = body.strip()
    if not stripped.startswith(("{", "[")):
        return body
    try:
        return json.dumps(json.loads(stripped), indent=2, ensure_ascii=False)
    except ValueError:
        return body


# --- A device change's page ------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    """One labelled value on a page; ``value`` may be markup (a timestamp, a link)."""

    label: str
    value: SafeString | str


def change_request_in_words(
    change_request: dict[str, object], *, integration: str
) -> list[RequestLine]:
    """A device change's request (the legacy JSON each device carries) as an operator reads
    it; one that does not parse is shown as its JSON with the reason."""
    try:
        request = StatusUpdateRequest.from_legacy(change_request)
    except (ValueError, TypeError) as error:
        return [
            RequestLine("Request", json.dumps(change_request, indent=2, sort_keys=True)),
            RequestLine("Note", f"this request cannot be read as a status update: {error}"),
        ]
    return describe_request(request, integration=integration)


def device_change_facts(device_change: DeviceChange) -> list[Fact]:
    """What an operator asks of one device: how far it got and with the carrier's words —
    never the lease's internals (``device_change_internals``)."""
    steps = [
        ("carrier status set", device_change.carrier_status_at),
        ("packages updated", device_change.service_status_at),  # POND's SERVICE_STATUS step
    ]
    done = format_html_join(
        mark_safe("<br>"),
        "{} {}",
        ((name, timestamp(moment)) for name, moment in steps if moment),
    )
    facts = [
        Fact("Previous status", device_change.previous_status or EMPTY),
        Fact("Carrier request id", device_change.carrier_request_id or EMPTY),
        Fact("Submitted to the carrier", timestamp(device_change.carrier_submitted_at)),
        Fact("Steps completed", done or "none yet"),
        Fact("Retries in this run (RetryNumber)", str(device_change.attempts)),
        Fact("Processed", timestamp(device_change.processed_at)),
    ]
    if device_change.next_attempt_at is not None and device_change.status in (
        DeviceChange.Status.RETRY_SCHEDULED,
        DeviceChange.Status.AWAITING_CARRIER,
    ):
        facts.append(Fact("Next attempt", timestamp(device_change.next_attempt_at)))
    if device_change.rev_service_id is not None:
        facts.append(Fact("Rev.io service id", str(device_change.rev_service_id)))
    facts.append(Fact("Last updated", timestamp(device_change.updated_at)))
    return facts


def device_change_internals(device_change: DeviceChange) -> list[Fact]:
    """The claim and timing fields a superuser may need when a device is stuck."""
    return [
        Fact("Claim token", str(device_change.claim_token or EMPTY)),
        Fact("Claimed until", timestamp(device_change.claimed_until)),
        Fact("Write started", timestamp(device_change.write_started_at)),
        Fact("Confirm deadline", timestamp(device_change.confirm_deadline_at)),
        Fact("Carrier waits", str(device_change.carrier_waits)),
        Fact("Retry message sent", timestamp(device_change.retry_message_sent_at)),
    ]


# The audit rows that mark one attempt of a device, or an operator's retry of it (the others
# are the attempt's HTTP calls, shown in the trail).
ATTEMPT_DESCRIPTIONS = frozenset(
    {
        logs.DEVICE_OUTCOME,
        logs.RETRY_SCHEDULED,
        logs.AWAITING_CARRIER,
        logs.LEASE_EXPIRED,
        logs.WRITES_DISABLED,
        logs.CARRIER_CALLBACK,
        logs.OPERATOR_RETRY,
        logs.OPERATOR_RESUBMIT,
    }
)


@dataclass(frozen=True)
class Attempt:
    """One step of a device's history: when, what happened (a status badge when the row
    names the status it left the device in), the detail or error, and who."""

    row: BulkChangeLog
    number: int
    event: str
    result: SafeString | str
    detail: str
    error: str


def device_attempts(trail: list[BulkChangeLog]) -> list[Attempt]:
    """The attempt rows of a device's trail (newest first), oldest first and numbered."""
    rows = [row for row in reversed(trail) if row.log_entry_description in ATTEMPT_DESCRIPTIONS]
    attempts = []
    for number, row in enumerate(rows, 1):
        text = redact(row.response_text or "").strip()
        head, separator, rest = text.partition(": ")
        if separator and head in DeviceChange.Status.values:
            result: SafeString | str = status_badge(head)
            detail = rest
        else:
            result, detail = EMPTY, text
        error = redact(row.error_text or "").strip()
        if error and detail.strip() == error.partition("\n\n")[0].strip():
            detail = ""  # the outcome repeats the error: say it once
        attempts.append(
            Attempt(
                row=row,
                number=number,
                event=row.log_entry_description,
                result=result,
                detail=detail,
                error=error,
            )
        )
    return attempts


def timestamp_column(field: str, description: str) -> Any:
    """A model admin attribute showing the moment ``field`` as :func:`timestamp` does, sorted
    by it — for ``list_display`` and ``readonly_fields``:
    ``received = display.timestamp_column("received_at", "received")``."""

    @admin.display(description=description, ordering=field)
    def column(model_admin: admin.ModelAdmin, row: Any) -> SafeString | str:
        return timestamp(getattr(row, field, None))

    column.__name__ = f"{field}_time"
    return column


def process_by(text: str) -> SafeString:
    """Who wrote an audit row (``worker:<host>/<pid>``, ``admin:<user>``), in full on hover;
    a long name may break after its ``:`` and ``/``, never inside a word."""
    breakable = mark_safe(  # noqa: S308 - escaped first; only <wbr> is added
        escape(text).replace(":", ":<wbr>").replace("/", "/<wbr>")
    )
    return format_html('<span class="pondops-by" title="{}">{}</span>', text, breakable)
