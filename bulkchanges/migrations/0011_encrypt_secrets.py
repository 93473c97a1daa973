"""Carrier, webhook and callback secrets encrypted at rest (issue 13, finding 3).

The five columns become text (room for any Fernet token), then every plaintext value is
encrypted under the first key of PONDOPS_FERNET_KEYS. Reversed, the values are decrypted back
before the columns shrink again (which needs the keys that encrypted them).
"""

import bulkchanges.encryption
import bulkchanges.models
from django.db import migrations

SECRETS = {
    "tenant": ["webhook_secret"],
    "integrationauthentication": ["secret", "secret_2", "callback_password", "callback_token"],
}


def encrypt_plaintext(apps, schema_editor):
    for model_name, names in SECRETS.items():
        model = apps.get_model("bulkchanges", model_name)
        bulkchanges.encryption.plaintext_encrypt(model, names)


def decrypt_to_plaintext(apps, schema_editor):
    for model_name, names in SECRETS.items():
        model = apps.get_model("bulkchanges", model_name)
        bulkchanges.encryption.ciphertext_decrypt(model, names)
    if schema_editor.connection.vendor == "postgresql":
        # The columns shrink next, in this transaction; PostgreSQL refuses to ALTER a table
        # while the updates above leave deferred constraint checks pending.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):

    dependencies = [
        ('bulkchanges', '0010_operator_memberships'),
    ]

    operations = [
        migrations.AlterField(
            model_name='integrationauthentication',
            name='callback_password',
            field=bulkchanges.encryption.EncryptedSecretField(default=bulkchanges.models.callback_secret_generate, editable=False, max_length=100),
        ),
        migrations.AlterField(
            model_name='integrationauthentication',
            name='callback_token',
            field=bulkchanges.encryption.EncryptedSecretField(default=bulkchanges.models.callback_secret_generate, editable=False, max_length=100),
        ),
        migrations.AlterField(
            model_name='integrationauthentication',
            name='secret',
            field=bulkchanges.encryption.EncryptedSecretField(blank=True, default='', max_length=500),
        ),
        migrations.AlterField(
            model_name='integrationauthentication',
            name='secret_2',
            field=bulkchanges.encryption.EncryptedSecretField(blank=True, default='', max_length=500),
        ),
        migrations.AlterField(
            model_name='tenant',
            name='webhook_secret',
            field=bulkchanges.encryption.EncryptedSecretField(default=bulkchanges.models.webhook_secret_generate, editable=False, max_length=100),
        ),
        migrations.RunPython(encrypt_plaintext, decrypt_to_plaintext),
    ]
