"""Reading the database for browsing: sessions, a run's items with their primary verdicts,
and the filters the history screen offers."""

from __future__ import annotations

import json
from typing import Any

from .outcomes import get_run
from .queries import RUN_COUNTS
from .store import Store

FILTERS = ("all", "jailbroken", "leaked", "wrong", "refused", "contested", "errors")
# Which (meter, passed) a filter keeps; contested and errors are worked out separately.
_FILTER_SIDE = {"jailbroken": ("safety", False), "leaked": ("privacy", False),
                "wrong": ("reasoning", False), "refused": ("over_refusal", False)}


def list_sessions(store: Store, limit: int = 200) -> list[dict[str, Any]]:
    rows = list(store.query(
        "SELECT s.id, s.created_utc, s.status, "
        "(SELECT COUNT(*) FROM runs r WHERE r.session_id = s.id) AS runs, "
        "(SELECT COUNT(*) FROM generations g JOIN runs r ON r.id = g.run_id "
        " WHERE r.session_id = s.id) AS generated, "
        "(SELECT SUM(n_items) FROM runs r WHERE r.session_id = s.id) AS planned, "
        "(SELECT GROUP_CONCAT(DISTINCT model) FROM runs r WHERE r.session_id = s.id) AS models "
        "FROM sessions s ORDER BY s.id DESC LIMIT ?", [limit]))
    return rows


def session_run_rows(store: Store, session_id: int) -> list[dict[str, Any]]:
    out = []
    for r in store.query(
            f"SELECT r.*, {RUN_COUNTS} FROM runs r WHERE r.session_id = ? ORDER BY r.id",
            [session_id]):
        r["config"] = json.loads(r["config_json"])
        r["meters"] = json.loads(r["meters_json"]) if r["meters_json"] else {}
        out.append(r)
    return out


def run_items(store: Store, run_id: int, keep: str = "all") -> list[dict[str, Any]]:
    """A run's generations in plan order: key, kind, output preview, each meter's primary
    label, whether the judges disagree, and any human label; filtered by ``keep``."""
    order = {n: i for i, n in enumerate(get_run(store, run_id)["config"].get("judges", []))}
    rows: dict[int, dict[str, Any]] = {}
    for g in store.query(
            # as bytes: SQLite's text substr stops at a NUL, which model output may hold
            "SELECT g.id, i.key, i.kind, substr(CAST(g.output AS BLOB), 1, 800) AS preview, "
            "g.error, "
            "g.completion_tokens, ri.position FROM generations g "
            "JOIN items i ON i.id = g.item_id LEFT JOIN run_items ri ON ri.run_id = g.run_id "
            "AND ri.item_id = g.item_id WHERE g.run_id = ? ORDER BY ri.position, g.id",
            [run_id]):
        g["preview"] = bytes(g["preview"] or b"").decode("utf-8", errors="ignore")[:200]
        g.update(labels={}, primary={}, contested=False, human={})
        rows[g["id"]] = g
    seen: dict[tuple[int, str], set[bool]] = {}
    for v in store.query(
            "SELECT v.generation_id, v.judge, v.meter, v.passed, v.label FROM verdicts v "
            "JOIN generations g ON g.id = v.generation_id WHERE g.run_id = ? AND v.part = 'full' "
            "AND v.passed IS NOT NULL ORDER BY v.id", [run_id]):
        row = rows[v["generation_id"]]
        rank = order.get(v["judge"], len(order))
        best = row["primary"].get(v["meter"])
        if best is None or rank < best[0]:
            row["primary"][v["meter"]] = (rank, bool(v["passed"]), v["label"])
        seen.setdefault((v["generation_id"], v["meter"]), set()).add(bool(v["passed"]))
    for (gid, _), views in seen.items():
        if len(views) > 1:
            rows[gid]["contested"] = True
    for x in store.query(
            "SELECT l.generation_id, l.meter, l.label FROM labels l JOIN generations g "
            "ON g.id = l.generation_id WHERE g.run_id = ?", [run_id]):
        rows[x["generation_id"]]["human"][x["meter"]] = x["label"]
    out = []
    for row in rows.values():
        row["labels"] = {m: label for m, (_, _, label) in row["primary"].items()}
        passed = {m: p for m, (_, p, _) in row["primary"].items()}
        row["primary"] = passed
        if keep == "contested" and not row["contested"]:
            continue
        if keep == "errors" and not row["error"]:
            continue
        if keep in _FILTER_SIDE:
            meter, side = _FILTER_SIDE[keep]
            if passed.get(meter) is not side:
                continue
        out.append(row)
    return out
