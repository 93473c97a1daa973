"""Issue 13, finding 2 (admin half), replayed: a tenant-A operator saw tenant B's bulk changes
and credentials rows in the console and could act on them. Every registered model admin is
probed across tenants — its list, every URL that takes an object id, every list action, its
forms' choices — so an admin added without tenant scoping fails here."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.db.models import Model
from django.test import Client, RequestFactory
from django.urls import URLPattern, reverse
from django.utils import timezone
from django.utils.html import escape

from bulkchanges import sqs
from bulkchanges.admin.drafts import SESSION_KEY
from bulkchanges.admin.site import NO_TENANT_NOTICE
from bulkchanges.admin.tenancy import ReferenceDataAdmin, SuperuserOnlyAdmin, TenantScopedAdmin
from bulkchanges.models import (
    BulkChange,
    BulkChangeLog,
    CarrierCallback,
    Device,
    DeviceChange,
    DeviceStatus,
    IntegrationAuthentication,
    OperatorMembership,
    PartnerApiKey,
    PartnerProfile,
    Preview,
    Tenant,
    WebhookDelivery,
)
from bulkchanges.services.logs import log_write
from tests.admin.conftest import Console, make_bulk_change
from tests.conftest import iccids

pytestmark = pytest.mark.django_db

REFUSED_CHOICE = "Select a valid choice. That choice is not one of the available choices."
THEIR_NAME = "Borealis Telematics"

# Admins whose rows belong to no tenant (by model label: not every app is installed in
# every release), and why they are for superusers only.
TASKS = "django-q2's task arguments name bulk changes of every tenant"
LOGINS = "admin login attempts and lockouts of every user, whatever their tenants"
SUPERUSER_ONLY = {
    "auth.user": "whoever edits users may make anyone a superuser or a member of any tenant",
    "auth.group": "groups carry permissions across tenants",
    "axes.accessattempt": LOGINS,
    "axes.accessfailurelog": LOGINS,
    "axes.accesslog": LOGINS,
    "django_q.schedule": TASKS,
    "django_q.success": TASKS,
    "django_q.failure": TASKS,
    "django_q.ormq": TASKS,
    "bulkchanges.refusedmessage": "the dead-letter queue has no tenant",
}
REFERENCE_DATA = {DeviceStatus}


@dataclass
class TenantRows:
    """One tenant's row of every tenant-scoped model the console lists."""

    console: Console
    bulk_change: BulkChange
    rows: dict[type[Model], Model]

    @property
    def tenant(self) -> Tenant:
        return self.console.tenant


def tenant_rows(name: str, *, start: int, user: str) -> TenantRows:
    tenant = Tenant.objects.create(name=name)
    pond = IntegrationAuthentication.objects.create(
        tenant=tenant, integration="POND", base_url="http://127.0.0.1:9/pond", account=name[:4]
    )
    rev = IntegrationAuthentication.objects.create(
        tenant=tenant, integration="REV", base_url="http://127.0.0.1:9/rev", account=name[:4]
    )
    console = Console(tenant, pond, rev)
    bulk_change = make_bulk_change(console, 3, start=start, device_statuses=["ERROR"])
    device_change = bulk_change.device_changes.order_by("pk").first()
    assert device_change is not None
    log = log_write(
        bulk_change_id=bulk_change.pk,
        device_change_id=device_change.pk,
        description="POND set status",
        process_by="worker",
    )
    now = timezone.now()
    partner = User.objects.create_user(username=user)
    api_key, _ = PartnerApiKey.objects.create_key(
        name=f"{name} key", tenant=tenant, user=partner, role=PartnerApiKey.Role.SUBMIT
    )
    rows: dict[type[Model], Model] = {
        Tenant: tenant,
        IntegrationAuthentication: pond,
        Device: Device.objects.create(
            tenant=tenant, integration="POND", iccid=iccids(1, start=start + 500)[0]
        ),
        BulkChange: bulk_change,
        DeviceChange: device_change,
        BulkChangeLog: log,
        WebhookDelivery: WebhookDelivery.objects.create(
            bulk_change=bulk_change,
            completed_at=now,
            attempt=1,
            url="https://127.0.0.1:9/hook",
            payload="{}",
            next_attempt_at=now,
        ),
        # Unmatched: it belongs to its credentials' tenant all the same.
        CarrierCallback: CarrierCallback.objects.create(
            integration="POND",
            integration_authentication=pond,
            request_id=f"req-{name[:4]}",
            outcome=CarrierCallback.Outcome.SUCCEEDED,
            method="POST",
            path="/carriers/pond/callbacks/",
        ),
        PartnerProfile: PartnerProfile.objects.create(user=partner, tenant=tenant),
        PartnerApiKey: api_key,
        Preview: Preview.objects.create(
            tenant=tenant,
            integration="POND",
            integration_authentication=pond,
            request=bulk_change.request,
            bulk_change=bulk_change,
            status=Preview.Status.DONE,
            created_by=f"admin:{user}",
        ),
    }
    return TenantRows(console, bulk_change, rows)


