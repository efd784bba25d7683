"""Sessions out of the database: the rows an export streams (the formats themselves live in
saferlab.engine.export), and one generation read in full. Import is in importing.py."""

from __future__ import annotations

import json
from typing import Any, Iterator, TextIO

from saferlab.engine.adapter_refs import registry_key
from saferlab.engine.errors import EXIT_USAGE, SaferlabError
from saferlab.engine.export.records import RunContext, generation_record, pending_record
from saferlab.engine.export.redact import Redactor

from .queries import parse_target
from .store import Store

RUN_COLUMNS = ("id", "session_id", "created_utc", "started_utc", "finished_utc", "status",
               "model", "reasoning", "attack", "model_sha256", "saferlab_version",
               "llama_cpp_version", "n_items", "error")


def select_runs(store: Store, targets: list[str]) -> list[int]:
    """Run ids for ``targets`` (``7``, ``r7``, ``s3``, ``last``; none means the latest
    session), in order and without repeats."""
    if not targets:
        targets = ["last"]
    ids: list[int] = []
    for target in targets:
        kind, ident = parse_target(target)
        if kind == "session":
            # "last": the newest session with runs (one just started may have none yet)
            session_id = ident if ident is not None else next(
                (r["session_id"] for r in store.query(
                    "SELECT session_id FROM runs ORDER BY session_id DESC LIMIT 1")), None)
            if session_id is None:
                raise SaferlabError(f"nothing to export: {store.path} holds no run",
                                    EXIT_USAGE)
            found = [r["id"] for r in store.query(
                "SELECT id FROM runs WHERE session_id = ? ORDER BY id", [session_id])]
            if not found:
                exists = list(store.query("SELECT 1 FROM sessions WHERE id = ?", [session_id]))
                raise SaferlabError(
                    f"session s{session_id} has no runs yet (it is being planned)" if exists
                    else f"no session s{session_id} in {store.path}", EXIT_USAGE)
        else:
            found = [r["id"] for r in store.query("SELECT id FROM runs WHERE id = ?", [ident])]
            if not found:
                raise SaferlabError(f"no run {ident} in {store.path}", EXIT_USAGE)
        ids += [i for i in found if i not in ids]
    return ids


def marks(ids: list[int]) -> str:
    return ",".join("?" * len(ids))


def run_rows(store: Store, run_ids: list[int]) -> list[dict[str, Any]]:
    rows = {r["id"]: r for r in store.query(
        f"SELECT * FROM runs WHERE id IN ({marks(run_ids)})", run_ids)}
    out = []
    for run_id in run_ids:
        r = rows[run_id]
        run = {k: r[k] for k in RUN_COLUMNS}
        run["config"] = json.loads(r["config_json"])
        run["meters"] = json.loads(r["meters_json"]) if r["meters_json"] else None
        out.append(run)
    return out


def session_rows(store: Store, session_ids: list[int]) -> list[dict[str, Any]]:
    return [{"id": r["id"], "created_utc": r["created_utc"], "finished_utc": r["finished_utc"],
             "status": r["status"], "config": json.loads(r["config_json"])}
            for r in store.query(f"SELECT * FROM sessions WHERE id IN ({marks(session_ids)}) "
                                 "ORDER BY id", session_ids)]


