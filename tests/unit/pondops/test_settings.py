"""Importing the settings writes nothing: ``manage.py check`` runs on a read-only checkout, and
the directory for the SQLite files is made when a database there is first opened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _run(code: str, var_dir: Path) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "PONDOPS_TEST_SQLITE"}
    }
    environment.update(PONDOPS_VAR_DIR=str(var_dir), DJANGO_SETTINGS_MODULE="pondops.settings")
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_importing_the_settings_and_checking_creates_no_directory(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    result = _run(
        "import django; django.setup(); from django.core.management import call_command; "
        "call_command('check')",
        var_dir,
    )
    assert result.returncode == 0, result.stderr
    assert not var_dir.exists()


def test_opening_the_default_sqlite_database_creates_its_directory(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    result = _run(
        "import django; django.setup(); from django.db import connection; "
        "connection.ensure_connection()",
        var_dir,
    )
    assert result.returncode == 0, result.stderr
    assert (var_dir / "pondops.sqlite3").exists()
