"""``manage.py create_partner_token``: issues a hashed API key bound to one tenant with a role,
printed once as the last token; ``--list`` shows prefixes only; ``--revoke PREFIX``."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.utils import timezone

from bulkchanges.models import PartnerApiKey, PartnerProfile, Tenant
from tests.api.conftest import API, key_client

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("create_partner_token", *args, stdout=out)
    return out.getvalue()


def test_creates_user_profile_and_key_and_prints_the_key_once_last(db: None) -> None:
    tenant = Tenant.objects.create(name="Acme IoT")

    output = run("--username", "acme-bot", "--tenant", "Acme IoT", "--create-user")

    key = output.split()[-1]
    api_key = PartnerApiKey.objects.get()
    assert key.startswith(f"{api_key.prefix}.") and key not in api_key.hashed_key
    assert "shown only once" in output
    assert api_key.user.username == "acme-bot" and not api_key.user.has_usable_password()
    assert api_key.tenant == tenant and api_key.role == "submit" and api_key.expiry_date is None
    assert api_key.created_by == "command:create_partner_token"
    assert PartnerProfile.objects.get(user=api_key.user).tenant == tenant
    assert key_client(key).get(f"{API}/bulk-changes/").status_code == 200


def test_role_name_and_expiry_are_set_from_the_flags(db: None) -> None:
    Tenant.objects.create(name="Acme IoT")

    output = run(
        *("--username", "reader", "--tenant", "Acme IoT", "--create-user"),
        *("--role", "read", "--name", "dashboards", "--expires-in-days", "30"),
    )

    api_key = PartnerApiKey.objects.get()
    assert (api_key.role, api_key.name) == ("read", "dashboards")
    assert api_key.expiry_date is not None
    assert abs(api_key.expiry_date - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert (
        f"role read, prefix {api_key.prefix}, expires {api_key.expiry_date.isoformat()}" in output
    )


def test_running_again_issues_another_key_and_rotate_revokes_the_others(db: None) -> None:
    Tenant.objects.create(name="Acme IoT")
    first = run("--username", "bot", "--tenant", "Acme IoT", "--create-user").split()[-1]
    again = run("--username", "bot", "--tenant", "Acme IoT").split()[-1]
    rotated = run("--username", "bot", "--tenant", "Acme IoT", "--rotate").split()[-1]

    assert len({first, again, rotated}) == 3
    assert key_client(first).get(f"{API}/bulk-changes/").status_code == 401
    assert key_client(again).get(f"{API}/bulk-changes/").status_code == 401
    assert key_client(rotated).get(f"{API}/bulk-changes/").status_code == 200


def test_list_shows_prefixes_and_never_a_key(db: None) -> None:
    Tenant.objects.create(name="Acme IoT")
    Tenant.objects.create(name="Globex")
    acme = run("--username", "a", "--tenant", "Acme IoT", "--create-user").split()[-1]
    globex = run("--username", "g", "--tenant", "Globex", "--create-user", "--role", "read")
    globex_key = globex.split()[-1]

    listing = run("--list")
    only_globex = run("--list", "--tenant", "Globex")

    acme_prefix, globex_prefix = acme.split(".")[0], globex_key.split(".")[0]
    assert acme_prefix in listing and globex_prefix in listing
    assert acme not in listing and globex_key not in listing
    assert acme.split(".")[1] not in listing and globex_key.split(".")[1] not in listing
    assert "tenant=Acme IoT" in listing and "last_used=never" in listing
    assert acme_prefix not in only_globex and "active   read" in only_globex


def test_revoke_by_prefix(db: None) -> None:
    Tenant.objects.create(name="Acme IoT")
    key = run("--username", "bot", "--tenant", "Acme IoT", "--create-user").split()[-1]
    prefix = key.split(".")[0]

    output = run("--revoke", prefix)

    assert output.startswith(f"revoked {prefix} ")
    assert PartnerApiKey.objects.get().revoked
    assert key_client(key).get(f"{API}/bulk-changes/").json()["detail"] == "API key revoked"
    assert f"{prefix}  revoked" in run("--list")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--username", "ghost", "--tenant", "Acme IoT"], "does not exist (use --create-user"),
        (["--username", "bot", "--tenant", "Nowhere", "--create-user"], "tenant 'Nowhere'"),
        (
            ["--username", "globex-bot", "--tenant", "Acme IoT"],
            "already belongs to tenant 'Globex'",
        ),
        (["--tenant", "Acme IoT"], "--username and --tenant are required to issue a key"),
        (
            [
                "--username",
                "bot",
                "--tenant",
                "Acme IoT",
                "--create-user",
                "--expires-in-days",
                "0",
            ],
            "--expires-in-days must be at least 1",
        ),
        (
            ["--username", "bot", "--tenant", "Acme IoT", "--create-user", "--name", "x" * 51],
            "the name is longer than 50 characters",
        ),
        (["--revoke", "nosuchpf"], "no API key has the prefix 'nosuchpf'"),
    ],
)
def test_bad_input_is_a_one_line_error(db: None, args: list[str], message: str) -> None:
    Tenant.objects.create(name="Acme IoT")
    globex = Tenant.objects.create(name="Globex")
    user = get_user_model().objects.create_user(username="globex-bot")
    PartnerProfile.objects.create(user=user, tenant=globex)

    with pytest.raises(CommandError) as error:
        run(*args)
    assert message in str(error.value)
    assert not PartnerApiKey.objects.exists()