@dataclass
class World:
    ours: TenantRows
    theirs: TenantRows
    operator: Client  # every permission, an operator of tenant A only
    operator_user: User


def login(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def staff_user(username: str, *tenants: Tenant) -> User:
    user = User.objects.create_user(username=username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.all())
    for tenant in tenants:
        OperatorMembership.objects.create(user=user, tenant=tenant)
    return user


@pytest.fixture
def world(device_statuses: None, settings: Any) -> Iterator[World]:
    """Tenant B's rows made first (its bulk change is the oldest), then tenant A's; no SQS
    (the dashboard reports the queue unconfigured instead of waiting for one)."""
    sqs.sqs_client.cache_clear()
    settings.PONDOPS_SQS_QUEUE_URL = ""
    theirs = tenant_rows(THEIR_NAME, start=100, user="partner-b")  # the older bulk change
    ours = tenant_rows("Acme IoT", start=0, user="partner-a")
    user = staff_user("operator-a", ours.tenant)
    yield World(ours, theirs, login(user), user)
    sqs.sqs_client.cache_clear()


def snapshot() -> list[Any]:
    """Every row the console could change, as stored."""
    models: list[type[Model]] = [*world_models(), OperatorMembership]
    return [list(model._default_manager.order_by("pk").values()) for model in models]


def world_models() -> list[type[Model]]:
    return [
        Tenant,
        IntegrationAuthentication,
        Device,
        BulkChange,
        DeviceChange,
        BulkChangeLog,
        WebhookDelivery,
        CarrierCallback,
        PartnerProfile,
        PartnerApiKey,
        Preview,
    ]


def registry() -> dict[type[Model], admin.ModelAdmin]:
    return dict(admin.site._registry)


SCOPED = [model for model, ma in registry().items() if isinstance(ma, TenantScopedAdmin)]


def label(model: Any) -> str:
    return model._meta.label_lower


def url(model: type[Model], view: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def object_urls(model: type[Model]) -> Iterator[URLPattern]:
    """Every named URL of the model's admin that takes an object id: Django's change, history
    and delete pages and every custom one (retry, resubmit, cancel, export, progress…)."""
    for pattern in registry()[model].get_urls():
        if isinstance(pattern, URLPattern) and pattern.name and "object_id" in str(pattern.pattern):
            yield pattern


def missing_pk(model: type[Model]) -> int | str:
    last = model._default_manager.order_by("-pk").values_list("pk", flat=True).first()
    if isinstance(last, str):  # a partner API key's id: "<prefix>.<hash>"
        return f"Missing0.{last.partition('.')[2]}"
    return int(last or 0) + 1000


# --- Every admin says how it is scoped -------------------------------------------------------


def test_every_registered_admin_is_tenant_scoped_or_says_why_not() -> None:
    unprobed = [
        label(model)
        for model, model_admin in registry().items()
        if isinstance(model_admin, TenantScopedAdmin) and model not in world_models()
    ]
    assert not unprobed, f"tenant-scoped admins without a cross-tenant probe here: {unprobed}"
    superuser_only = {m for m, ma in registry().items() if isinstance(ma, SuperuserOnlyAdmin)}
    unexplained = sorted(label(m) for m in superuser_only if label(m) not in SUPERUSER_ONLY)
    assert not unexplained, (
        f"{unexplained} fell back to superuser-only: their admins are not TenantScopedAdmin; "
        "scope them by tenant, or list them in SUPERUSER_ONLY with the reason"
    )
    reference = {
        m
        for m, ma in registry().items()
        if isinstance(ma, ReferenceDataAdmin) and not isinstance(ma, SuperuserOnlyAdmin)
    }
    assert reference == REFERENCE_DATA
    assert set(SCOPED) == set(world_models())


# --- Finding 2 replayed: lists, pages, URLs and actions --------------------------------------


@pytest.mark.parametrize("model", SCOPED, ids=label)
def test_finding_2_a_tenant_a_operator_lists_no_tenant_b_row(
    world: World, model: type[Model]
) -> None:
    response = world.operator.get(url(model, "changelist"))

    assert response.status_code == 200
    listed = {row.pk for row in response.context["cl"].result_list}
    assert world.ours.rows[model].pk in listed
    assert world.theirs.rows[model].pk not in listed
    assert THEIR_NAME not in response.content.decode()


@pytest.mark.parametrize("model", SCOPED, ids=label)
def test_finding_2_every_tenant_b_object_url_is_404_like_a_missing_id_and_changes_nothing(
    world: World, model: type[Model]
) -> None:
    theirs, missing = world.theirs.rows[model].pk, missing_pk(model)
    before = snapshot()
    probed = []
    for pattern in object_urls(model):
        target = reverse(f"admin:{pattern.name}", args=[theirs])
        absent = reverse(f"admin:{pattern.name}", args=[missing])
        for method in ("get", "post"):
            probe = getattr(world.operator, method)(target, {"post": "yes"})
            control = getattr(world.operator, method)(absent, {"post": "yes"})
            assert (probe.status_code, control.status_code) == (404, 404), (target, method)
            assert probe.content == control.content
        probed.append(str(pattern.name))

    assert snapshot() == before
    assert any(name.endswith("_change") for name in probed)
    assert world.operator.get(url(model, "change", world.ours.rows[model].pk)).status_code == 200


def test_finding_2_the_bulk_change_actions_are_all_probed(world: World) -> None:
    names = {pattern.name for pattern in object_urls(BulkChange)}
    assert {
        f"bulkchanges_bulkchange_{action}"
        for action in ("progress", "retry", "resubmit", "cancel", "export", "change", "history")
    } <= names


def list_actions() -> list[tuple[type[Model], str]]:
    request = RequestFactory().get("/")
    request.user = User(is_staff=True, is_superuser=True, is_active=True)
    return [(model, name) for model in SCOPED for name in registry()[model].get_actions(request)]


@pytest.mark.parametrize(
    ("model", "action"), list_actions(), ids=lambda v: v if isinstance(v, str) else label(v)
)
def test_finding_2_list_actions_on_tenant_b_rows_change_nothing(
    world: World, model: type[Model], action: str
) -> None:
    before = snapshot()

    response = world.operator.post(
        url(model, "changelist"),
        {"action": action, "_selected_action": [world.theirs.rows[model].pk], "post": "yes"},
        follow=True,
    )

    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]
    for device_change in world.theirs.bulk_change.device_changes.all():
        assert device_change.iccid.encode() not in body
    assert THEIR_NAME.encode() not in body
    assert snapshot() == before


# --- Finding 2 replayed: creating against tenant B -------------------------------------------


def new_url(tenant: Tenant) -> str:
    return f"{reverse('admin:bulkchanges_bulkchange_new')}?tenant={tenant.pk}&integration=POND"


def new_form(world: World, **fields: Any) -> dict[str, Any]:
    return {
        "credentials": world.ours.console.pond.pk,
        "update_status": "SUSPENDED",
        "devices_text": "\n".join(iccids(2, start=900)),
        **fields,
    }


def test_finding_2_the_new_bulk_change_form_offers_and_accepts_only_my_tenants(
    world: World,
) -> None:
    offered = world.operator.get(reverse("admin:bulkchanges_bulkchange_new"))
    assert "Acme IoT" in offered.content.decode()
    assert THEIR_NAME not in offered.content.decode()

    refused = world.operator.get(new_url(world.theirs.tenant))

    assert REFUSED_CHOICE in refused.content.decode()
    assert "form" not in refused.context or refused.context.get("form") is None


@pytest.mark.parametrize("field", ["credentials", "rev_credentials"])
def test_finding_2_the_new_bulk_change_form_refuses_tenant_b_credentials(
    world: World, field: str
) -> None:
    theirs = world.theirs.console.pond if field == "credentials" else world.theirs.console.rev
    before = snapshot()

    response = world.operator.post(
        new_url(world.ours.tenant),
        new_form(world, **{field: theirs.pk}, rev_customer_id=42, rev_service_type_id=7),
    )

    assert response.status_code == 200
    assert response.context["form"].errors[field] == [REFUSED_CHOICE]
    assert SESSION_KEY not in world.operator.session
    assert snapshot() == before


def test_finding_2_a_preview_confirmed_after_leaving_its_tenant_creates_nothing(
    world: World,
) -> None:
    OperatorMembership.objects.create(user=world.operator_user, tenant=world.theirs.tenant)
    preview = world.operator.post(
        new_url(world.theirs.tenant), new_form(world, credentials=world.theirs.console.pond.pk)
    )
    draft = preview.context["draft"]
    OperatorMembership.objects.filter(tenant=world.theirs.tenant).delete()
    before = snapshot()

    response = world.operator.post(
        reverse("admin:bulkchanges_bulkchange_new_confirm"), {"draft": draft.token}
    )

    assert response.status_code == 404
    assert snapshot() == before


# --- The dashboard -----------------------------------------------------------------------------


def dashboard(client: Client) -> dict[str, Any]:
    context: dict[str, Any] = client.get(reverse("admin:index")).context["dashboard"]
    return context


def test_finding_2_the_dashboard_counts_only_my_tenants(world: World) -> None:
    make_bulk_change(world.theirs.console, 4, start=300)
    both = login(staff_user("operator-ab", world.ours.tenant, world.theirs.tenant))
    superuser = login(User.objects.create_superuser("root", "root@example.com", "pw"))

    mine = dashboard(world.operator)

    assert mine["created_total"] == 1
    assert mine["oldest"]["bulk_change"] == world.ours.bulk_change
    assert sum(row["count"] for row in mine["unfinished"]) == 2
    assert mine["dead_letters"] is None
    for everyone in (dashboard(both), dashboard(superuser)):
        assert everyone["created_total"] == 3
        assert everyone["oldest"]["bulk_change"] == world.theirs.bulk_change
        assert sum(row["count"] for row in everyone["unfinished"]) == 2 + 2 + 4


# --- Who sees what -----------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["superuser", "operator of both tenants"])
@pytest.mark.parametrize("model", SCOPED, ids=label)
def test_superusers_and_operators_of_both_tenants_see_both(
    world: World, model: type[Model], who: str
) -> None:
    user = (
        User.objects.create_superuser("root", "root@example.com", "pw")
        if who == "superuser"
        else staff_user("operator-ab", world.ours.tenant, world.theirs.tenant)
    )
    response = login(user).get(url(model, "changelist"))

    listed = {row.pk for row in response.context["cl"].result_list}
    assert {world.ours.rows[model].pk, world.theirs.rows[model].pk} <= listed


def test_a_staff_user_in_no_tenant_sees_no_tenants_data_and_is_told_whom_to_ask(
    world: World,
) -> None:
    stranger = login(staff_user("stranger"))

    index = stranger.get(reverse("admin:index"))

    assert escape(NO_TENANT_NOTICE) in index.content.decode()
    assert index.context["dashboard"]["created_total"] == 0
    for model in SCOPED:
        assert not list(stranger.get(url(model, "changelist")).context["cl"].result_list)
    assert (
        escape(NO_TENANT_NOTICE) not in world.operator.get(reverse("admin:index")).content.decode()
    )


@pytest.mark.parametrize(
    "model",
    sorted((m for m in registry() if label(m) in SUPERUSER_ONLY), key=label),
    ids=label,
)
def test_rows_of_no_tenant_are_for_superusers_only(
    world: World, model: type[Model], admin_client: Client
) -> None:
    assert world.operator.get(url(model, "changelist")).status_code == 403
    assert world.operator.get(url(model, "add")).status_code == 403
    app_list = world.operator.get(reverse("admin:index")).context["app_list"]
    listed = {m["object_name"] for app in app_list for m in app["models"]}
    assert model._meta.object_name not in listed
    assert admin_client.get(url(model, "changelist")).status_code in (200, 302)


def test_device_statuses_are_shared_reference_data_read_only_for_operators(
    world: World, admin_client: Client
) -> None:
    status = DeviceStatus.objects.first()
    assert status is not None
    change = url(DeviceStatus, "change", status.pk)

    assert world.operator.get(url(DeviceStatus, "changelist")).status_code == 200
    assert world.operator.get(url(DeviceStatus, "add")).status_code == 403
    world.operator.post(change, {"code": "X", "display_name": "x", "integration": "POND"})
    assert (
        world.operator.post(url(DeviceStatus, "delete", status.pk), {"post": "yes"}).status_code
        == 403
    )
    assert DeviceStatus.objects.get(pk=status.pk).code == status.code
    assert admin_client.get(url(DeviceStatus, "add")).status_code == 200


def test_an_operator_may_neither_add_nor_delete_a_tenant(world: World) -> None:
    ours = world.ours.tenant
    assert world.operator.get(url(Tenant, "add")).status_code == 403
    assert world.operator.post(url(Tenant, "delete", ours.pk), {"post": "yes"}).status_code == 403
    assert Tenant.objects.filter(pk=ours.pk).exists()
    page = world.operator.get(url(Tenant, "change", ours.pk)).content.decode()
    assert "operator-a" in page  # the tenant's operators are listed on its page


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (IntegrationAuthentication, "tenant"),
        (Device, "tenant"),
        (PartnerProfile, "tenant"),
    ],
)
def test_foreign_key_choices_offer_only_my_tenants_rows(
    world: World, model: type[Model], field: str
) -> None:
    form = world.operator.get(url(model, "add")).context["adminform"].form

    assert list(form.fields[field].queryset) == [world.ours.tenant]


