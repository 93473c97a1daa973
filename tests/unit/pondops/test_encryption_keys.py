"""PONDOPS_FERNET_KEYS as pondops/settings.py reads it (the refusals at start, in a subprocess,
are tests/security/test_secrets.py)."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from pondops.encryption_keys import LOCAL_DEVELOPMENT_FERNET_KEY, fernet_keys_parse

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


@pytest.mark.parametrize("unset", [None, "", "  "])
def test_local_without_keys_uses_the_labelled_local_development_key(unset: str | None) -> None:
    assert fernet_keys_parse(unset, environment="local") == [LOCAL_DEVELOPMENT_FERNET_KEY]
    assert Fernet(LOCAL_DEVELOPMENT_FERNET_KEY)  # a working key, not a placeholder


def test_the_local_development_key_says_what_it_is() -> None:
    from base64 import urlsafe_b64decode

    assert urlsafe_b64decode(LOCAL_DEVELOPMENT_FERNET_KEY) == b"PondOps LOCAL DEVELOPMENT key!!!"


def test_keys_are_listed_first_the_one_that_encrypts_spaces_ignored() -> None:
    assert fernet_keys_parse(f" {KEY_B} , {KEY_A}", environment="production") == [KEY_B, KEY_A]


@pytest.mark.parametrize("environment", ["production", "staging"])
def test_any_environment_but_local_requires_the_variable(environment: str) -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        fernet_keys_parse(None, environment=environment)
    assert str(refused.value).startswith(
        f"PONDOPS_FERNET_KEYS is required when PONDOPS_ENVIRONMENT is {environment!r}: it holds "
        "the keys that encrypt carrier, webhook and callback secrets; generate one with: "
    )


def test_a_stray_comma_is_refused_by_position() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"^PONDOPS_FERNET_KEYS: key 2 of 2 is empty"):
        fernet_keys_parse(f"{KEY_A},", environment="local")


def test_a_bad_key_is_refused_by_position_and_not_repeated() -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        fernet_keys_parse(f"{KEY_A},{KEY_B},hunter2", environment="local")
    message = str(refused.value)
    assert message.startswith(
        "PONDOPS_FERNET_KEYS: key 3 of 3 is not a Fernet key (32 url-safe base64-encoded bytes)"
    )
    assert "hunter2" not in message and refused.value.__suppress_context__


def test_local_may_list_the_local_development_key_explicitly() -> None:
    keys = f"{KEY_A},{LOCAL_DEVELOPMENT_FERNET_KEY}"
    assert fernet_keys_parse(keys, environment="local") == [KEY_A, LOCAL_DEVELOPMENT_FERNET_KEY]
