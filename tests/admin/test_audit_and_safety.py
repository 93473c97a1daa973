"""Audit and safety: the log has no add/change/delete for anyone (superusers included); bulk
changes and device changes cannot be edited or deleted here (deleting would delete their
audit log); credentials' secrets are write-only and a blank field keeps the stored secret."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from bulkchanges.models import BulkChangeLog, IntegrationAuthentication
from bulkchanges.services.logs import log_write
from tests.admin.conftest import POND_KEY, Console, credentials_form_data, make_bulk_change

pytestmark = pytest.mark.django_db


def test_nobody_can_add_change_or_delete_log_rows(admin_client: Client, console: Console) -> None:
    bulk_change = make_bulk_change(console, 1)
    row = log_write(
        bulk_change_id=bulk_change.pk, description="Bulk change cancelled", process_by="t"
    )
    change_url = reverse("admin:bulkchanges_bulkchangelog_change", args=[row.pk])

    assert admin_client.get(reverse("admin:bulkchanges_bulkchangelog_add")).status_code == 403
    assert (
        admin_client.get(
            reverse("admin:bulkchanges_bulkchangelog_delete", args=[row.pk])
        ).status_code
        == 403
    )
    page = admin_client.get(change_url).content.decode()
    assert 'name="_save"' not in page and "Bulk change cancelled" in page
    admin_client.post(change_url, {"log_entry_description": "edited"})
    listing = admin_client.get(
        reverse("admin:bulkchanges_bulkchangelog_changelist")
    ).content.decode()
    assert "delete_selected" not in listing
    assert BulkChangeLog.objects.get(pk=row.pk).log_entry_description == "Bulk change cancelled"


def test_bulk_changes_and_devices_are_neither_editable_nor_deletable(
    admin_client: Client, console: Console
) -> None:
    bulk_change = make_bulk_change(console, 1)
    device = bulk_change.device_changes.get()

    for model, pk in (("bulkchange", bulk_change.pk), ("devicechange", device.pk)):
        assert admin_client.get(reverse(f"admin:bulkchanges_{model}_add")).status_code == 403
        delete = reverse(f"admin:bulkchanges_{model}_delete", args=[pk])
        assert admin_client.post(delete, {"post": "yes"}).status_code == 403
        assert (
            'name="_save"'
            not in admin_client.get(
                reverse(f"admin:bulkchanges_{model}_change", args=[pk])
            ).content.decode()
        )
    assert bulk_change.device_changes.filter(pk=device.pk).exists()
    assert type(bulk_change).objects.filter(pk=bulk_change.pk).exists()


def credentials_form(console: Console, **changes: str) -> dict[str, object]:
    return credentials_form_data(console.pond, **changes)


def test_secrets_are_never_rendered_and_a_blank_field_keeps_the_stored_secret(
    admin_client: Client, console: Console
) -> None:
    url = reverse("admin:bulkchanges_integrationauthentication_change", args=[console.pond.pk])

    page = admin_client.get(url).content.decode()
    assert POND_KEY not in page and 'type="password"' in page
    assert "secret: stored, secret_2: not set" in page

    assert admin_client.post(url, credentials_form(console, account="1235")).status_code == 302
    console.pond.refresh_from_db()
    assert console.pond.account == "1235" and console.pond.secret == POND_KEY

    admin_client.post(url, credentials_form(console, secret="a-new-key"))
    console.pond.refresh_from_db()
    assert console.pond.secret == "a-new-key"
    listing = admin_client.get(
        reverse("admin:bulkchanges_integrationauthentication_changelist")
    ).content.decode()
    assert "a-new-key" not in listing


def test_a_view_only_user_sees_whether_a_secret_is_stored_not_the_secret(
    staff_client: Callable[..., Client], console: Console
) -> None:
    viewer = staff_client("view_integrationauthentication")
    url = reverse("admin:bulkchanges_integrationauthentication_change", args=[console.pond.pk])

    page = viewer.get(url).content.decode()

    assert page and POND_KEY not in page
    assert "secret: stored, secret_2: not set" in page
    assert IntegrationAuthentication.objects.get(pk=console.pond.pk).secret == POND_KEY


def test_new_credentials_left_without_limits_start_at_the_carriers_documented_ones(
    admin_client: Client, console: Console
) -> None:
    from integrations.base import default_limits

    add = reverse("admin:bulkchanges_integrationauthentication_add")
    assert "documented limit (POND" in admin_client.get(add).content.decode()
    data = credentials_form(console, account="9999", secret="k", rate_limit="", max_concurrency="")
    assert admin_client.post(add, data).status_code == 302

    row = IntegrationAuthentication.objects.get(account="9999")
    assert (row.rate_limit, row.max_concurrency) == default_limits("POND")
    # Callback secrets are generated per row, never shown.
    other = console.pond
    assert row.callback_token and row.callback_token != other.callback_token
    page = admin_client.get(
        reverse("admin:bulkchanges_integrationauthentication_change", args=[row.pk])
    ).content.decode()
    assert row.callback_token not in page and row.callback_password not in page


def test_callbacks_are_listed_read_only_with_the_unmatched_ones_marked(
    admin_client: Client, console: Console
) -> None:
    from bulkchanges.models import CarrierCallback

    CarrierCallback.objects.create(
        integration="POND",
        integration_authentication=console.pond,
        request_id="lost-request",
        outcome=CarrierCallback.Outcome.SUCCEEDED,
        method="POST",
        path="/carriers/x/callbacks/1/",
    )
    listing = reverse("admin:bulkchanges_carriercallback_changelist")
    page = admin_client.get(listing + "?matched=no").content.decode()
    assert "lost-request" in page and "unmatched" in page
    assert "lost-request" not in admin_client.get(listing + "?matched=yes").content.decode()
    assert admin_client.get(reverse("admin:bulkchanges_carriercallback_add")).status_code == 403


def test_moving_thingspace_credentials_needs_both_secrets_typed_again(
    admin_client: Client, console: Console
) -> None:
    row = IntegrationAuthentication.objects.create(
        tenant=console.tenant,
        integration="THINGSPACE",
        base_url="http://127.0.0.1:9/ts",
        account="0000123456-00001",
        username="uws",
        client_id="key",
        secret="app-secret",
        secret_2="uws-password",
    )
    url = reverse("admin:bulkchanges_integrationauthentication_change", args=[row.pk])
    form = credentials_form_data(row, base_url="http://127.0.0.1:10/ts", secret="new-app-secret")

    refused = admin_client.post(url, form)

    assert refused.context["adminform"].form.errors == {
        "secret_2": ["Changing base_url requires re-entering secret_2: it is sent to the new host."]
    }
    row.refresh_from_db()
    assert (row.base_url, row.secret) == ("http://127.0.0.1:9/ts", "app-secret")

    form["secret_2"] = "new-uws-password"
    assert admin_client.post(url, form).status_code == 302
    row.refresh_from_db()
    assert (row.secret, row.secret_2) == ("new-app-secret", "new-uws-password")
    change = row.changes.get()
    assert change.secret_reentered and change.secret_2_reentered
    assert "new-app-secret" not in str(change.changes)
