"""``/metrics``: the counters every process of the host wrote (``pondops.metrics``), plus the
figures read when Prometheus scrapes (docs/operations/observability.md).

The scrape-time figures come from :class:`ScrapeCollector`: a few cheap, indexed queries (open
bulk changes by status, the oldest one's age, unfinished devices by carrier and status) and
the SQS figures through ``selectors.sqs_status_get`` — cached ~15 s, so a scrape never waits on
SQS twice and many scrapers cost SQS what one does. A source that cannot be read is reported
by ``pondops_scrape_source_up{source}`` = 0 and its figures are left out (never a made-up 0).

Protection: with ``PONDOPS_METRICS_TOKEN`` set the endpoint wants ``Authorization: Bearer
<token>`` (compared in constant time; 401 otherwise). Unset it is open: keep it off the
public proxy then.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bulkchanges.models import BulkChange, DeviceChange
from bulkchanges.selectors import sqs_status_get
from integrations.base import carrier_integrations
from pondops.metrics import metrics_registry

logger = logging.getLogger(__name__)

# SQS's attribute names, as the ``state`` label of pondops_sqs_messages.
SQS_STATES = {
    "ApproximateNumberOfMessages": "visible",
    "ApproximateNumberOfMessagesNotVisible": "in_flight",
    "ApproximateNumberOfMessagesDelayed": "delayed",
}


class ScrapeCollector(Collector):
    """The figures computed when ``/metrics`` is read (gauges: a value now, not a count)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "pondops_scrape_source_up",
            "Whether this scrape could read the source (1) or not (0): database, sqs.",
            labels=["source"],
        )
        try:
            yield from self._database_figures()
            up.add_metric(["database"], 1)
        except DatabaseError as error:
            logger.warning("metrics: database figures unavailable: %s", error)
            up.add_metric(["database"], 0)
        sqs_ok = True
        for family in self._sqs_figures():
            if family is None:
                sqs_ok = False
            else:
                yield family
        up.add_metric(["sqs"], 1 if sqs_ok else 0)
        yield up

    def _database_figures(self) -> Iterator[GaugeMetricFamily]:
        """Computed whole before the first is yielded, so a failed query yields none."""
        open_rows = BulkChange.objects.filter(status__in=BulkChange.OPEN).order_by()
        by_status = dict.fromkeys(sorted(BulkChange.OPEN), 0)
        by_status.update(open_rows.values_list("status").annotate(n=Count("id")))
        oldest = open_rows.aggregate(oldest=Min("created_at"))["oldest"]
        carriers = carrier_integrations()
        unfinished = {
            (carrier, status): 0 for carrier in carriers for status in DeviceChange.UNFINISHED
        }
        unfinished.update(
            {
                (carrier, status): n
                for carrier, status, n in DeviceChange.objects.filter(
                    status__in=DeviceChange.UNFINISHED
                )
                .order_by()
                .values_list("bulk_change__integration", "status")
                .annotate(n=Count("id"))
            }
        )

        bulk_changes = GaugeMetricFamily(
            "pondops_bulk_changes_open",
            "Bulk changes not yet final, by status (NEW, QUEUED, PROCESSING).",
            labels=["status"],
        )
        for status, n in sorted(by_status.items()):
            bulk_changes.add_metric([status], n)
        age = GaugeMetricFamily(
            "pondops_bulk_change_oldest_open_age_seconds",
            "Age of the oldest bulk change not yet final (0 when there is none).",
        )
        age.add_metric([], (timezone.now() - oldest).total_seconds() if oldest else 0.0)
        devices = GaugeMetricFamily(
            "pondops_device_changes_unfinished",
            "Device changes not yet final, by integration and status (PENDING, PROCESSING, "
            "RETRY_SCHEDULED, AWAITING_CARRIER).",
            labels=["carrier", "status"],
        )
        awaiting = GaugeMetricFamily(
            "pondops_devices_awaiting_carrier",
            "Device changes waiting for their carrier to confirm (AWAITING_CARRIER), by "
            "integration.",
            labels=["carrier"],
        )
        for (carrier, device_status), n in sorted(unfinished.items()):
            devices.add_metric([carrier, device_status], n)
            if device_status == DeviceChange.Status.AWAITING_CARRIER:
                awaiting.add_metric([carrier], n)
        yield from (bulk_changes, age, devices, awaiting)

    def _sqs_figures(self) -> Iterator[GaugeMetricFamily | None]:
        """The queue's figures; None in place of a family that could not be read."""
        status = sqs_status_get()
        if status.queue_depth is None:
            yield None
        else:
            messages = GaugeMetricFamily(
                "pondops_sqs_messages",
                "Approximate messages on the work queue, by state (visible, in_flight, delayed).",
                labels=["state"],
            )
            for attribute, state in SQS_STATES.items():
                if attribute in status.queue_depth:
                    messages.add_metric([state], status.queue_depth[attribute])
            yield messages
        if not status.dlq_configured:
            return
        if status.dead_letters is None:
            yield None
            return
        dead = GaugeMetricFamily(
            "pondops_sqs_dead_letters", "Approximate messages on the dead-letter queue."
        )
        dead.add_metric([], status.dead_letters)
        yield dead
        oldest = status.oldest_dead_letter_age()
        if oldest is not None:
            age = GaugeMetricFamily(
                "pondops_sqs_dead_letter_oldest_age_seconds",
                "Age of the oldest dead-lettered message one peek saw (a lower bound).",
            )
            age.add_metric([], oldest)
            yield age


def metrics_authorized(*, header: str, token: str) -> bool:
    """No token configured: open. Otherwise ``Bearer <token>``, compared in constant time."""
    if not token:
        return True
    return hmac.compare_digest(header.encode(), f"Bearer {token}".encode())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text format: the host's counters (summed over its processes in
    multiprocess mode) and the scrape-time figures."""
    if not metrics_authorized(
        header=request.headers.get("Authorization", ""), token=settings.PONDOPS_METRICS_TOKEN
    ):
        response = HttpResponse("unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = metrics_registry(directory=settings.PROMETHEUS_MULTIPROC_DIR)
    registry.register(ScrapeCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
