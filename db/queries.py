"""Reading runs back: listings, and the plans a resume continues."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from saferlab.engine.errors import EXIT_USAGE, SaferlabError
from saferlab.engine.plan import PlannedItem, RunPlan, RunSpec
from saferlab.engine.types import Item, Message

from .store import Store

FINISHED = "finished"


def latest_session_id(store: Store) -> int | None:
    rows = list(store.query("SELECT id FROM sessions ORDER BY id DESC LIMIT 1"))
    return rows[0]["id"] if rows else None


MAX_ID = 2 ** 63 - 1


def _number(text: str) -> bool:
    """ASCII digits only: what int() reads as an id ("²" is a digit int() refuses)."""
    return text.isdecimal() and text.isascii()


def parse_target(text: str, sessions: bool = False) -> tuple[str, int | None]:
    """``last``, ``s3``/``session:3`` (a session) or ``7``/``r7``/``run:7`` (a run). For a
    command that takes ``sessions`` only, a bare ``3`` is session 3."""
    t = text.strip().lower()
    if t == "last":
        return "session", None
    for prefix, kind in (("session:", "session"), ("s", "session"), ("run:", "run"), ("r", "run"),
                         ("", "session" if sessions else "run")):
        if t.startswith(prefix) and _number(t[len(prefix):]):
            ident = int(t[len(prefix):])
            if ident > MAX_ID:  # SQLite stores no larger integer
                raise SaferlabError(f"no {kind} {t[len(prefix):]}: ids go up to {MAX_ID}",
                                    EXIT_USAGE)
            return kind, ident
    wanted = "a session id (s3 or 3)" if sessions else \
        "a run id (7 or r7), a session id (s3)"
    raise SaferlabError(f"cannot read {text!r}: give {wanted} or 'last'", EXIT_USAGE)


def load_run_plan(store: Store, run: dict[str, Any]) -> RunPlan:
    config = json.loads(run["config_json"])
    items = tuple(
        PlannedItem(Item.from_dict(json.loads(row["item_json"])),
                    tuple(Message.from_dict(m) for m in json.loads(row["messages_json"])))
        for row in store.query(
            "SELECT i.item_json, ri.messages_json FROM run_items ri "
            "JOIN items i ON i.id = ri.item_id WHERE ri.run_id = ? ORDER BY ri.position",
            [run["id"]]))
    spec = RunSpec.from_dict(config)
    extra = {k: v for k, v in config.items() if k not in spec.to_dict()}
    return RunPlan(spec, items, run_id=run["id"], extra_config=extra)


def resumable(store: Store, target: str,
              retry_errors: bool = True) -> tuple[int, list[RunPlan]]:
    """The session to continue and its runs that are not finished, oldest first. With
    ``retry_errors``, items whose generation failed are not done: their runs continue too."""
    kind, ident = parse_target(target)
    if kind == "session":
        session_id = ident if ident is not None else latest_session_id(store)
        if session_id is None:
            raise SaferlabError(f"nothing to resume: {store.path} holds no session", EXIT_USAGE)
        runs = list(store.query("SELECT * FROM runs WHERE session_id = ? ORDER BY id",
                                [session_id]))
        if not runs:
            raise SaferlabError(f"no session s{session_id} in {store.path}", EXIT_USAGE)
    else:
        runs = list(store.query("SELECT * FROM runs WHERE id = ?", [ident]))
        if not runs:
            raise SaferlabError(f"no run {ident} in {store.path}", EXIT_USAGE)
        session_id = runs[0]["session_id"]
    plans = []
    for run in runs:
        done = generated_count(store, run["id"], ok_only=retry_errors)
        if done >= run["n_items"] and (run["status"] == FINISHED or not retry_errors):
            continue  # (a run whose every item failed stays failed when its errors are kept)
        plans.append(replace(load_run_plan(store, run), retry_errors=retry_errors))
    return session_id, plans


def session_runs(store: Store, target: str) -> tuple[int, list[dict[str, Any]]]:
    """A session (``last``, ``s3`` or ``3``) and its runs, oldest first."""
    kind, ident = parse_target(target, sessions=True)
    if kind == "run":
        rows = list(store.query("SELECT session_id FROM runs WHERE id = ?", [ident]))
        where = f": run {ident} is in session s{rows[0]['session_id']}" if rows else ""
        raise SaferlabError(f"cannot read {target!r}: give a session id (s3 or 3) or "
                            f"'last'{where}", EXIT_USAGE)
    session_id = ident if ident is not None else latest_session_id(store)
    if session_id is None:
        raise SaferlabError(f"{store.path} holds no session yet", EXIT_USAGE)
    runs = list(store.query("SELECT * FROM runs WHERE session_id = ? ORDER BY id", [session_id]))
    if not runs:
        raise SaferlabError(f"no session s{session_id} in {store.path}", EXIT_USAGE)
    for run in runs:
        run["config"] = json.loads(run["config_json"])
    return session_id, runs


def generated_count(store: Store, run_id: int, ok_only: bool = False) -> int:
    """Items of the run with a generation (``ok_only``: one that did not fail)."""
    where = " AND error IS NULL" if ok_only else ""
    return next(store.query("SELECT COUNT(*) AS n FROM generations WHERE run_id = ?" + where,
                            [run_id]))["n"]


# For a query over ``runs r``: how many generations each run has, and how many of them failed.
RUN_COUNTS = ("(SELECT COUNT(*) FROM generations g WHERE g.run_id = r.id) AS generated, "
              "(SELECT COUNT(*) FROM generations g WHERE g.run_id = r.id "
              "AND g.error IS NOT NULL) AS errors")


def list_runs(store: Store, limit: int | None = None) -> list[dict[str, Any]]:
    sql = f"SELECT r.*, {RUN_COUNTS} FROM runs r ORDER BY r.id DESC"
    params: list[Any] = []
    if limit:
        sql += " LIMIT ?"
        params.append(limit)
    out = []
    for row in store.query(sql, params):
        config = json.loads(row["config_json"])
        out.append({
            "id": row["id"], "session_id": row["session_id"], "created_utc": row["created_utc"],
            "status": row["status"], "model": row["model"], "reasoning": row["reasoning"],
            "attack": row["attack"], "modifiers": list(config.get("modifiers") or []),
            "adapter": config.get("adapter"),
            "items": row["n_items"], "generated": row["generated"], "errors": row["errors"],
            "meters": json.loads(row["meters_json"]) if row["meters_json"] else {},
            "error": row["error"],
        })
    return out


def newest_run_seconds(store: Store) -> float | None:
    """Wall time of the newest run, from its stored start and end (None while unfinished)."""
    from datetime import datetime

    rows = list(store.query("SELECT started_utc, finished_utc FROM runs ORDER BY id DESC "
                            "LIMIT 1"))
    if not rows or not rows[0]["started_utc"] or not rows[0]["finished_utc"]:
        return None
    start, end = (datetime.fromisoformat(rows[0][k]) for k in ("started_utc", "finished_utc"))
    return (end - start).total_seconds()


def generation_totals(store: Store) -> tuple[int, int]:
    """Generations stored, and their completion tokens."""
    row = next(store.query("SELECT COUNT(*) AS n, COALESCE(SUM(completion_tokens), 0) AS t "
                           "FROM generations"))
    return row["n"], row["t"]
