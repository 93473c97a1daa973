"""Django's SQLite backend, which also creates ``PONDOPS_VAR_DIR`` when it first opens a
database file inside it — the default database and the SQLite test databases live there. So
importing the settings writes nothing (``manage.py check`` runs on a read-only checkout), and
a fresh clone still needs no ``mkdir var`` before ``migrate``, ``./dev test`` or ``./dev up``.
A database elsewhere (``DATABASE_URL=sqlite:///…``) is opened as Django opens it: its directory
must exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.db.backends.sqlite3 import base
from django.db.backends.sqlite3.creation import DatabaseCreation


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: Any) -> Any:
        database = conn_params["database"]
        if not DatabaseCreation.is_in_memory_db(database):
            var_dir = Path(settings.VAR_DIR).resolve()
            directory = Path(database).resolve().parent
            if directory.is_relative_to(var_dir):
                directory.mkdir(parents=True, exist_ok=True)
        return super().get_new_connection(conn_params)
