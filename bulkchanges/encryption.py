"""Secrets at rest: the model field that keeps them encrypted, and raw access to what is stored
(docs/security/secrets.md).

:class:`EncryptedSecretField` is django-fernetix's ``FernetTextField``: the value is a Fernet
token in a ``text`` column, encrypted under the first of ``settings.DJANGO_FERNETIX_KEYS`` (from
``PONDOPS_FERNET_KEYS``) and decrypted by any of them. Tokens are random, so the column cannot be
searched: every lookup but ``isnull`` is a ``FieldError`` (nothing in PondOps queries by a
secret). A value no key opens raises :class:`DecryptionError` naming the field and the variable —
never a token passed off as the secret.

The raw helpers read and write the stored text itself, bypassing the field. Migration 0011 uses
them on historical models (to encrypt plaintext rows, and back) and
``manage.py rotate_encryption_keys`` to re-encrypt without decrypting into the ORM; they take
any model class and field name and rely on nothing but the columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.db import models
from django.db.models.functions import Cast
from django_fernetix import DecryptionError
from django_fernetix.cipher import get_cipher
from django_fernetix.fields import FernetField, FernetTextField

__all__ = [
    "DecryptionError",
    "EncryptedSecretField",
    "cipher",
    "ciphertext_decrypt",
    "encrypted_field_names",
    "encrypted_models",
    "encrypting_key",
    "opens",
    "plaintext_encrypt",
    "stored_batches",
    "stored_write",
]

STORED = "pondops_stored_text"  # the annotation holding a column's stored text


def _refusal(field: Any) -> str:
    return (
        f"cannot decrypt {field.model._meta.label}.{field.name}: no key in PONDOPS_FERNET_KEYS "
        "opens the stored value (a key removed before rotate_encryption_keys re-encrypted "
        "under the new one, or keys that belong to another database)"
    )


if TYPE_CHECKING:  # django-fernetix is untyped; to django-stubs a secret is a text field's str
    _SecretFieldBase = models.TextField
else:
    _SecretFieldBase = FernetTextField


class EncryptedSecretField(_SecretFieldBase):
    """A secret encrypted at rest; ``max_length`` bounds the plain value (the column is text,
    sized for any token)."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        try:
            return cast(Any, super()).from_db_value(value, expression, connection)
        except DecryptionError:
            raise DecryptionError(_refusal(self)) from None


def cipher() -> MultiFernet:
    """All configured keys: the first encrypts, any decrypts (read from settings per call)."""
    return get_cipher()


def encrypting_key() -> Fernet:
    """The first key, the one that encrypts: a token it opens needs no re-encryption."""
    from django.conf import settings

    return Fernet(settings.DJANGO_FERNETIX_KEYS[0])


def opens(fernet: Fernet | MultiFernet, stored: str) -> bool:
    """Whether ``stored`` is a token ``fernet`` decrypts."""
    try:
        fernet.decrypt(stored.encode())
    except (InvalidToken, UnicodeEncodeError):
        return False
    return True


def encrypted_field_names(model: type[models.Model]) -> list[str]:
    return [f.name for f in model._meta.concrete_fields if isinstance(f, FernetField)]


def encrypted_models() -> list[type[models.Model]]:
    """Every installed model with an encrypted field (proxies excluded), in app order."""
    return [m for m in apps.get_models() if not m._meta.proxy and encrypted_field_names(m)]


def stored_batches(
    model: type[models.Model], name: str, *, batch_size: int = 500
) -> Iterator[list[tuple[Any, str | None]]]:
    """``(pk, stored text)`` of every row, as stored (nothing decrypted), in primary-key order,
    ``batch_size`` rows a query so that writes may go on between batches."""
    rows = model._base_manager.annotate(**{STORED: Cast(name, models.TextField())}).order_by("pk")
    last = None
    while True:
        page = rows if last is None else rows.filter(pk__gt=last)
        batch = list(page.values_list("pk", STORED)[:batch_size])
        if not batch:
            return
        yield batch
        last = batch[-1][0]


def stored_write(
    model: type[models.Model], *, pk: Any, name: str, stored: str, expected: str | None = None
) -> bool:
    """Store ``stored`` as the column's text (no encryption added), only while it still holds
    ``expected`` when that is given (compare-and-set); whether the row was written. The base
    manager: no ``updated_at`` moves, nothing but this column changes."""
    rows = model._base_manager.filter(pk=pk)
    if expected is not None:
        rows = rows.annotate(**{STORED: Cast(name, models.TextField())}).filter(
            **{STORED: expected}
        )
    return rows.update(**{name: models.Value(stored, output_field=models.TextField())}) == 1


def plaintext_encrypt(model: type[models.Model], names: list[str]) -> int:
    """Encrypt, under the first key, every value still stored in plaintext (migration 0011);
    a value that already is a token under our keys is left as it is. Returns values encrypted."""
    fernet = cipher()
    encrypted = 0
    for name in names:
        for batch in stored_batches(model, name):
            for pk, stored in batch:
                if stored is None or opens(fernet, stored):
                    continue
                token = fernet.encrypt(stored.encode()).decode()
                encrypted += stored_write(model, pk=pk, name=name, stored=token)
    return encrypted


def ciphertext_decrypt(model: type[models.Model], names: list[str]) -> int:
    """Store every value decrypted again (migration 0011 reversed); a value no key opens is a
    DecryptionError, so nothing is left half-reverted (the migration's transaction rolls back).
    Returns values decrypted."""
    fernet = cipher()
    decrypted = 0
    for name in names:
        for batch in stored_batches(model, name):
            for pk, stored in batch:
                if stored is None:
                    continue
                try:
                    plain = fernet.decrypt(stored.encode()).decode()
                except InvalidToken:
                    raise DecryptionError(_refusal(model._meta.get_field(name))) from None
                decrypted += stored_write(model, pk=pk, name=name, stored=plain)
    return decrypted
