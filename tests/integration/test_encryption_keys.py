"""Key rotation and the migration that encrypted the secrets (docs/security/secrets.md):
``rotate_encryption_keys`` moves every secret under the first key so the old one can go, and
carriers, callbacks and webhooks keep working on the new key alone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import CommandError, call_command
from django.db import connection, models
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from bulkchanges.encryption import encrypted_field_names, stored_batches
from bulkchanges.models import BulkChange, CarrierCallback, IntegrationAuthentication, Tenant
from bulkchanges.services import encryption_keys
from bulkchanges.services.demo import demo_seed
from integrations.rev import RevClient
from integrations.simulators import SimulatorServer
from integrations.simulators.control import SimulatorControl
from tests.conftest import PondWorld, Queue, create_bulk_change, drain, iccids, seed_sims
from tests.integration.test_demo import INVENTORY_STATUS, carrier_status
from tests.security.test_secrets import stored

pytestmark = pytest.mark.django_db(transaction=True)

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
MODELS: tuple[type[models.Model], ...] = (Tenant, IntegrationAuthentication)


@dataclass
class World:
    pond: PondWorld  # POND and Rev.io credentials against the simulators
    teal: IntegrationAuthentication  # a carrier that authenticates callbacks by URL token


@pytest.fixture
def world(settings: Any, request: pytest.FixtureRequest) -> World:
    """Every secret encrypted under key A alone."""
    settings.DJANGO_FERNETIX_KEYS = [KEY_A]
    pond_world: PondWorld = request.getfixturevalue("pond_world")
    teal = IntegrationAuthentication.objects.create(
        tenant=pond_world.tenant,
        integration="TEAL",
        base_url="https://teal.example",
        account="teal",
        username="key",
        secret="teal-api-secret",
        rate_limit=0,
    )
    return World(pond_world, teal)


def secrets() -> dict[tuple[str, Any, str], str]:
    """Every secret as the application reads it, by (model, pk, field)."""
    return {
        (model._meta.label, row.pk, name): getattr(row, name)
        for model in MODELS
        for row in model._default_manager.order_by("pk")
        for name in encrypted_field_names(model)
    }


def tokens() -> list[str]:
    """Every stored token, as the database holds it."""
    return [
        text
        for model in MODELS
        for name in encrypted_field_names(model)
        for batch in stored_batches(model, name)
        for _, text in batch
        if text is not None
    ]


def opens(key: str, token: str) -> bool:
    try:
        Fernet(key).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def rotate(*args: str) -> list[str]:
    out = StringIO()
    call_command("rotate_encryption_keys", *args, stdout=out)
    return out.getvalue().splitlines()


def report(counts: dict[str, tuple[int, int]], verb: str = "re-encrypted") -> list[str]:
    return [
        f"bulkchanges.{label}: {changed} {verb}, {current} already under the first key"
        for label, (changed, current) in counts.items()
    ]


ALL_UNDER_A = {  # one tenant; POND, Rev.io and Teal credentials
    "Tenant.webhook_secret": (1, 0),
    "IntegrationAuthentication.secret": (3, 0),
    "IntegrationAuthentication.secret_2": (3, 0),
    "IntegrationAuthentication.callback_password": (3, 0),
    "IntegrationAuthentication.callback_token": (3, 0),
}


def test_after_rotating_from_key_a_to_b_every_carrier_works_on_key_b_alone(
    world: World, settings: Any, sqs_queue: Queue, inline_workers: None
) -> None:
    before = secrets()
    assert all(opens(KEY_A, token) for token in tokens())

    settings.DJANGO_FERNETIX_KEYS = [KEY_B, KEY_A]  # 1. the new key first, deployed
    assert rotate() == report(ALL_UNDER_A)  # 2. rotate
    settings.DJANGO_FERNETIX_KEYS = [KEY_B]  # 3. the old key removed

    assert secrets() == before
    assert all(opens(KEY_B, token) and not opens(KEY_A, token) for token in tokens())
    # POND (x-api-key) and Rev.io (password and subscription key) against the simulators:
    numbers = iccids(2)
    seed_sims(world.pond, numbers)
    bulk_change = drain(create_bulk_change(world.pond, numbers))
    assert bulk_change.status == BulkChange.Status.PROCESSED
    # Teal's callback authenticates with the token decrypted under key B:
    teal = IntegrationAuthentication.objects.get(pk=world.teal.pk)
    url = f"/carriers/teal/callbacks/{teal.pk}/"
    assert Client().get(url, {"token": teal.callback_token, "requestId": "r-1"}).status_code == 200
    assert CarrierCallback.objects.get().request_id == "r-1"
    assert Client().get(url, {"token": "a-guess", "requestId": "r-2"}).status_code == 401


def test_after_rotating_every_demo_carrier_and_rev_io_accept_the_secrets_on_the_new_key(
    simulator: SimulatorControl,
    simulator_server: SimulatorServer,
    device_statuses: None,
    settings: Any,
) -> None:
    """All five carriers and Rev.io, as the demo configures them against the simulators, read
    a device with the secrets decrypted under key B alone."""
    settings.DJANGO_FERNETIX_KEYS = [KEY_A]
    settings.CARRIER_CALLBACK_BASE_URL = "http://127.0.0.1:8000"
    data = demo_seed(
        simulator=simulator, simulator_url=simulator_server.url, admin_password="rotate-pass"
    )

    settings.DJANGO_FERNETIX_KEYS = [KEY_B, KEY_A]
    rotate()
    settings.DJANGO_FERNETIX_KEYS = [KEY_B]

    assert all(opens(KEY_B, token) and not opens(KEY_A, token) for token in tokens())
    for integration, devices in data.devices.items():
        credentials = IntegrationAuthentication.objects.get(pk=data.credentials[integration].pk)
        status = carrier_status(credentials.as_credentials(), integration, devices[0])
        assert status.upper() == INVENTORY_STATUS[integration].upper(), integration
    rev = IntegrationAuthentication.objects.get(pk=data.rev.pk).as_credentials()
    pond_sim = data.devices["POND"][0]
    assert RevClient(credentials=rev).find_service(number=pond_sim.iccid, customer_id=42) is None


def test_rotating_again_re_encrypts_nothing(world: World, settings: Any) -> None:
    settings.DJANGO_FERNETIX_KEYS = [KEY_B, KEY_A]
    rotate()
    rotated = tokens()

    assert rotate() == report({label: (0, n) for label, (n, _) in ALL_UNDER_A.items()})
    assert tokens() == rotated


def test_a_dry_run_counts_and_writes_nothing(world: World, settings: Any) -> None:
    settings.DJANGO_FERNETIX_KEYS = [KEY_B, KEY_A]
    untouched = tokens()

    assert rotate("--dry-run") == [
        *report(ALL_UNDER_A, verb="to re-encrypt"),
        "Dry run: nothing was written.",
    ]
    assert tokens() == untouched


def test_a_value_no_key_opens_is_named_by_id_and_left_alone(world: World, settings: Any) -> None:
    settings.DJANGO_FERNETIX_KEYS = [KEY_B]  # key A removed before rotating: too early
    untouched = tokens()

    with pytest.raises(CommandError) as refused:
        rotate()

    message = str(refused.value)
    assert message.startswith(
        "no key in PONDOPS_FERNET_KEYS opens these values, left as they are: "
        f"bulkchanges.Tenant.webhook_secret (ids {world.pond.tenant.pk}); "
        "bulkchanges.IntegrationAuthentication.secret (ids "
    )
    assert message.endswith("Do not remove a key until every value opens under the first one.")
    assert tokens() == untouched


def test_a_secret_saved_during_the_rotation_is_not_overwritten_with_its_old_value(
    world: World, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.DJANGO_FERNETIX_KEYS = [KEY_B, KEY_A]
    pond = world.pond.pond

    def batches_raced(
        model: type[models.Model], name: str, *, batch_size: int
    ) -> Iterator[list[tuple[Any, str | None]]]:
        for batch in stored_batches(model, name, batch_size=batch_size):
            if model is IntegrationAuthentication and name == "secret":  # an operator saves
                IntegrationAuthentication.objects.filter(pk=pond.pk).update(secret="new-api-key")
            yield batch

    monkeypatch.setattr(encryption_keys, "stored_batches", batches_raced)

    lines = rotate()

    assert IntegrationAuthentication.objects.get(pk=pond.pk).secret == "new-api-key"
    assert (
        "bulkchanges.IntegrationAuthentication.secret: 2 re-encrypted, 0 already under the first "
        "key, 1 changed meanwhile (run again)"
    ) in lines


# -- migration 0011 ---------------------------------------------------------------------------

PLAINTEXT = {
    "secret": "legacy-pond-api-key",
    "secret_2": "legacy-second-secret",
    "callback_password": "legacy-callback-password-0123456789abcdefghi",
    "callback_token": "legacy-callback-token-0123456789abcdefghijkl",
}
WEBHOOK_PLAINTEXT = "legacy-webhook-secret-0123456789abcdefghijklm"
ENCRYPTS = ("bulkchanges", "0011_encrypt_secrets")


def migrate(*targets: tuple[str, str]) -> Any:
    """Migrate to ``targets`` (the leaves when none) and return the state's apps."""
    executor = MigrationExecutor(connection)
    plan = list(targets) or executor.loader.graph.leaf_nodes()
    executor.migrate(plan)
    return MigrationExecutor(connection).loader.project_state(plan).apps


