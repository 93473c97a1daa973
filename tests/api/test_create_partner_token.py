"""``manage.py create_partner_token``: a token bound to one tenant, printed as the last token."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from bulkchanges.models import PartnerProfile, Tenant
from tests.api.conftest import API, token_client

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("create_partner_token", *args, stdout=out)
    return out.getvalue()


def test_creates_user_profile_and_token_and_prints_the_token_last(db: None) -> None:
    tenant = Tenant.objects.create(name="Acme IoT")

    output = run("--username", "acme-bot", "--tenant", "Acme IoT", "--create-user")

    key = output.split()[-1]
    token = Token.objects.get(key=key)
    assert token.user.username == "acme-bot" and not token.user.has_usable_password()
    assert PartnerProfile.objects.get(user=token.user).tenant == tenant
    response = token_client(key).get(f"{API}/bulk-changes/")
    assert response.status_code == 200


def test_running_again_prints_the_same_token_and_rotate_replaces_it(db: None) -> None:
    Tenant.objects.create(name="Acme IoT")
    first = run("--username", "bot", "--tenant", "Acme IoT", "--create-user").split()[-1]
    again = run("--username", "bot", "--tenant", "Acme IoT").split()[-1]
    rotated = run("--username", "bot", "--tenant", "Acme IoT", "--rotate").split()[-1]

    assert first == again != rotated
    assert list(Token.objects.values_list("key", flat=True)) == [rotated]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--username", "ghost", "--tenant", "Acme IoT"], "does not exist (use --create-user"),
        (["--username", "bot", "--tenant", "Nowhere", "--create-user"], "tenant 'Nowhere'"),
        (
            ["--username", "globex-bot", "--tenant", "Acme IoT"],
            "already belongs to tenant 'Globex'",
        ),
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
    assert not Token.objects.exists()
