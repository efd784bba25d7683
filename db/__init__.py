"""The SQLite store: schema, migrations and every line of SQL. Implements the engine's
Recorder; the engine never imports this package."""

from .paths import default_db_path
from .queries import latest_session_id, list_runs, parse_target, resumable
from .store import Store

__all__ = ["Store", "default_db_path", "latest_session_id", "list_runs",
           "parse_target", "resumable"]