def raw_secrets(tenant_pk: int, credentials_pk: int) -> dict[str, str]:
    raw = {name: stored(IntegrationAuthentication, name, credentials_pk) for name in PLAINTEXT}
    return {**raw, "webhook_secret": stored(Tenant, "webhook_secret", tenant_pk)}


PLAIN = {**PLAINTEXT, "webhook_secret": WEBHOOK_PLAINTEXT}


def test_migration_0011_reversed_decrypts_and_applied_encrypts_existing_plaintext(
    settings: Any,
) -> None:
    settings.DJANGO_FERNETIX_KEYS = [KEY_A]
    loader = MigrationExecutor(connection).loader
    before = [d for d in loader.get_migration(*ENCRYPTS).dependencies if d[0] == "bulkchanges"]
    # Rows made before the tables are rebuilt keep SQLite's id sequences counting: ids of
    # earlier tests are never handed out again (per-process caches are keyed by them).
    tenant = Tenant.objects.create(name="Current Co", webhook_secret=WEBHOOK_PLAINTEXT)
    current = IntegrationAuthentication.objects.create(
        tenant=tenant, integration="POND", base_url="https://pond.example", **PLAINTEXT
    )
    try:
        old = migrate(*before)

        assert raw_secrets(tenant.pk, current.pk) == PLAIN  # decrypted back
        legacy_tenant = old.get_model("bulkchanges", "Tenant").objects.create(
            name="Legacy Co", webhook_secret=WEBHOOK_PLAINTEXT
        )
        legacy = old.get_model("bulkchanges", "IntegrationAuthentication").objects.create(
            tenant=legacy_tenant, integration="POND", base_url="https://pond.example", **PLAINTEXT
        )

        migrate(ENCRYPTS)

        for raw in (raw_secrets(tenant.pk, current.pk), raw_secrets(legacy_tenant.pk, legacy.pk)):
            assert not any(PLAIN[name] in raw[name] for name in raw)
            assert {name: Fernet(KEY_A).decrypt(raw[name].encode()).decode() for name in raw} == (
                PLAIN
            )
    finally:
        migrate()
    assert IntegrationAuthentication.objects.get(pk=legacy.pk).secret == PLAINTEXT["secret"]
