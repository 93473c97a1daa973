"""PondOps' tables. Names mirror the legacy serverless pipeline's tables (named in each
docstring) so a reader from the old system finds their way. No business logic lives here:
writes go through ``bulkchanges.services``, reads through ``bulkchanges.selectors``."""

from __future__ import annotations

import secrets
from typing import Any, TypeVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from integrations.base import Credentials, Integration

_Model = TypeVar("_Model", bound=models.Model)


class TouchingQuerySet(models.QuerySet[_Model]):
    """``QuerySet.update()`` skips ``auto_now``; this one moves ``updated_at`` with every bulk
    update, so "updated recently" means what it says (the reaper tells a running bulk change
    from a stalled one by its device changes' ``updated_at``)."""

    def update(self, **kwargs: Any) -> int:
        kwargs.setdefault("updated_at", timezone.now())
        return super().update(**kwargs)


def webhook_secret_generate() -> str:
    """A fresh per-tenant secret for signing completion webhooks (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


class Tenant(models.Model):
    """A customer of the service provider (legacy Tenant); partners and bulk changes belong to
    exactly one.

    ``webhook_secret`` signs the completion webhooks sent to the tenant's callback URLs
    (HMAC-SHA256). It is write-only: not editable in the admin, never rendered by the API except
    once, when a partner rotates it."""

    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    webhook_secret = models.CharField(
        max_length=100, default=webhook_secret_generate, editable=False
    )

    def __str__(self) -> str:
        return self.name


class IntegrationAuthentication(models.Model):
    """One set of carrier (or Rev.io) credentials (legacy IntegrationAuthentication).

    ``secret`` and ``secret_2`` are write-only: no admin page, log row, log line or API output
    renders them. ``account`` is POND's distributor id, ThingSpace's account name or Rev.io's
    client code. ``writes_enabled`` is the legacy WriteIsEnabled.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="credentials")
    integration = models.CharField(max_length=20, choices=Integration.choices)
    base_url = models.URLField(max_length=500)
    account = models.CharField(max_length=200, blank=True, default="")
    username = models.CharField(max_length=200, blank=True, default="")
    client_id = models.CharField(max_length=200, blank=True, default="")
    secret = models.CharField(max_length=500, blank=True, default="")
    secret_2 = models.CharField(max_length=500, blank=True, default="")
    rate_limit = models.FloatField(default=10.0, help_text="Requests per second, all workers.")
    max_concurrency = models.PositiveIntegerField(
        default=4, help_text="Concurrent requests, all workers; also each worker's threads."
    )
    daily_action_budget = models.PositiveIntegerField(
        default=5, help_text="ThingSpace: provisioning actions per line per day."
    )
    writes_enabled = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TouchingQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "integration", "account"], name="uniq_credentials_per_account"
            ),
        ]

    def __str__(self) -> str:
        account = self.account or self.username or "-"
        return f"{self.get_integration_display()} {account} ({self.tenant})"

    def as_credentials(self) -> Credentials:
        """Plain data for an integration client (secrets included, never in repr)."""
        return Credentials(
            integration_authentication_id=self.pk,
            integration=self.integration,
            base_url=self.base_url,
            account=self.account,
            username=self.username,
            client_id=self.client_id,
            secret=self.secret,
            secret_2=self.secret_2,
            rate_limit=self.rate_limit,
            max_concurrency=self.max_concurrency,
        )


class DeviceStatus(models.Model):
    """A carrier's status for a device (legacy DeviceStatus); ``code`` is the carrier's own
    name as carriers/README.md lists it. The target of PostUpdateStatusId."""

    integration = models.CharField(max_length=20, choices=Integration.choices)
    code = models.CharField(max_length=50)
    display_name = models.CharField(max_length=100)
    is_active_status = models.BooleanField(default=False)

    class Meta:
        verbose_name_plural = "device statuses"
        constraints = [
            models.UniqueConstraint(fields=["integration", "code"], name="uniq_status_code"),
        ]

    def __str__(self) -> str:
        return f"{self.integration} {self.code}"