def test_an_operator_cannot_move_a_device_to_tenant_b(world: World) -> None:
    device = world.ours.rows[Device]
    response = world.operator.post(
        url(Device, "change", device.pk),
        {"tenant": world.theirs.tenant.pk, "integration": "POND", "iccid": device.iccid},  # type: ignore[attr-defined]
    )

    assert response.context["adminform"].form.errors["tenant"] == [REFUSED_CHOICE]
    assert Device.objects.get(pk=device.pk).tenant == world.ours.tenant


def test_the_tenant_filter_lists_only_my_tenants(world: World) -> None:
    third = Tenant.objects.create(name="Cormorant Metering")
    OperatorMembership.objects.create(user=world.operator_user, tenant=third)

    html = world.operator.get(url(BulkChange, "changelist")).content.decode()

    assert f"?tenant__id__exact={world.ours.tenant.pk}" in html
    assert f"?tenant__id__exact={third.pk}" in html
    assert f"?tenant__id__exact={world.theirs.tenant.pk}" not in html
    filtered = world.operator.get(
        url(BulkChange, "changelist"), {"tenant__id__exact": world.theirs.tenant.pk}
    )
    assert not list(filtered.context["cl"].result_list)


def test_a_superuser_grants_tenants_on_the_users_page(world: World, admin_client: Client) -> None:
    user = staff_user("newcomer")
    page = admin_client.get(url(User, "change", user.pk))
    form = page.context["adminform"].form
    data: dict[str, Any] = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name in form.fields
    }
    data.update(
        {
            "username": user.username,
            "is_active": "on",
            "is_staff": "on",
            "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
            "user_permissions": [],
            "groups": [],
            "operator_memberships-TOTAL_FORMS": "1",
            "operator_memberships-INITIAL_FORMS": "0",
            "operator_memberships-0-tenant": world.theirs.tenant.pk,
        }
    )
    data.pop("last_login", None)
    data.pop("password", None)

    response = admin_client.post(url(User, "change", user.pk), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert list(user.operator_memberships.values_list("tenant", flat=True)) == [
        world.theirs.tenant.pk
    ]
    assert (
        "newcomer"
        in admin_client.get(url(Tenant, "change", world.theirs.tenant.pk)).content.decode()
    )


def test_an_operator_cannot_raise_their_tenants_approval_threshold(world: World) -> None:
    """Raising it would switch the four-eyes gate off for the operator's own bulk changes:
    only a superuser changes it."""
    tenant = world.ours.tenant
    url = reverse("admin:bulkchanges_tenant_change", args=[tenant.pk])
    page = world.operator.get(url).content.decode()
    assert 'name="approval_threshold"' not in page and "approval threshold" in page.lower()

    world.operator.post(url, {"name": tenant.name, "approval_threshold": "1000000"})
    tenant.refresh_from_db()
    assert tenant.approval_threshold == 1000

    boss = User.objects.create_superuser("boss", "boss@example.com", "pw")
    superuser_page = login(boss).get(url).content.decode()
    assert 'name="approval_threshold"' in superuser_page
