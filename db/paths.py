"""Where the database lives: --db, else $SAFERLAB_HOME, else the platform's user data dir."""

from __future__ import annotations

from pathlib import Path

from saferlab.engine.paths import home_dir

DB_NAME = "saferlab.db"


def default_db_path() -> Path:
    return home_dir() / DB_NAME
