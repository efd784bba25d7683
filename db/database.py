"""A saferlab database file: one connection per thread (sqlite objects belong to their
thread), WAL so a reader such as Datasette or the interface never blocks a run, a busy
timeout for the moments two writers meet, and the migrations applied on every open.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from saferlab.engine.errors import EXIT_DATABASE, SaferlabError

from .migrations import MIGRATIONS


def _import_sqlite_utils():
    """sqlite-utils imports pandas and numpy when they are installed, only to map their
    scalar types to columns. saferlab never hands it such values, and pandas alone costs
    about 0.6 s of every start-up, so both are hidden for that one import (not afterwards)."""
    hidden = [name for name in ("pandas", "numpy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes the import fail fast
    try:
        import sqlite_utils
    finally:
        for name in hidden:
            del sys.modules[name]
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()

BUSY_TIMEOUT_MS = 10_000


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


class Database:
    """Opening, migrating and querying the file; transactions."""

    def __init__(self, path: Path | str, create: bool = True) -> None:
        """``create=False``: a path with no file reads as an empty database, and none is made
        (the user's default database, before anything was run, for commands that only read).
        Each thread then has an empty in-memory one of its own, which refuses writes."""
        self.path = Path(path)
        self._create = create
        self._local = threading.local()
        self._lock = threading.Lock()
        self._local.db = self._open()  # open and migrate now: a bad file fails here, clearly

    # -- connections ---------------------------------------------------------------------

    @property
    def db(self) -> sqlite_utils.Database:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._open()
        return db

    def _open(self) -> sqlite_utils.Database:
        where = f"cannot open database {self.path}"
        if self.path.is_dir():
            raise SaferlabError(f"{where}: it is a directory", EXIT_DATABASE)
        target: Path | str = self.path
        if not self._create and not self.path.exists():
            target = ":memory:"  # empty and made of the same migrations; nothing on disk
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise SaferlabError(f"{where}: {exc.strerror}", EXIT_DATABASE) from None
        try:
            conn = sqlite3.connect(target, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._refuse_foreign(conn)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            with self._lock:
                self._migrate(conn)
            if target != self.path:  # the stand-in for a file not made: nothing to keep
                conn.execute("PRAGMA query_only = ON")
        except sqlite3.DatabaseError as exc:
            raise SaferlabError(f"{where}: {exc}", EXIT_DATABASE) from None
        return sqlite_utils.Database(conn)

    def _refuse_foreign(self, conn: sqlite3.Connection) -> None:
        """Another program's database is left as it is: no WAL, no saferlab tables."""
        tables = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
        if tables and "_migrations" not in tables:
            conn.close()
            shown = ", ".join(sorted(tables)[:3]) + (", ..." if len(tables) > 3 else "")
            raise SaferlabError(f"{self.path} is not a saferlab database (it holds the tables "
                                f"{shown}); give another --db", EXIT_DATABASE)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS _migrations "
                     "(name TEXT PRIMARY KEY, applied_utc TEXT NOT NULL)")
        applied = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
        known = {name for name, _ in MIGRATIONS}
        if applied - known:
            raise SaferlabError(
                f"database {self.path} was made by a newer saferlab (it has migrations "
                f"{', '.join(sorted(applied - known))}); upgrade saferlab to open it", EXIT_DATABASE)
        for name, sql in MIGRATIONS:
            if name in applied:
                continue
            try:
                conn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\n;INSERT INTO _migrations VALUES "
                    f"('{name}', '{utc_now()}');\nCOMMIT;")
            except sqlite3.Error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def integrity_problems(self, limit: int = 20) -> list[str]:
        """What SQLite's integrity check finds wrong with the file (none: it is sound): a
        damaged page makes queries answer from what is left, so reports would be short."""
        try:
            rows = [r[0] for r in self.db.conn.execute(f"PRAGMA integrity_check({int(limit)})")]
        except sqlite3.DatabaseError as exc:
            return [str(exc)]
        return [] if rows == ["ok"] else rows

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None

    def transaction(self) -> "_Transaction":
        return _Transaction(self.db.conn)

    def snapshot(self) -> "_Transaction":
        """A read transaction: every query inside sees the database as it was at the first."""
        return _Transaction(self.db.conn, "BEGIN DEFERRED")

    # -- queries ---------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        return self.db.query(sql, params)



class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error. The connection is in autocommit
    mode so that every write is explicit and nothing waits in an implicit transaction."""

    def __init__(self, conn: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> None:
        self.conn, self.begin = conn, begin

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute(self.begin)
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
