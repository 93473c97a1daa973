"""The keys that encrypt secrets at rest, read once by ``pondops/settings.py`` from
``PONDOPS_FERNET_KEYS`` (docs/security/secrets.md).

``PONDOPS_FERNET_KEYS`` is a comma-separated list of Fernet keys (32 url-safe base64-encoded
bytes each, as ``Fernet.generate_key()`` makes them): the first encrypts, every one decrypts, so
a new key can be put first, deployed, and the old one removed after
``manage.py rotate_encryption_keys``. A malformed key stops the start with an error naming the
variable and the key's position, never the key. Outside ``PONDOPS_ENVIRONMENT=local`` the
variable is required, and the published local development key is refused.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

VARIABLE = "PONDOPS_FERNET_KEYS"
LOCAL_ENVIRONMENT = "local"
# NOT A SECRET: it is in the repository for anyone to read. It lets the demo and the tests run
# with no setup (PONDOPS_ENVIRONMENT=local, the default); any other environment refuses it.
LOCAL_DEVELOPMENT_FERNET_KEY = base64.urlsafe_b64encode(
    b"PondOps LOCAL DEVELOPMENT key!!!"
).decode()
GENERATE_HINT = (
    'generate one with: python -c "from cryptography.fernet import Fernet; '
    'print(Fernet.generate_key().decode())"'
)


def fernet_keys_parse(raw: str | None, *, environment: str) -> list[str]:
    """The keys ``raw`` (the variable's value, None when unset) lists, first the one that
    encrypts; ImproperlyConfigured naming the variable and the position of a bad key."""
    if raw is None or not raw.strip():
        if environment == LOCAL_ENVIRONMENT:
            return [LOCAL_DEVELOPMENT_FERNET_KEY]
        raise ImproperlyConfigured(
            f"{VARIABLE} is required when PONDOPS_ENVIRONMENT is {environment!r}: it holds the "
            f"keys that encrypt carrier, webhook and callback secrets; {GENERATE_HINT}"
        )
    entries = [entry.strip() for entry in raw.split(",")]
    for position, entry in enumerate(entries, start=1):
        where = f"{VARIABLE}: key {position} of {len(entries)}"
        if not entry:
            raise ImproperlyConfigured(f"{where} is empty (a stray comma?)")
        try:
            Fernet(entry)
        except ValueError:  # binascii.Error included; neither message holds the key
            raise ImproperlyConfigured(
                f"{where} is not a Fernet key (32 url-safe base64-encoded bytes); {GENERATE_HINT}"
            ) from None
        if environment != LOCAL_ENVIRONMENT and entry == LOCAL_DEVELOPMENT_FERNET_KEY:
            raise ImproperlyConfigured(
                f"{where} is the published local development key, which only "
                f"PONDOPS_ENVIRONMENT={LOCAL_ENVIRONMENT} may use; {GENERATE_HINT}"
            )
    return entries
