"""The new-bulk-change form: parsing only. Validation of the request itself (target status,
credentials, carrier options, Rev.io credentials) is ``status_update_request_validate``'s, and
the device list is ``parse_device_list``'s — the same code the API and the commands run."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db.models import QuerySet

from bulkchanges.models import DeviceStatus, IntegrationAuthentication, Tenant
from integrations.base import Integration, carrier_integrations, processor_class
from integrations.rev_request import RevProduct, RevServiceRequest

# The carrier options each carrier's processor reads (its ``option_names``: ThingSpace's and
# Telegence's today); the other carriers take none.
CARRIER_OPTION_FIELDS: dict[str, tuple[str, ...]] = {
    integration: processor_class(integration).option_names
    for integration in carrier_integrations()
    if processor_class(integration).option_names
}
OPTION_HELP: dict[tuple[str, str], str] = {
    (Integration.THINGSPACE, "reason_code"): "ThingSpace: the reason code (FF, the only code "
    "ThingSpace documents).",
    (Integration.TELEGENCE, "reason_code"): "Telegence: the line's reason code, e.g. CR "
    "(up to 10 letters or digits).",
}


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


class ScheduledForField(forms.DateTimeField):
    """When a bulk change starts: ISO 8601 (``2026-12-02 18:00`` or ``2026-12-02T18:00``),
    in UTC unless it names an offset (``…T18:00+01:00``). The creation rules (at most
    BULKCHANGE_MAX_SCHEDULE_DAYS ahead, not in the past) are the service's."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", "Start at (UTC)")
        kwargs.setdefault(
            "help_text",
            "Optional: e.g. 2026-12-24 06:00 (UTC) or 2026-12-24T07:00+01:00. Empty: start "
            f"at once. At most {settings.BULKCHANGE_MAX_SCHEDULE_DAYS} days ahead.",
        )
        kwargs.setdefault(
            "widget",
            forms.DateTimeInput(
                attrs={"placeholder": "YYYY-MM-DD HH:MM", "size": 25, "autocomplete": "off"},
                format="%Y-%m-%d %H:%M",
            ),
        )
        super().__init__(**kwargs)


