"""What a deployment installs: the wheel carries every template, static file and migration and
works outside the source tree; production code runs without moto (the ``demo`` extra)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from tests.conftest import ROOT, database_url

PACKAGE_DATA = [ROOT / "pondops" / "templates", ROOT / "bulkchanges" / "static"]
MIGRATIONS = ROOT / "bulkchanges" / "migrations"
NOT_SOURCE = (".git", ".venv", "var", "build", "*.egg-info", "__pycache__", ".*_cache", "test-*")


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _expected_files() -> set[str]:
    files = {
        path.relative_to(ROOT).as_posix()
        for directory in PACKAGE_DATA
        for path in directory.rglob("*")
        if path.is_file()
    }
    return files | {path.relative_to(ROOT).as_posix() for path in MIGRATIONS.glob("0*.py")}


def test_the_wheel_carries_templates_static_files_and_migrations_and_runs_outside_the_tree(
    tmp_path: Path,
) -> None:
    # Built from a copy: setuptools leaves build/ and *.egg-info where it builds.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    wheels = tmp_path / "wheels"
    build = ["wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(wheels)]
    _run([sys.executable, "-m", "pip", *build], cwd=source)
    [wheel] = wheels.glob("pondops-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert _expected_files() <= names, sorted(_expected_files() - names)
    assert "pondops/gunicorn_conf.py" in names
    assert not any(name.startswith(("tests/", "templates/")) for name in names)

    # A fresh venv holding only the wheel; the dependencies come from this venv's
    # site-packages on PYTHONPATH, whose .pth files (this checkout's editable install among
    # them) are not read from there: pondops can only be the installed wheel.
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    python = target / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", str(wheel)])
    site_packages = next(Path(p) for p in sys.path if p.endswith("site-packages"))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {
        key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "DATABASE_URL"}
    }
    env |= {
        "PYTHONPATH": str(site_packages),
        "DJANGO_SETTINGS_MODULE": "pondops.settings",
        "PONDOPS_VAR_DIR": str(tmp_path / "var"),
    }
    _run([str(python), "-m", "django", "check"], cwd=outside, env=env)  # django-admin check
    script = textwrap.dedent(
        """
        import django, pondops
        django.setup()
        from django.template.loader import get_template
        from django.contrib.staticfiles import finders
        print(pondops.__file__)
        print(get_template("admin/index.html").origin.name)
        print(finders.find("bulkchanges/pondops.css"))
        """
    )
    found = _run([str(python), "-c", script], cwd=outside, env=env).stdout.split()
    installed = str(target / "lib")
    assert all(path.startswith(installed) for path in found), found
    assert found[1].endswith("pondops/templates/admin/index.html")  # ours wins over the admin's


BLOCK_MOTO = '''
"""Refuses ``import moto``: production code must not need the demo extra."""
import sys


class _RefuseMoto:
    def find_spec(self, name, path=None, target=None):
        if name == "moto" or name.startswith("moto."):
            raise ImportError(f"{name} is refused: production code must not import moto")
        return None


sys.meta_path.insert(0, _RefuseMoto())
'''

PRODUCTION_IMPORTS = """
import os, sys
import django
django.setup()
try:
    import moto
except ImportError:
    pass
else:
    raise SystemExit("the moto blocker is not active")
import pondops.wsgi
from django.core.management import load_command_class
for name in ("qcluster", "poll_sqs", "run_reaper"):
    load_command_class("bulkchanges", name)
print("imported without moto")
"""


@pytest.mark.django_db(transaction=True)
def test_production_runs_without_moto(tmp_path: Path) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("production runs on PostgreSQL: set DATABASE_URL to one")
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_MOTO)
    env = {
        **os.environ,
        "PYTHONPATH": str(blocker),
        "DJANGO_SETTINGS_MODULE": "pondops.settings",
        "DATABASE_URL": database_url(),
        "PONDOPS_ENVIRONMENT": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "PONDOPS_FERNET_KEYS": Fernet.generate_key().decode(),
        "REDIS_URL": "redis://127.0.0.1:6379/14",  # named, never reached by these commands
        "DJANGO_ALLOWED_HOSTS": "pondops.example.com",
        "PONDOPS_VAR_DIR": str(tmp_path / "var"),
    }
    env.pop("DJANGO_DEBUG", None)
    check = _run(
        [sys.executable, str(ROOT / "manage.py"), "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        cwd=tmp_path,
    )
    assert "System check identified no issues" in check.stdout
    imported = _run([sys.executable, "-c", PRODUCTION_IMPORTS], env=env, cwd=ROOT)
    assert "imported without moto" in imported.stdout
