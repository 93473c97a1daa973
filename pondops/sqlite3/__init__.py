"""PondOps' SQLite database backend (``ENGINE = "pondops.sqlite3"``): see ``base``."""
