"""Re-encrypting every secret under the first key of ``PONDOPS_FERNET_KEYS``
(``manage.py rotate_encryption_keys``; the procedure is docs/security/secrets.md).

Rows are read and written as stored tokens, in primary-key batches, one transaction a batch;
each write is a compare-and-set on the token read, so a secret changed meanwhile (a new API key
saved in the admin) is never overwritten with its old value. Idempotent: a token the first key
already opens is left alone, so a second run re-encrypts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.fernet import InvalidToken
from django.db import transaction

from bulkchanges.encryption import (
    cipher,
    encrypted_field_names,
    encrypted_models,
    encrypting_key,
    opens,
    stored_batches,
    stored_write,
)


@dataclass
class FieldRotation:
    """What a rotation did (or, dry, would do) to one encrypted column."""

    label: str  # "bulkchanges.Tenant.webhook_secret"
    reencrypted: int = 0
    current: int = 0  # already under the first key
    changed_meanwhile: int = 0  # rewritten by someone else between our read and write
    undecryptable: list[object] = field(default_factory=list)  # primary keys no key opens


def encryption_keys_rotate(*, dry_run: bool = False, batch_size: int = 500) -> list[FieldRotation]:
    """Re-encrypt, under the first configured key, every encrypted value another key holds.
    With ``dry_run`` nothing is written; the counts say what would be. Values no configured
    key opens are listed by primary key (never by value) and left as they are."""
    every_key, first_key = cipher(), encrypting_key()
    rotations: list[FieldRotation] = []
    for model in encrypted_models():
        for name in encrypted_field_names(model):
            rotation = FieldRotation(f"{model._meta.label}.{name}")
            rotations.append(rotation)
            for batch in stored_batches(model, name, batch_size=batch_size):
                with transaction.atomic():
                    for pk, stored in batch:
                        if stored is None:
                            continue
                        if opens(first_key, stored):
                            rotation.current += 1
                            continue
                        try:
                            token = every_key.rotate(stored.encode()).decode()
                        except InvalidToken:
                            rotation.undecryptable.append(pk)
                            continue
                        if dry_run or stored_write(
                            model, pk=pk, name=name, stored=token, expected=stored
                        ):
                            rotation.reencrypted += 1
                        else:
                            rotation.changed_meanwhile += 1
    return rotations
