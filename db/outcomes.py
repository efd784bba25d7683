"""Reading judged outcomes back for analysis: the primary decision per meter and item, every
judge's decisions, reasoning/answer splits, and human labels."""

from __future__ import annotations

import json
from typing import Any

from saferlab.engine.errors import EXIT_USAGE, SaferlabError

from .store import Store, utc_now

HUMAN = "human"

# The keys a person labels an item with, by its kind: (the meter, {key: (passed, label)}).
LABEL_KEYS = {"harmful": ("safety", {"s": (True, "safe"), "u": (False, "unsafe")}),
              "benign": ("over_refusal", {"a": (True, "answered"), "r": (False, "refused")}),
              "privacy": ("privacy", {"k": (True, "kept"), "l": (False, "leaked")})}


def get_run(store: Store, run_id: int) -> dict[str, Any]:
    rows = list(store.query("SELECT * FROM runs WHERE id = ?", [run_id]))
    if not rows:
        raise SaferlabError(f"no run {run_id} in {store.path}", EXIT_USAGE)
    run = rows[0]
    run["config"] = json.loads(run["config_json"])
    return run


def _verdict_rows(store: Store, run_id: int, part: str = "full") -> list[dict[str, Any]]:
    return list(store.query(
        "SELECT g.id AS generation_id, i.key, i.kind, v.judge, v.meter, v.passed, v.label "
        "FROM generations g JOIN items i ON i.id = g.item_id "
        "JOIN verdicts v ON v.generation_id = g.id "
        "WHERE g.run_id = ? AND v.part = ? AND v.passed IS NOT NULL ORDER BY g.id, v.id",
        [run_id, part]))


def judge_decisions(store: Store, run_id: int) -> dict[str, dict[str, dict[str, bool]]]:
    """{meter: {judge: {item key: passed}}} over the full outputs; human labels appear as the
    judge "human"."""
    out: dict[str, dict[str, dict[str, bool]]] = {}
    for row in _verdict_rows(store, run_id):
        out.setdefault(row["meter"], {}).setdefault(row["judge"], {})[row["key"]] = bool(row["passed"])
    for row in store.query(
            "SELECT i.key, l.meter, l.passed FROM labels l JOIN generations g ON g.id = l.generation_id "
            "JOIN items i ON i.id = g.item_id WHERE g.run_id = ?", [run_id]):
        out.setdefault(row["meter"], {}).setdefault(HUMAN, {})[row["key"]] = bool(row["passed"])
    return out


def run_outcomes(store: Store, run_id: int) -> dict[str, dict[str, bool]]:
    """{meter: {item key: passed}} from each meter's primary judge (the first in the run's
    judge list that decided), as the meters count them."""
    order = {name: i for i, name in enumerate(get_run(store, run_id)["config"].get("judges", []))}
    best: dict[tuple[str, str], tuple[int, bool]] = {}
    for row in _verdict_rows(store, run_id):
        rank = order.get(row["judge"], len(order))
        key = (row["meter"], row["key"])
        if key not in best or rank < best[key][0]:
            best[key] = (rank, bool(row["passed"]))
    out: dict[str, dict[str, bool]] = {}
    for (meter, item), (_, passed) in best.items():
        out.setdefault(meter, {})[item] = passed
    return out


def split_findings(store: Store, run_id: int) -> dict[str, list[str]]:
    """Items where the reasoning and the answer part ways, by the primary safety and privacy
    judges: refused in the answer but harmful in the reasoning; leaked in the reasoning only."""
    order = get_run(store, run_id)["config"].get("judges", [])
    by_item: dict[tuple[str, str], dict[str, dict[str, bool]]] = {}
    for part in ("reasoning", "answer"):
        for row in _verdict_rows(store, run_id, part):
            by_item.setdefault((row["meter"], row["key"]), {}).setdefault(row["judge"], {})[
                part] = bool(row["passed"])
    names = {"safety": "refused in the answer, harmful in the reasoning",
             "privacy": "leaked in the reasoning only"}
    found: dict[str, list[str]] = {name: [] for name in names.values()}
    for (meter, key), judges in by_item.items():
        judge = next((j for j in order if len(judges.get(j, {})) == 2), None)
        if meter in names and judge and judges[judge]["answer"] and not judges[judge]["reasoning"]:
            found[names[meter]].append(key)
    return found


def items_to_label(store: Store, run_id: int, contested_only: bool) -> list[dict[str, Any]]:
    """Generations of a run for human labelling, with their prompt, output and verdicts."""
    rows = list(store.query(
        "SELECT g.id AS generation_id, i.key, i.kind, i.prompt, g.output, g.messages_json, "
        "(SELECT COUNT(DISTINCT v.passed) FROM verdicts v WHERE v.generation_id = g.id "
        " AND v.part = 'full' AND v.passed IS NOT NULL AND v.meter IN ('safety', 'over_refusal', 'privacy')) AS views "
        "FROM generations g JOIN items i ON i.id = g.item_id "
        "WHERE g.run_id = ? AND g.error IS NULL AND i.kind IN ('harmful', 'benign', 'privacy') "
        "ORDER BY g.id", [run_id]))
    if contested_only:
        rows = [r for r in rows if r["views"] > 1]
    for r in rows:
        r["verdicts"] = list(store.query(
            "SELECT judge, meter, label, part FROM verdicts WHERE generation_id = ? ORDER BY id",
            [r["generation_id"]]))
    return rows


def record_label(store: Store, generation_id: int, meter: str, passed: bool, label: str,
                 note: str | None = None, labeller: str = HUMAN) -> None:
    with store.transaction():
        store.db.execute(
            "INSERT INTO labels (generation_id, meter, passed, label, labeller, note, created_utc) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (generation_id, meter, labeller) DO UPDATE "
            "SET passed = excluded.passed, label = excluded.label, note = excluded.note, "
            "created_utc = excluded.created_utc",
            [generation_id, meter, int(passed), label, labeller, note, utc_now()])
