"""The SQLite store: opening and migrating the file, and the engine's Recorder over it.

One connection per thread (sqlite objects belong to their thread), WAL so a reader such as
Datasette or the TUI never blocks a run, and a busy timeout for the moments two writers meet.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from saferlab.engine.adapter_refs import registry_key
from saferlab.engine.errors import EXIT_DATABASE, SaferlabError
from saferlab.engine.cache import CachedAnswer, CacheMark
from saferlab.engine.types import (FINISH_CANCELLED, GenerationResult, Item, Message, Meter,
                                   Turn, Verdict)

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


class Store:
    """A saferlab database file. Opening it applies any migrations it lacks."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SaferlabError(f"{where}: {exc.strerror}", EXIT_DATABASE) from None
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000,
                                   isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = NORMAL")
            with self._lock:
                self._migrate(conn)
        except sqlite3.DatabaseError as exc:
            raise SaferlabError(f"{where}: {exc}", EXIT_DATABASE) from None
        return sqlite_utils.Database(conn)

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

    # -- Recorder ------------------------------------------------------------------------

    def start_session(self, config: dict[str, Any]) -> int:
        with self.transaction():
            return self.db["sessions"].insert(
                {"created_utc": utc_now(), "status": "running", "config_json": dumps(config)}
            ).last_pk

    def create_run(self, session_id: int, config: dict[str, Any],
                   items: Sequence[tuple[Item, Sequence[Message]]]) -> int:
        with self.transaction():
            run_id = self.db["runs"].insert({
                "session_id": session_id, "created_utc": utc_now(), "status": "pending",
                "model": config["model"], "reasoning": config["reasoning"],
                "attack": config["attack"], "model_sha256": config.get("model_sha256"),
                "saferlab_version": config.get("saferlab_version"),
                "llama_cpp_version": config.get("llama_cpp_version"),
                "n_items": len(items), "config_json": dumps(config),
            }).last_pk
            self.db["items"].insert_all(
                ({"id": item.id, "key": item.key, "suite": item.suite, "kind": item.kind,
                  "category": item.category, "prompt": item.prompt,
                  "item_json": dumps(item.to_dict())} for item, _ in items),
                ignore=True)
            for adapter in config.get("adapters", {}).values():
                self._register_adapter(adapter, used=True)
            self.db["run_items"].insert_all(
                {"run_id": run_id, "position": i, "item_id": item.id,
                 "messages_json": dumps([m.to_dict() for m in messages])}
                for i, (item, messages) in enumerate(items))
        return run_id

    def begin_run(self, run_id: int, retry_errors: bool = False) -> dict[str, list[Verdict]]:
        with self.transaction():
            if retry_errors:
                failed = "SELECT id FROM generations WHERE run_id = ? AND error IS NOT NULL"
                for table in ("verdicts", "turns"):
                    self.db.execute(f"DELETE FROM {table} WHERE generation_id IN ({failed})",
                                    [run_id])
                self.db.execute("DELETE FROM generations WHERE run_id = ? AND error IS NOT NULL",
                                [run_id])
            self.db.execute(
                "UPDATE runs SET status = 'running', started_utc = COALESCE(started_utc, ?), "
                "finished_utc = NULL, error = NULL WHERE id = ?", [utc_now(), run_id])
        done: dict[str, list[Verdict]] = {}
        for row in self.db.query(
            "SELECT g.item_id, v.judge, v.meter, v.passed, v.label, v.score, v.detail_json, "
            "v.error, v.part FROM generations g LEFT JOIN verdicts v ON v.generation_id = g.id "
            "WHERE g.run_id = ? ORDER BY g.id, v.id", [run_id]):
            verdicts = done.setdefault(row["item_id"], [])
            if row["judge"] is not None:
                verdicts.append(verdict_from_row(row))
        return done

    def record_generation(self, run_id: int, item: Item, messages: Sequence[Message],
                          result: GenerationResult, verdicts: Sequence[Verdict],
                          turns: Sequence[Turn] = (), cache: CacheMark | None = None) -> None:
        now = utc_now()
        row = {"run_id": run_id, "item_id": item.id, "created_utc": now,
               "messages_json": dumps([m.to_dict() for m in messages]),
               "output": result.text, "prompt_tokens": result.prompt_tokens,
               "completion_tokens": result.completion_tokens, "ttft_ms": result.ttft_ms,
               "duration_ms": result.duration_ms, "finish_reason": result.finish_reason,
               "error": result.error, "cache_key": cache.key if cache else None,
               "judges_key": cache.judges_key if cache else None,
               "cached": int(bool(cache and cache.cached))}
        with self.transaction():
            # Another process resuming the same run may have stored this item first: its
            # generation stands, and this one is dropped.
            columns, values = ", ".join(row), ", ".join("?" * len(row))
            cursor = self.db.execute(
                f"INSERT INTO generations ({columns}) VALUES ({values}) "
                "ON CONFLICT (run_id, item_id) DO NOTHING", list(row.values()))
            if cursor.rowcount == 0:
                return
            generation_id = cursor.lastrowid
            self.db["verdicts"].insert_all(
                {"generation_id": generation_id, "judge": v.judge, "meter": v.meter,
                 "passed": None if v.passed is None else int(v.passed), "label": v.label,
                 "score": v.score, "detail_json": dumps(v.detail), "error": v.error,
                 "part": v.part, "created_utc": now} for v in verdicts)
            self.db["turns"].insert_all(
                {"generation_id": generation_id, "turn": n, "actor": t.actor,
                 "messages_json": dumps([m.to_dict() for m in t.messages]),
                 "output": t.result.text, "prompt_tokens": t.result.prompt_tokens,
                 "completion_tokens": t.result.completion_tokens,
                 "duration_ms": t.result.duration_ms, "finish_reason": t.result.finish_reason,
                 "error": t.result.error,
                 "verdict_json": dumps(t.verdict.to_dict()) if t.verdict else None}
                for n, t in enumerate(turns, start=1))

    def cached_answer(self, key: str, judges_key: str | None = None) -> CachedAnswer | None:
        rows = list(self.db.query(
            "SELECT id, output, prompt_tokens, completion_tokens, ttft_ms, duration_ms, "
            "finish_reason, judges_key FROM generations WHERE cache_key = ? AND error IS NULL "
            "AND finish_reason != ? ORDER BY judges_key IS NOT ? , cached, id LIMIT 1",
            [key, FINISH_CANCELLED, judges_key]))
        if not rows:
            return None
        row = rows[0]
        verdicts = tuple(
            Verdict(v["judge"], v["meter"], None if v["passed"] is None else bool(v["passed"]),
                    v["label"], v["score"], json.loads(v["detail_json"] or "{}"), v["error"], v["part"])
            for v in self.db.query("SELECT * FROM verdicts WHERE generation_id = ? ORDER BY id",
                                   [row["id"]]))
        result = GenerationResult("", text=row["output"], prompt_tokens=row["prompt_tokens"] or 0,
                                  completion_tokens=row["completion_tokens"] or 0,
                                  ttft_ms=row["ttft_ms"], duration_ms=row["duration_ms"] or 0.0,
                                  finish_reason=row["finish_reason"])
        return CachedAnswer(result, row["judges_key"], verdicts)

    def finish_run(self, run_id: int, status: str, meters: dict[str, Meter],
                   error: str | None = None) -> None:
        with self.transaction():
            self.db.execute(
                "UPDATE runs SET status = ?, finished_utc = ?, meters_json = ?, error = ? "
                "WHERE id = ?",
                [status, utc_now(), dumps({k: m.to_dict() for k, m in meters.items()}), error,
                 run_id])

    def finish_session(self, session_id: int, status: str) -> None:
        with self.transaction():
            self.db.execute("UPDATE sessions SET status = ?, finished_utc = ? WHERE id = ?",
                            [status, utc_now(), session_id])

    def _register_adapter(self, adapter: dict[str, Any], used: bool = False) -> None:
        now = utc_now()
        self.db.execute(
            "INSERT INTO adapters (path, name, kind, base_model, sha256, registered_utc, "
            "last_used_utc, origin, training_id, on_adapters) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?) ON CONFLICT (path) DO UPDATE SET "
            "name = excluded.name, kind = excluded.kind, base_model = excluded.base_model, "
            "sha256 = excluded.sha256, last_used_utc = COALESCE(excluded.last_used_utc, "
            "adapters.last_used_utc), origin = COALESCE(adapters.origin, excluded.origin), "
            "training_id = COALESCE(excluded.training_id, adapters.training_id), "
            "on_adapters = COALESCE(excluded.on_adapters, adapters.on_adapters)",
            [registry_key(adapter), adapter["name"],
             adapter.get("kind", "served"), adapter.get("base_model"), adapter.get("sha256"),
             now, now if used else None, adapter.get("origin"), adapter.get("training_id"),
             adapter.get("on")])

    def register_adapter(self, adapter: dict[str, Any]) -> None:
        """Remember an adapter (PEFT folder or GGUF LoRA) for `saferlab adapters` and the TUI."""
        with self.transaction():
            self._register_adapter(adapter)

    # -- HashCache -----------------------------------------------------------------------

    def known_sha256(self, path: str, size: int, mtime_ns: int) -> str | None:
        rows = list(self.db.query(
            "SELECT sha256 FROM file_hashes WHERE path = ? AND size = ? AND mtime_ns = ?",
            [path, size, mtime_ns]))
        return rows[0]["sha256"] if rows else None

    def remember_sha256(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        with self.transaction():
            self.db["file_hashes"].upsert(
                {"path": path, "size": size, "mtime_ns": mtime_ns, "sha256": sha256,
                 "checked_utc": utc_now()}, pk="path")

    # -- queries ---------------------------------------------------------------------------

    def query(self, sql: str, params: Sequence[Any] = ()) -> Iterator[dict[str, Any]]:
        return self.db.query(sql, params)


def verdict_from_row(row: dict[str, Any]) -> Verdict:
    passed = row["passed"]
    return Verdict(row["judge"], row["meter"], None if passed is None else bool(passed),
                   row["label"], row["score"], json.loads(row["detail_json"] or "{}"),
                   row["error"], row.get("part") or "full")


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
