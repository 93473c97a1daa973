"""The new-bulk-change form offers a carrier's own options only — ThingSpace's service plan,
ZIP code, reason code and ETF waiver; Telegence's reason code; none for POND, Jasper or Teal —
and refuses another carrier's options posted anyway, instead of dropping them silently. Rev.io
is billing: never offered as the bulk change's carrier."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from bulkchanges.models import BulkChange, IntegrationAuthentication
from tests.admin.conftest import Console
from tests.conftest import iccids

pytestmark = pytest.mark.django_db

NEW = reverse("admin:bulkchanges_bulkchange_new")
OPTIONS = ("service_plan", "mdn_zip_code", "reason_code", "etf_waiver")


def form_for(client: Client, console: Console, integration: str) -> str:
    url = f"{NEW}?tenant={console.tenant.pk}&integration={integration}"
    return client.get(url).content.decode()


def offered_options(html: str) -> set[str]:
    return {name for name in OPTIONS if re.search(rf'name="{name}"', html)}


def credentials(console: Console, integration: str) -> IntegrationAuthentication:
    return IntegrationAuthentication.objects.create(
        tenant=console.tenant, integration=integration, base_url="http://127.0.0.1:9", account="a"
    )


def test_rev_io_is_not_offered_as_a_bulk_change_carrier(
    admin_client: Client, console: Console
) -> None:
    html = admin_client.get(NEW).content.decode()
    carriers = re.findall(r'<option value="([A-Z]+)"', html[html.index('name="integration"') :])
    assert "POND" in carriers and "THINGSPACE" in carriers
    assert "REV" not in carriers
    refused = admin_client.get(f"{NEW}?tenant={console.tenant.pk}&integration=REV")
    assert refused.status_code == 200
    assert "Select a valid choice. REV is not one of the available choices." in (
        refused.content.decode()
    )


@pytest.mark.parametrize(
    ("integration", "expected"),
    [
        ("POND", set()),
        ("JASPER", set()),
        ("TEAL", set()),
        ("THINGSPACE", set(OPTIONS)),
        ("TELEGENCE", {"reason_code"}),
    ],
)
def test_each_carrier_is_offered_only_its_own_options(
    admin_client: Client, console: Console, integration: str, expected: set[str]
) -> None:
    credentials(console, integration)
    html = form_for(admin_client, console, integration)
    assert offered_options(html) == expected
    assert ("pondops-carrier-options" in html) == bool(expected)
    assert "Carrier options (ThingSpace, Telegence)" not in html


def test_the_reason_code_help_is_the_carriers_own(admin_client: Client, console: Console) -> None:
    credentials(console, "TELEGENCE")
    html = form_for(admin_client, console, "TELEGENCE")
    assert "Telegence: the line's reason code, e.g. CR" in html
    assert "FF, the only code ThingSpace documents" not in html


def test_another_carriers_option_posted_to_a_pond_form_is_refused_with_a_reason(
    admin_client: Client, console: Console
) -> None:
    html = admin_client.post(
        f"{NEW}?tenant={console.tenant.pk}&integration=POND",
        {
            "credentials": console.pond.pk,
            "update_status": "SUSPENDED",
            "reason_code": "FF",
            "service_plan": "plan-9",
            "devices_text": iccids(1)[0],
        },
    ).content.decode()

    assert (
        "Reason code is a Verizon ThingSpace and AT&amp;T Telegence option; POND takes none" in html
    )
    assert "Service plan is a Verizon ThingSpace option; POND takes none" in html
    assert "Please correct the error" in html
    assert 'name="draft"' not in html  # no preview to confirm
    assert BulkChange.objects.count() == 0


def test_an_empty_foreign_option_is_no_error_and_a_carriers_own_option_is_kept(
    admin_client: Client, console: Console
) -> None:
    pond = admin_client.post(
        f"{NEW}?tenant={console.tenant.pk}&integration=POND",
        {
            "credentials": console.pond.pk,
            "update_status": "SUSPENDED",
            "etf_waiver": "",  # an old form's empty select: nothing asked
            "devices_text": iccids(1)[0],
        },
    ).content.decode()
    assert "takes none" not in pond and 'name="draft"' in pond

    telegence = credentials(console, "TELEGENCE")
    html = admin_client.post(
        f"{NEW}?tenant={console.tenant.pk}&integration=TELEGENCE",
        {
            "credentials": telegence.pk,
            "update_status": "Suspended",
            "reason_code": "CR",
            "devices_text": iccids(1)[0],
        },
    ).content.decode()
    assert 'name="draft"' in html, re.findall(r'class="errorlist[^>]*>.*?</ul>', html)
    assert "ReasonCode: CR" in html  # the preview's request in words carries it
