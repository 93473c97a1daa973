"""PostgreSQL sessions end when idle inside a transaction (docs/operations/scaling-out.md): a
host cut off mid-claim must not hold its row locks for the hours a server's TCP keepalive
takes to notice."""

from __future__ import annotations

from tests.fixtures.fresh_settings import django_setup_fresh

PRINT_OPTIONS = (
    "from django.conf import settings; print(settings.DATABASES['default'].get('OPTIONS', {}))"
)
POSTGRESQL = "postgresql://root@127.0.0.1:5432/pondops"


def options(**environment: str) -> str:
    result = django_setup_fresh(environment, code=PRINT_OPTIONS)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_postgresql_sessions_end_after_a_minute_idle_in_a_transaction_by_default() -> None:
    assert options(DATABASE_URL=POSTGRESQL) == (
        "{'options': '-c idle_in_transaction_session_timeout=60000'}"
    )


def test_the_idle_in_transaction_timeout_is_a_setting_and_zero_turns_it_off() -> None:
    assert "timeout=1500'" in options(
        DATABASE_URL=POSTGRESQL, PONDOPS_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS="1.5"
    )
    assert "timeout=0'" in options(
        DATABASE_URL=POSTGRESQL, PONDOPS_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS="0"
    )


def test_sqlite_gets_no_postgresql_options() -> None:
    assert "idle_in_transaction" not in options(DATABASE_URL="sqlite:////tmp/pondops-x.sqlite3")
