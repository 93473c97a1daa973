"""Issue 13, finding 3 (carrier, webhook and callback secrets), replayed: someone who reads the
database (a backup, a replica, a raw SQL console) finds no secret in plaintext; without the key
nothing opens; and a deployment cannot start without keys of its own.
(Partner API tokens, the other half of finding 3, are tested with the API keys.)"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import FieldError
from django.db import connection, models

from bulkchanges.encryption import DecryptionError
from bulkchanges.models import IntegrationAuthentication, Tenant
from tests.fixtures.fresh_settings import django_setup_fresh

ROOT = Path(__file__).resolve().parents[2]
KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()

SECRETS = {
    "secret": "pond-api-key-in-the-clear",
    "secret_2": "rev-subscription-key-in-the-clear",
    "callback_password": "thingspace-callback-password-0123456789abcdef",
    "callback_token": "teal-callback-token-0123456789abcdefghijklmno",
}
WEBHOOK_SECRET = "tenant-webhook-secret-0123456789abcdefghijklm"
FIVE_FIELDS = [
    *((IntegrationAuthentication, name, value) for name, value in SECRETS.items()),
    (Tenant, "webhook_secret", WEBHOOK_SECRET),
]


def stored(model: type[models.Model], name: str, pk: int) -> str:
    """The column's text as a raw SQL SELECT reads it: what a database reader sees."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote(name)} FROM {quote(model._meta.db_table)} WHERE id = %s",  # noqa: S608
            [pk],
        )
        [value] = cursor.fetchone()
    return str(value)


@pytest.fixture
def credentials(db: None, settings: Any) -> IntegrationAuthentication:
    settings.DJANGO_FERNETIX_KEYS = [KEY_A]
    tenant = Tenant.objects.create(name="Acme IoT", webhook_secret=WEBHOOK_SECRET)
    return IntegrationAuthentication.objects.create(
        tenant=tenant, integration="POND", base_url="https://pond.example", **SECRETS
    )


@pytest.mark.parametrize(
    ("model", "name", "plaintext"), FIVE_FIELDS, ids=[name for _, name, _ in FIVE_FIELDS]
)
def test_finding_3_the_raw_column_holds_a_token_not_the_secret(
    credentials: IntegrationAuthentication, model: type[models.Model], name: str, plaintext: str
) -> None:
    pk = credentials.tenant_id if model is Tenant else credentials.pk
    raw = stored(model, name, pk)

    assert plaintext not in raw
    assert Fernet(KEY_A).decrypt(raw.encode()).decode() == plaintext  # only the key opens it
    assert getattr(model._default_manager.get(pk=pk), name) == plaintext  # the app reads it


def test_finding_3_without_the_key_nothing_opens_and_the_refusal_says_why(
    credentials: IntegrationAuthentication, settings: Any
) -> None:
    settings.DJANGO_FERNETIX_KEYS = [KEY_B]

    with pytest.raises(DecryptionError) as refused:
        IntegrationAuthentication.objects.get(pk=credentials.pk)

    assert str(refused.value) == (
        "cannot decrypt bulkchanges.IntegrationAuthentication.secret: no key in "
        "PONDOPS_FERNET_KEYS opens the stored value (a key removed before "
        "rotate_encryption_keys re-encrypted under the new one, or keys that belong to "
        "another database)"
    )
    assert SECRETS["secret"] not in str(refused.value)


def test_finding_3_a_secret_cannot_be_searched_for(credentials: IntegrationAuthentication) -> None:
    with pytest.raises(FieldError, match="encrypted values cannot be queried"):
        IntegrationAuthentication.objects.filter(secret=SECRETS["secret"]).exists()


# -- the start refuses without keys of its own (settings are read at import: a subprocess) ----


def start(**environment: str) -> subprocess.CompletedProcess[str]:
    """Django set up in a fresh interpreter with a production-shaped environment."""
    return django_setup_fresh(
        {
            "PONDOPS_VAR_DIR": str(ROOT / "var"),
            "DJANGO_SECRET_KEY": "a-production-secret-key-" + "x" * 40,
            "DJANGO_ALLOWED_HOSTS": "pondops.example",
            "DATABASE_URL": "postgres://pondops@127.0.0.1:5432/pondops",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            **environment,
        }
    )


def test_finding_3_production_without_fernet_keys_refuses_to_start() -> None:
    result = start(PONDOPS_ENVIRONMENT="production")

    assert result.returncode != 0
    assert (
        "ImproperlyConfigured: PONDOPS_FERNET_KEYS is required when PONDOPS_ENVIRONMENT is "
        "'production'"
    ) in result.stderr


def test_finding_3_production_refuses_the_published_local_development_key() -> None:
    from pondops.encryption_keys import LOCAL_DEVELOPMENT_FERNET_KEY

    result = start(
        PONDOPS_ENVIRONMENT="production",
        PONDOPS_FERNET_KEYS=f"{KEY_A},{LOCAL_DEVELOPMENT_FERNET_KEY}",
    )

    assert result.returncode != 0
    assert (
        "PONDOPS_FERNET_KEYS: key 2 of 2 is the published local development key"
    ) in result.stderr


def test_finding_3_a_malformed_key_is_refused_by_position_without_printing_it() -> None:
    almost_a_key = KEY_B[:-4]
    result = start(PONDOPS_ENVIRONMENT="staging", PONDOPS_FERNET_KEYS=f"{KEY_A},{almost_a_key}")

    assert result.returncode != 0
    assert "PONDOPS_FERNET_KEYS: key 2 of 2 is not a Fernet key" in result.stderr
    assert almost_a_key not in result.stderr and KEY_A not in result.stderr


def test_production_with_its_own_keys_starts() -> None:
    result = start(PONDOPS_ENVIRONMENT="production", PONDOPS_FERNET_KEYS=f"{KEY_B},{KEY_A}")

    assert result.returncode == 0, result.stderr
