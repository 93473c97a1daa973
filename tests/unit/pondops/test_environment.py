"""Settings from the environment (pondops/environment.py): a bad value stops the start with an
error naming the variable, an empty value is the default, ``<NAME>_FILE`` reads a value from a
file, and production refuses to start without its shared services. Settings are read at
import, so each case starts a fresh interpreter, as every process and command does."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.fixtures.fresh_settings import django_setup_fresh

PRODUCTION_SECRET_KEY = "a-production-secret-key-" + "x" * 40


def start(tmp_path: Path, *, print_setting: str = "", **environment: str) -> tuple[int, str]:
    """Django set up as every process starts; prints ``settings.<print_setting>`` when given."""
    code = f"from django.conf import settings; print(repr(settings.{print_setting}))"
    result = django_setup_fresh(
        {"PONDOPS_VAR_DIR": str(tmp_path), **environment},
        code=code if print_setting else "pass",
    )
    return result.returncode, (result.stdout + result.stderr).strip()


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("BULKCHANGE_CHUNK_SIZE", "fifty", "Not a valid integer."),
        ("BULKCHANGE_CHUNK_SIZE", "0", "must be at least 1"),
        ("BULKCHANGE_HTTP_READ_TIMEOUT", "-3", "must be greater than 0"),
        ("BULKCHANGE_WAITING_SCHEDULE_MINUTES", "1,2,soon", "Not a valid number."),
        ("DJANGO_DEBUG", "maybe", "Not a valid boolean."),
        ("PONDOPS_API_THROTTLE_RATE", "60/fortnight", "must be requests per period"),
        ("PONDOPS_LOG_LEVEL", "LOUD", "must be one of CRITICAL, ERROR, WARNING, INFO, DEBUG"),
        ("PONDOPS_Q_WORKERS", "2.5", "Not a valid integer."),
    ],
)
def test_a_bad_value_stops_the_start_naming_the_variable(
    tmp_path: Path, variable: str, value: str, reason: str
) -> None:
    returncode, output = start(tmp_path, **{variable: value})
    assert returncode != 0
    last_line = output.splitlines()[-1]
    assert last_line.startswith("environs.exceptions.EnvValidationError: ")
    assert f'Environment variable "{variable}" invalid' in last_line
    assert reason in last_line


def test_an_empty_value_is_the_default(tmp_path: Path) -> None:
    """Environment files often list a variable left blank (``BULKCHANGE_CHUNK_SIZE=``)."""
    assert start(tmp_path, print_setting="BULKCHANGE_CHUNK_SIZE", BULKCHANGE_CHUNK_SIZE="") == (
        0,
        "50",
    )
    assert start(tmp_path, print_setting="DEBUG", DJANGO_DEBUG=" ") == (0, "False")


def test_lists_are_comma_separated_items_stripped_empty_items_dropped(tmp_path: Path) -> None:
    assert start(
        tmp_path,
        print_setting="CSRF_TRUSTED_ORIGINS",
        DJANGO_CSRF_TRUSTED_ORIGINS=" https://a.example ,,https://b.example, ",
    ) == (0, "['https://a.example', 'https://b.example']")
    assert start(
        tmp_path,
        print_setting="BULKCHANGE_WAITING_SCHEDULE_MINUTES",
        BULKCHANGE_WAITING_SCHEDULE_MINUTES="0.5, 3",
    ) == (0, "[0.5, 3.0]")


def test_a_secret_may_come_from_a_file(tmp_path: Path) -> None:
    """``<NAME>_FILE``: compose secrets and systemd's LoadCredential= put a secret in a file,
    not in the process environment."""
    secret_file = tmp_path / "secret_key"
    secret_file.write_text(PRODUCTION_SECRET_KEY + "\n")
    assert start(tmp_path, print_setting="SECRET_KEY", DJANGO_SECRET_KEY_FILE=str(secret_file)) == (
        0,
        repr(PRODUCTION_SECRET_KEY),
    )

    returncode, output = start(tmp_path, DJANGO_SECRET_KEY_FILE=str(tmp_path / "missing"))
    assert returncode != 0
    assert output.splitlines()[-1] == (
        "ValueError: The value of DJANGO_SECRET_KEY_FILE must be a readable file path."
    )


def production(**overrides: str) -> dict[str, str]:
    environment = {
        "PONDOPS_ENVIRONMENT": "production",
        "DJANGO_SECRET_KEY": PRODUCTION_SECRET_KEY,
        "PONDOPS_FERNET_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": "postgresql://pondops@127.0.0.1:5432/pondops",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    environment.update(overrides)
    return {key: value for key, value in environment.items() if value}


def test_production_starts_with_its_shared_services(tmp_path: Path) -> None:
    assert start(tmp_path, print_setting="PRODUCTION", **production()) == (0, "True")


@pytest.mark.parametrize(
    ("overrides", "refusal"),
    [
        (
            {"DATABASE_URL": ""},
            "DATABASE_URL must name a PostgreSQL database with PONDOPS_ENVIRONMENT='production'",
        ),
        (
            {"DATABASE_URL": "sqlite:////srv/pondops.sqlite3"},
            "DATABASE_URL must name a PostgreSQL database with PONDOPS_ENVIRONMENT='production'",
        ),
        ({"REDIS_URL": ""}, "REDIS_URL must be set with PONDOPS_ENVIRONMENT='production'"),
        ({"DJANGO_SECRET_KEY": ""}, "DJANGO_SECRET_KEY must be set"),
        ({"DJANGO_DEBUG": "true"}, "DJANGO_DEBUG must be off"),
        ({"PONDOPS_FERNET_KEYS": ""}, "PONDOPS_FERNET_KEYS is required"),
    ],
)
def test_production_refuses_to_start_without_what_it_needs(
    tmp_path: Path, overrides: dict[str, str], refusal: str
) -> None:
    returncode, output = start(tmp_path, **production(**overrides))
    assert returncode != 0
    assert output.splitlines()[-1].startswith(
        f"django.core.exceptions.ImproperlyConfigured: {refusal}"
    )


def test_another_deployed_name_may_run_on_one_machine(tmp_path: Path) -> None:
    """``staging`` gets the deployed security settings but not production's shared-services
    rule: a single-host staging box on SQLite starts."""
    environment = production(
        PONDOPS_ENVIRONMENT="staging", DATABASE_URL="sqlite:////tmp/x.sqlite3", REDIS_URL=""
    )
    assert start(tmp_path, print_setting="SECURE_SSL_REDIRECT", **environment) == (0, "True")