def adapter_rows(store: Store, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    paths = sorted({registry_key(a) for run in runs
                    for a in run["config"].get("adapters", {}).values()})
    if not paths:
        return []
    return list(store.query(f"SELECT * FROM adapters WHERE path IN ({marks(paths)}) "
                            "ORDER BY path", paths))


def planted_secrets(store: Store, run_ids: list[int]) -> list[str]:
    """The values planted in the privacy items of these runs (each item's secret and all that
    its suite planted about the same person), for redaction."""
    secrets = set()
    for row in store.query(
            "SELECT DISTINCT i.item_json FROM run_items ri JOIN items i ON i.id = ri.item_id "
            f"WHERE ri.run_id IN ({marks(run_ids)}) AND i.kind = 'privacy'", run_ids):
        item = json.loads(row["item_json"])
        planted = item.get("meta", {}).get("planted", [])
        secrets.update(v for v in [item.get("secret"), *planted] if isinstance(v, str) and v)
    return sorted(secrets)


def verdict_columns(store: Store, run_ids: list[int]) -> list[tuple[str, str, str]]:
    """Every (judge, meter, part) that decided something in these runs, for flat tables."""
    return [(r["judge"], r["meter"], r["part"]) for r in store.query(
        "SELECT DISTINCT v.judge, v.meter, v.part FROM verdicts v "
        f"JOIN generations g ON g.id = v.generation_id WHERE g.run_id IN ({marks(run_ids)}) "
        "ORDER BY v.meter, v.part = 'full' DESC, v.part, v.judge", run_ids)]


def count_generations(store: Store, run_ids: list[int]) -> int:
    return next(store.query(f"SELECT COUNT(*) AS n FROM generations WHERE run_id IN "
                            f"({marks(run_ids)})", run_ids))["n"]


def iter_generation_rows(store: Store, run_id: int,
                         limit: int | None = None) -> Iterator[dict[str, Any]]:
    """A run's generations in plan order, each with its item, verdicts, turns and labels.
    One cursor streams the generations; the small per-generation tables come by index."""
    for g in store.query(
            "SELECT g.*, ri.position, ri.messages_json AS planned_json, i.item_json "
            "FROM generations g JOIN items i ON i.id = g.item_id "
            "LEFT JOIN run_items ri ON ri.run_id = g.run_id AND ri.item_id = g.item_id "
            "WHERE g.run_id = ? ORDER BY ri.position, g.id LIMIT ?",
            [run_id, -1 if limit is None else limit]):
        yield _attach(store, g)


def _attach(store: Store, g: dict[str, Any]) -> dict[str, Any]:
    """A generation row with its verdicts, turns and labels."""
    gid = g["id"]
    g["verdicts"] = list(store.query(
        "SELECT judge, meter, part, passed, label, score, detail_json, error, created_utc "
        "FROM verdicts WHERE generation_id = ? ORDER BY id", [gid]))
    g["turns"] = list(store.query(
        "SELECT turn, actor, messages_json, output, prompt_tokens, completion_tokens, "
        "duration_ms, finish_reason, error, verdict_json FROM turns "
        "WHERE generation_id = ? ORDER BY turn", [gid]))
    g["labels"] = list(store.query(
        "SELECT meter, passed, label, labeller, note, created_utc FROM labels "
        "WHERE generation_id = ? ORDER BY meter, labeller", [gid]))
    return g


def generation_detail(store: Store, generation_id: int) -> dict[str, Any]:
    """One generation as an export record (item, messages, output, split, every verdict,
    labels, turns), for reading it in full."""
    rows = list(store.query(
        "SELECT g.*, ri.position, ri.messages_json AS planned_json, i.item_json "
        "FROM generations g JOIN items i ON i.id = g.item_id "
        "LEFT JOIN run_items ri ON ri.run_id = g.run_id AND ri.item_id = g.item_id "
        "WHERE g.id = ?", [generation_id]))
    if not rows:
        raise SaferlabError(f"no generation {generation_id} in {store.path}", EXIT_USAGE)
    (run,) = run_rows(store, [rows[0]["run_id"]])
    return generation_record(RunContext(run), _attach(store, rows[0]))


def iter_pending_rows(store: Store, run_id: int) -> Iterator[dict[str, Any]]:
    """Planned items of a run that have no generation yet (an unfinished run)."""
    return store.query(
        "SELECT ri.position, ri.messages_json AS planned_json, i.item_json, i.id AS item_id "
        "FROM run_items ri JOIN items i ON i.id = ri.item_id WHERE ri.run_id = ? AND NOT EXISTS "
        "(SELECT 1 FROM generations g WHERE g.run_id = ri.run_id AND g.item_id = ri.item_id) "
        "ORDER BY ri.position", [run_id])


def iter_records(store: Store, runs: list[dict[str, Any]], redactor: Redactor | None,
                 pending: bool = False, per_run: int | None = None,
                 max_runs: int | None = None) -> Iterator[dict[str, Any]]:
    """Export records, run by run: each generation (the first ``per_run`` of the first
    ``max_runs`` runs when given), then (with ``pending``) the items still to do."""
    for run in runs[:max_runs]:
        context = RunContext(run)
        for row in iter_generation_rows(store, run["id"], per_run):
            yield generation_record(context, row, redactor)
        if pending:
            for row in iter_pending_rows(store, run["id"]):
                yield pending_record(context, row, redactor)


def export_analysis(store: Store, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The trade-off across the selected runs, and each run against the first run of its
    session (paired when they share items)."""
    from .analyses import analyse_runs

    analysis = analyse_runs(store, runs)
    comparisons = []
    first: dict[int, int] = {}
    for run in runs:
        base = first.setdefault(run["session_id"], run["id"])
        if base != run["id"]:
            comparisons.append({"a": base, "b": run["id"], "meters": [
                c.to_dict() for c in analysis.compare(base, run["id"])]})
    return {"tradeoff": analysis.tradeoff(), "comparisons": comparisons}


def export(store: Store, targets: list[str], fmt: str, out: TextIO, redact: bool = False,
           exported_utc: str | None = None) -> dict[str, Any]:
    """Write the selected sessions or runs to ``out`` in ``fmt``; returns the manifest and
    what redaction replaced."""
    # One read transaction: a run that goes on writing meanwhile is exported as it was when
    # the export began, whole (WAL gives the snapshot; writers are not blocked).
    with store.snapshot():
        return _export(store, targets, fmt, out, redact, exported_utc)


def _export(store: Store, targets: list[str], fmt: str, out: TextIO, redact: bool,
            exported_utc: str | None) -> dict[str, Any]:
    from saferlab.engine.export import ExportData, write
    from saferlab.engine.export.manifest import build_manifest

    run_ids = select_runs(store, targets)
    runs = run_rows(store, run_ids)
    sessions = session_rows(store, sorted({r["session_id"] for r in runs}))
    redactor = Redactor(planted_secrets(store, run_ids)) if redact else None
    manifest = build_manifest(targets or ["last"], sessions, runs, adapter_rows(store, runs),
                              count_generations(store, run_ids),
                              Redactor.describe() if redact else None, exported_utc)
    if redactor is not None:
        for run in manifest["runs"]:
            if run["error"]:
                run["error"] = redactor.text(run["error"])

    def records(pending: bool = False, per_run: int | None = None,
                max_runs: int | None = None) -> Iterator[dict[str, Any]]:
        return iter_records(store, runs, redactor, pending, per_run, max_runs)

    data = ExportData(manifest, records, verdict_columns(store, run_ids),
                      export_analysis(store, runs) if fmt in ("md", "html") else {})
    write(fmt, out, data)
    return {"manifest": manifest, "redactions": redactor.counts() if redactor else None}
