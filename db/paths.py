"""Where the database lives: --db, else $SAFERLAB_HOME, else the platform's user data dir."""

from __future__ import annotations

import os
from pathlib import Path

DB_NAME = "saferlab.db"


def home_dir() -> Path:
    env = os.environ.get("SAFERLAB_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs  # only when no home is set: tests never read the real home

    return Path(platformdirs.user_data_dir("saferlab", appauthor=False))


def default_db_path() -> Path:
    return home_dir() / DB_NAME
