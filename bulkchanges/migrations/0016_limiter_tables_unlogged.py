"""The limiter's tables unlogged on PostgreSQL: their rows are leased, seconds-long state (a
rate schedule, who holds a concurrent-call slot), rewritten several times per carrier call. An
unlogged table writes no WAL, so a transaction that touches only these commits without waiting
for an fsync. After a crash PostgreSQL empties them, and they are not on replicas: the limiter
makes its rows again when they are missing (bulkchanges/ratelimit.py), and a slot lease lost
that way is at most a few concurrent calls too many for about one lease."""

from django.db import migrations

TABLES = ("bulkchanges_ratelimitbucket", "bulkchanges_concurrencyslot")


def _set(persistence: str):  # type: ignore[no-untyped-def]
    def run(apps, schema_editor):  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in TABLES:
            schema_editor.execute(
                f"ALTER TABLE {schema_editor.quote_name(table)} SET {persistence}"
            )

    return run


class Migration(migrations.Migration):
    dependencies = [("bulkchanges", "0015_console")]

    operations = [migrations.RunPython(_set("UNLOGGED"), _set("LOGGED"))]