class Device(models.Model):
    """Our inventory of SIMs (legacy Device): upserted with its new status after every
    successful change."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="devices")
    integration = models.CharField(max_length=20, choices=Integration.choices)
    iccid = models.CharField(max_length=22)
    msisdn = models.CharField(max_length=15, blank=True, default="")
    eid = models.CharField(max_length=32, blank=True, default="")
    status = models.ForeignKey(
        DeviceStatus, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = TouchingQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["integration", "iccid"], name="uniq_device_iccid"),
        ]
        indexes = [models.Index(fields=["tenant", "integration"])]

    def __str__(self) -> str:
        return self.iccid


class BulkChange(models.Model):
    """One request to change many devices (legacy DeviceBulkChange). Counters are derived from
    its DeviceChanges, never stored twice."""

    class ChangeRequestType(models.TextChoices):
        STATUS_UPDATE = "STATUS_UPDATE", "Status update"
        ACTIVATE_NEW_SERVICE = "ACTIVATE_NEW_SERVICE", "Activate new service"
        CHANGE_ICCID_OR_IMEI = "CHANGE_ICCID_OR_IMEI", "Change ICCID or IMEI"
        CUSTOMER_RATE_PLAN_CHANGE = "CUSTOMER_RATE_PLAN_CHANGE", "Customer rate plan change"
        CARRIER_RATE_PLAN_CHANGE = "CARRIER_RATE_PLAN_CHANGE", "Carrier rate plan change"
        ASSIGN_CUSTOMER = "ASSIGN_CUSTOMER", "Assign customer"
        ARCHIVAL = "ARCHIVAL", "Archival"

    PROCESSED_TYPES = frozenset({ChangeRequestType.STATUS_UPDATE})

    class Status(models.TextChoices):
        NEW = "NEW"
        QUEUED = "QUEUED"
        PROCESSING = "PROCESSING"
        PROCESSED = "PROCESSED"
        PROCESSED_WITH_ERRORS = "PROCESSED_WITH_ERRORS"
        ERROR = "ERROR"
        CANCELLED = "CANCELLED"

    TERMINAL = frozenset(
        {Status.PROCESSED, Status.PROCESSED_WITH_ERRORS, Status.ERROR, Status.CANCELLED}
    )
    OPEN = frozenset({Status.NEW, Status.QUEUED, Status.PROCESSING})
    # Released and not final: its devices may be claimed and block later changes of theirs.
    RUNNABLE = frozenset({Status.QUEUED, Status.PROCESSING})

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="bulk_changes")
    integration = models.CharField(max_length=20, choices=Integration.choices)
    integration_authentication = models.ForeignKey(
        IntegrationAuthentication, on_delete=models.PROTECT, related_name="bulk_changes"
    )
    change_request_type = models.CharField(
        max_length=40, choices=ChangeRequestType.choices, default=ChangeRequestType.STATUS_UPDATE
    )
    status = models.CharField(max_length=30, choices=Status.choices, default=Status.NEW)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    request = models.JSONField(default=dict, help_text="The StatusUpdateRequest, legacy keys.")
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    # SHA-256 of the normalised API request that used ``idempotency_key``: a repeat of the key
    # with a different request is refused (409) instead of returning this bulk change.
    request_fingerprint = models.CharField(max_length=64, blank=True, default="")
    callback_url = models.URLField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="uniq_bulk_change_idempotency_key",
            ),
        ]
        indexes = [models.Index(fields=["status", "queued_at"])]
        permissions = [
            ("retry_bulkchange", "Can retry failed devices of a bulk change"),
            ("cancel_bulkchange", "Can cancel a bulk change"),
        ]

    def __str__(self) -> str:
        return f"Bulk change {self.pk} ({self.integration}, {self.status})"

    @property
    def target_status(self) -> str:
        value: Any = (self.request or {}).get("UpdateStatus", "")
        return str(value)


class DeviceChange(models.Model):
    """One device of a bulk change (legacy M2M_DeviceChange; its API_FAILED is our ERROR).

    ``attempts`` is the RetryNumber of the latest attempt (2 after two retries). The step
    markers (``carrier_status_at`` … ``rev_product_ids``) mirror ``integrations.base.Progress``:
    each is written before the next step starts, so retries resume. ``claim_token`` is the
    compare-and-set token of the current lease: a worker writes only while it still holds it.
    """

    class Status(models.TextChoices):
        PENDING = "PENDING"
        PROCESSING = "PROCESSING"
        RETRY_SCHEDULED = "RETRY_SCHEDULED"
        PROCESSED = "PROCESSED"
        SKIPPED = "SKIPPED"
        ERROR = "ERROR"
        CANCELLED = "CANCELLED"

    TERMINAL = frozenset({Status.PROCESSED, Status.SKIPPED, Status.ERROR, Status.CANCELLED})
    UNFINISHED = frozenset({Status.PENDING, Status.PROCESSING, Status.RETRY_SCHEDULED})
    SUCCEEDED = frozenset({Status.PROCESSED, Status.SKIPPED})

    bulk_change = models.ForeignKey(
        BulkChange, on_delete=models.CASCADE, related_name="device_changes"
    )
    device = models.ForeignKey(
        Device, on_delete=models.SET_NULL, null=True, blank=True, related_name="changes"
    )
    iccid = models.CharField(max_length=22)
    msisdn = models.CharField(max_length=15, blank=True, default="")
    eid = models.CharField(max_length=32, blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    change_request = models.JSONField(default=dict)
    is_processed = models.BooleanField(default=False)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    retry_message_sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Step markers (integrations.base.Progress).
    carrier_status_at = models.DateTimeField(null=True, blank=True)
    service_status_at = models.DateTimeField(null=True, blank=True)
    carrier_request_id = models.CharField(max_length=100, blank=True, default="")
    carrier_submitted_at = models.DateTimeField(null=True, blank=True)
    rev_service_id = models.BigIntegerField(null=True, blank=True)
    rev_product_ids = models.JSONField(default=dict, blank=True)

    objects = TouchingQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["bulk_change", "status"]),
            models.Index(fields=["status", "claimed_until"]),
            models.Index(fields=["iccid"]),
            models.Index(fields=["status", "next_attempt_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    is_processed=Q(status__in=["PROCESSED", "SKIPPED", "ERROR", "CANCELLED"])
                ),
                name="device_change_is_processed_iff_terminal",
            ),
        ]

    def __str__(self) -> str:
        return f"Device change {self.pk} ({self.iccid}, {self.status})"


class BulkChangeLog(models.Model):
    """The audit trail (legacy DeviceBulkChangeLog): one row per external HTTP call, device
    outcome, operator action and completion. Append-only: rows are never updated or deleted
    through the application (services only create; the admin is read-only)."""

    bulk_change = models.ForeignKey(BulkChange, on_delete=models.CASCADE, related_name="logs")
    device_change = models.ForeignKey(
        DeviceChange, on_delete=models.CASCADE, null=True, blank=True, related_name="logs"
    )
    log_entry_description = models.CharField(max_length=200)
    request_text = models.TextField(blank=True, default="")
    response_text = models.TextField(blank=True, default="")
    response_status = models.IntegerField(null=True, blank=True)
    has_errors = models.BooleanField(default=False)
    error_text = models.TextField(blank=True, default="")
    process_by = models.CharField(max_length=200)
    request_id = models.CharField(max_length=200, blank=True, default="")
    processed_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-processed_at", "-id"]
        indexes = [models.Index(fields=["bulk_change", "processed_at"])]

    def __str__(self) -> str:
        return f"{self.log_entry_description} ({self.processed_at:%Y-%m-%d %H:%M:%S})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("BulkChangeLog rows are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValueError("BulkChangeLog rows are append-only")


class RateLimitBucket(models.Model):
    """Shared request-rate state for one set of credentials when no Redis is configured: the
    epoch second of the next free request slot, advanced by one conditional ``UPDATE …
    RETURNING`` (Django's database cache is not atomic, so it cannot serve here)."""

    key = models.CharField(max_length=100, unique=True)
    next_slot = models.FloatField(default=0.0)

    def __str__(self) -> str:
        return self.key


class ConcurrencySlot(models.Model):
    """One of a credentials' ``max_concurrency`` slots (the carrier's concurrent calls) when no
    Redis is configured: a request holds a slot while it is on the wire; a slot whose holder
    died frees itself when ``held_until`` passes."""

    key = models.CharField(max_length=100)
    slot = models.PositiveIntegerField()
    holder = models.UUIDField(null=True, blank=True)
    held_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key", "slot"], name="uniq_slot")]

    def __str__(self) -> str:
        return f"{self.key}#{self.slot}"


class PartnerProfile(models.Model):
    """Binds a partner API user to exactly one tenant: every API query the user makes is scoped
    to it. Staff users need no profile (their tokens see every tenant)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="partner_profile"
    )
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="partners")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.tenant})"


class WebhookDelivery(models.Model):
    """One attempt to POST a bulk change's completion webhook to its ``callback_url`` (Saleor's
    delivery-attempt row). Attempt n+1 is a new row, written with its ``next_attempt_at`` in the
    transaction that records attempt n's failure, so the database is the outbox: a lost task is
    found again by the sweep. ``completed_at`` is the bulk change's ``processed_at`` of the
    completion being announced (a manual retry that completes it again is a new event).
    ``payload`` is the exact body signed and sent, identical on every attempt."""

    class Status(models.TextChoices):
        SCHEDULED = "SCHEDULED"
        SENDING = "SENDING"
        SUCCEEDED = "SUCCEEDED"
        FAILED = "FAILED"

    TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED})

    bulk_change = models.ForeignKey(
        BulkChange, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    completed_at = models.DateTimeField()
    attempt = models.PositiveIntegerField()
    url = models.URLField(max_length=500)
    payload = models.TextField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SCHEDULED)
    next_attempt_at = models.DateTimeField()
    claimed_until = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    response_status = models.IntegerField(null=True, blank=True)
    error_text = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["bulk_change", "completed_at", "attempt"],
                name="uniq_webhook_delivery_attempt",
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"Webhook delivery {self.pk} (bulk change {self.bulk_change_id}, #{self.attempt})"
