"""Migration 0012 turns each DRF token (``authtoken_token``, plaintext) into a hashed
PartnerApiKey with the same secret, so a partner changes only the header word; staff tokens
with no tenant are not converted, and no plaintext row is left."""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import connection

from bulkchanges.models import PartnerApiKey
from tests.api.conftest import API, Partner, key_client

pytestmark = pytest.mark.django_db

MIGRATION = importlib.import_module("bulkchanges.migrations.0012_partner_api_keys")
PARTNER_TOKEN = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"
STAFF_TOKEN = "1f2e3d4c5b6a79880796a5b4c3d2e1f001234567"


def legacy_tokens(*rows: tuple[str, int]) -> None:
    """The table DRF's authtoken app left behind, with plaintext rows."""
    with connection.cursor() as cursor:
        cursor.execute(
            'CREATE TABLE authtoken_token ("key" varchar(40) PRIMARY KEY, '
            "created timestamp NULL, user_id integer NOT NULL)"
        )
        for key, user_id in rows:
            cursor.execute(
                'INSERT INTO authtoken_token ("key", user_id) VALUES (%s, %s)', [key, user_id]
            )


def convert() -> None:
    editor: Any = SimpleNamespace(connection=connection, quote_name=connection.ops.quote_name)
    MIGRATION.convert_drf_tokens(apps, editor)


def test_a_partners_old_token_keeps_working_as_an_api_key(partner: Partner) -> None:
    PartnerApiKey.objects.all().delete()
    user = get_user_model().objects.get(username="acme-api")
    staff = get_user_model().objects.create_user(username="ops", is_staff=True)
    legacy_tokens((PARTNER_TOKEN, user.pk), (STAFF_TOKEN, staff.pk))

    convert()

    converted = PartnerApiKey.objects.get()
    assert (converted.user, converted.tenant, converted.role) == (user, partner.tenant, "submit")
    assert converted.prefix == PARTNER_TOKEN[:8] and PARTNER_TOKEN not in converted.hashed_key
    assert key_client(PARTNER_TOKEN).get(f"{API}/bulk-changes/").status_code == 200
    assert key_client(STAFF_TOKEN).get(f"{API}/bulk-changes/").status_code == 401
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM authtoken_token")
        assert cursor.fetchone() == (0,)


def test_without_the_old_table_there_is_nothing_to_convert(partner: Partner) -> None:
    convert()
    assert PartnerApiKey.objects.count() == 1