class TargetForm(forms.Form):
    """Step one: whose devices, on which carrier — the rest of the form depends on both.
    ``tenants``: the operator's tenants, the only ones offered or accepted."""

    tenant = forms.ModelChoiceField(queryset=Tenant.objects.none())
    integration = forms.ChoiceField(
        choices=[(value, Integration(value).label) for value in carrier_integrations()]
    )

    def __init__(self, *args: Any, tenants: QuerySet[Tenant], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        tenant_field = self.fields["tenant"]
        assert isinstance(tenant_field, forms.ModelChoiceField)
        tenant_field.queryset = tenants


class NewBulkChangeForm(forms.Form):
    """Step two: the StatusUpdateRequest and the device list, for one tenant and carrier."""

    credentials = forms.ModelChoiceField(
        queryset=IntegrationAuthentication.objects.none(),
        label="Carrier credentials",
        help_text="The tenant's active credentials for this carrier.",
    )
    update_status = forms.ChoiceField(
        label="Target status (UpdateStatus)", help_text="Only statuses this carrier can set."
    )
    is_ignore_current_status = forms.BooleanField(
        required=False,
        label="Ignore current status (IsIgnoreCurrentStatus)",
        help_text="Call the carrier even for devices already in the target status "
        "(unchecked: those are skipped without a call).",
    )
    post_update_status = forms.ModelChoiceField(
        queryset=DeviceStatus.objects.none(),
        required=False,
        to_field_name="code",
        label="Inventory status afterwards (PostUpdateStatusId)",
        empty_label="The carrier's default for the target status",
    )
    account_number = forms.CharField(required=False, max_length=200, label="Account number")
    scheduled_for = ScheduledForField()
    service_plan = forms.CharField(
        required=False, max_length=200, help_text="ThingSpace activation: the service plan."
    )
    mdn_zip_code = forms.CharField(
        required=False,
        max_length=10,
        label="MDN ZIP code",
        help_text="ThingSpace activation: a 5-digit ZIP code.",
    )
    reason_code = forms.CharField(
        required=False, max_length=20, help_text="ThingSpace / Telegence: the reason code."
    )
    etf_waiver = forms.ChoiceField(
        required=False,
        choices=[("", "—"), ("true", "true"), ("false", "false")],
        label="ETF waiver",
        help_text="ThingSpace deactivation only.",
    )
    rev_customer_id = forms.IntegerField(
        required=False,
        min_value=1,
        label="Rev.io customer id",
        help_text="Fill in to open a Rev.io service for each device after the carrier succeeds.",
    )
    rev_service_type_id = forms.IntegerField(
        required=False, min_value=1, label="Rev.io service type id"
    )
    rev_provider_id = forms.IntegerField(required=False, min_value=1, label="Rev.io provider id")
    rev_credentials = forms.ModelChoiceField(
        queryset=IntegrationAuthentication.objects.none(),
        required=False,
        label="Rev.io credentials",
        empty_label="The tenant's only active Rev.io credentials",
    )
    rev_package_id = forms.IntegerField(required=False, min_value=1, label="Rev.io package id")
    rev_products = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 30}),
        label="Rev.io products",
        help_text="One product a line: product id and rate, e.g. <code>55 4.50</code>.",
    )
    rev_prorate = forms.BooleanField(required=False, label="Prorate")
    rev_activated_date = forms.DateField(
        required=False, label="Activated date", help_text="YYYY-MM-DD"
    )
    rev_effective_date = forms.DateField(
        required=False, label="Effective date", help_text="YYYY-MM-DD"
    )
    rev_usage_plan_group_id = forms.IntegerField(
        required=False, min_value=1, label="Usage plan group id"
    )
    devices_file = forms.FileField(
        required=False,
        label="Device list (CSV file)",
    )
    devices_text = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 60, "spellcheck": "false"}),
        label="…or paste the list",
        help_text="The same format as the file: one ICCID a line, or CSV with a header.",
    )

    REV_FIELDS = (
        "rev_customer_id",
        "rev_service_type_id",
        "rev_provider_id",
        "rev_credentials",
        "rev_package_id",
        "rev_products",
        "rev_prorate",
        "rev_activated_date",
        "rev_effective_date",
        "rev_usage_plan_group_id",
    )
    OPTION_FIELDS = ("service_plan", "mdn_zip_code", "reason_code", "etf_waiver")

    def __init__(
        self,
        *args: Any,
        tenant: Tenant,
        integration: str,
        upload_refusal: str | None = None,
        **kwargs: Any,
    ) -> None:
        """``upload_refusal``: why the upload handler dropped the file while it was read
        (``bulkchanges.uploads``), shown on the file field."""
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.integration = integration
        self.upload_refusal = upload_refusal
        # Only this carrier's options are offered; another carrier's, posted anyway (a stale
        # or hand-made form), are refused in clean() rather than silently dropped.
        self.option_field_names = CARRIER_OPTION_FIELDS.get(integration, ())
        self.foreign_options = [
            name for name in self.OPTION_FIELDS if name not in self.option_field_names
        ]
        for name in self.foreign_options:
            del self.fields[name]
        for name in self.option_field_names:
            help_text = OPTION_HELP.get((integration, name))
            if help_text:
                self.fields[name].help_text = help_text
        self.fields["devices_file"].help_text = (
            "A CSV with a header naming <code>iccid</code> (and optionally <code>msisdn</code>, "
            f"<code>eid</code>), or one ICCID a line; UTF-8; at most "
            f"{_megabytes(settings.PONDOPS_MAX_UPLOAD_BYTES)} and "
            f"{settings.BULKCHANGE_MAX_DEVICES_PER_REQUEST:,} devices."
        )
        credentials = _active_credentials(tenant, integration)
        credentials_field = self.fields["credentials"]
        assert isinstance(credentials_field, forms.ModelChoiceField)
        credentials_field.queryset = credentials
        self.has_credentials = bool(credentials)
        if len(credentials) == 1:
            credentials_field.initial = credentials[0].pk
        rev_field = self.fields["rev_credentials"]
        assert isinstance(rev_field, forms.ModelChoiceField)
        rev_field.queryset = _active_credentials(tenant, Integration.REV)
        status_field = self.fields["update_status"]
        assert isinstance(status_field, forms.ChoiceField)
        status_field.choices = [("", "—"), *((name, name) for name in _statuses(integration))]
        post_field = self.fields["post_update_status"]
        assert isinstance(post_field, forms.ModelChoiceField)
        post_field.queryset = DeviceStatus.objects.filter(integration=integration).order_by("code")

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if self.upload_refusal:
            self.add_error(
                "devices_file", self.upload_refusal[:1].upper() + self.upload_refusal[1:] + "."
            )
        has_file = bool(cleaned.get("devices_file")) or "devices_file" in self.errors
        has_text = bool((cleaned.get("devices_text") or "").strip())
        if has_file and has_text:
            self.add_error("devices_text", "Give the devices either as a file or pasted, not both.")
        elif not has_file and not has_text:
            self.add_error("devices_file", "Upload a device list or paste one.")
        self._refuse_foreign_options()
        if self._rev_given(cleaned):
            for name in ("rev_customer_id", "rev_service_type_id"):
                if not cleaned.get(name):
                    self.add_error(name, "Required for a Rev.io service.")
            if cleaned.get("rev_products") and cleaned.get("rev_package_id"):
                self.add_error("rev_products", "Give a package or products, not both.")
        return cleaned

    def _refuse_foreign_options(self) -> None:
        label = Integration(self.integration).label
        for name in self.foreign_options:
            if (self.data.get(self.add_prefix(name)) or "").strip():
                field = NewBulkChangeForm.base_fields[name]
                carriers = " and ".join(
                    Integration(carrier).label
                    for carrier, names in CARRIER_OPTION_FIELDS.items()
                    if name in names
                )
                self.add_error(
                    None,
                    f"{field.label or name.replace('_', ' ').capitalize()} is a {carriers} "
                    f"option; {label} takes none, so this form does not accept it. Reload the "
                    "form and leave it out.",
                )

    def clean_rev_products(self) -> list[RevProduct]:
        products = []
        for number, line in enumerate(self.cleaned_data.get("rev_products", "").splitlines(), 1):
            parts = line.replace(",", " ").split()
            if not parts:
                continue
            try:
                product_id, rate = int(parts[0]), Decimal(parts[1])
                if len(parts) != 2 or product_id <= 0:
                    raise ValueError
            except (ValueError, IndexError, InvalidOperation):
                raise forms.ValidationError(
                    f"Line {number} ({line.strip()!r}): write a product id and a rate, "
                    "e.g. 55 4.50."
                ) from None
            products.append(RevProduct(product_id=product_id, rate=rate))
        return products

    def _rev_given(self, cleaned: dict[str, Any]) -> bool:
        return any(
            cleaned.get(name) for name in self.REV_FIELDS if name not in ("rev_credentials",)
        )

    def devices_content(self) -> UploadedFile | str:
        """The uploaded file, for the parser to read as a stream (at most
        PONDOPS_MAX_UPLOAD_BYTES: the upload handler drops a larger one), or the pasted text."""
        upload: UploadedFile | None = self.cleaned_data.get("devices_file")
        if upload is not None:
            upload.seek(0)
            return upload
        return str(self.cleaned_data.get("devices_text") or "")

    def options(self) -> dict[str, str]:
        return {
            name: str(self.cleaned_data[name]).strip()
            for name in self.option_field_names
            if self.cleaned_data.get(name)
        }

    def rev_service(self, *, rev_credentials_id: int | None) -> RevServiceRequest | None:
        """The Rev.io request, or None when no Rev field is filled in. ``rev_credentials_id``
        is the resolved credentials (the chosen row, else the tenant's only one)."""
        cleaned = self.cleaned_data
        if not self._rev_given(cleaned) or rev_credentials_id is None:
            return None
        return RevServiceRequest(
            customer_id=cleaned["rev_customer_id"],
            service_type_id=cleaned["rev_service_type_id"],
            integration_authentication_id=rev_credentials_id,
            provider_id=cleaned.get("rev_provider_id"),
            activated_date=cleaned.get("rev_activated_date"),
            effective_date=cleaned.get("rev_effective_date"),
            prorate=bool(cleaned.get("rev_prorate")),
            usage_plan_group_id=cleaned.get("rev_usage_plan_group_id"),
            package_id=cleaned.get("rev_package_id"),
            products=tuple(cleaned.get("rev_products") or ()),
        )

    @property
    def wants_rev(self) -> bool:
        return self._rev_given(self.cleaned_data)


def _active_credentials(tenant: Tenant, integration: str) -> QuerySet[IntegrationAuthentication]:
    return IntegrationAuthentication.objects.filter(
        tenant=tenant, integration=integration, is_active=True
    ).order_by("pk")


def _statuses(integration: str) -> list[str]:
    return list(processor_class(integration).statuses)


# Where an ApplicationError's field names land on this form (None: above the form).
SERVICE_FIELDS: dict[str, str | None] = {
    "credentials": "credentials",
    "update_status": "update_status",
    "post_update_status": "post_update_status",
    "rev_service": "rev_credentials",
    "devices": "devices_file",
    "options": None,
}
