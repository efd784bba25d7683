"""Sessions out of and back into the database: the rows an export streams, and the import of
an exported JSONL file. The formats themselves live in saferlab.engine.export."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Iterator, TextIO

from saferlab.engine.errors import EXIT_USAGE, SaferlabError
from saferlab.engine.export.records import (FORMAT_NAME, FORMAT_VERSION, RunContext,
                                            generation_record, pending_record)
from saferlab.engine.export.redact import Redactor

from .queries import latest_session_id, parse_target
from .store import Store, dumps

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
            session_id = ident if ident is not None else latest_session_id(store)
            if session_id is None:
                raise SaferlabError(f"nothing to export: {store.path} holds no session",
                                    EXIT_USAGE)
            found = [r["id"] for r in store.query(
                "SELECT id FROM runs WHERE session_id = ? ORDER BY id", [session_id])]
            if not found:
                raise SaferlabError(f"no session s{session_id} in {store.path}", EXIT_USAGE)
        else:
            found = [r["id"] for r in store.query("SELECT id FROM runs WHERE id = ?", [ident])]
            if not found:
                raise SaferlabError(f"no run {ident} in {store.path}", EXIT_USAGE)
        ids += [i for i in found if i not in ids]
    return ids


def _marks(ids: list[int]) -> str:
    return ",".join("?" * len(ids))


def run_rows(store: Store, run_ids: list[int]) -> list[dict[str, Any]]:
    rows = {r["id"]: r for r in store.query(
        f"SELECT * FROM runs WHERE id IN ({_marks(run_ids)})", run_ids)}
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
            for r in store.query(f"SELECT * FROM sessions WHERE id IN ({_marks(session_ids)}) "
                                 "ORDER BY id", session_ids)]


def adapter_rows(store: Store, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    paths = sorted({a.get("path") or f"served:{a['name']}" for run in runs
                    for a in run["config"].get("adapters", {}).values()})
    if not paths:
        return []
    return list(store.query(f"SELECT * FROM adapters WHERE path IN ({_marks(paths)}) "
                            "ORDER BY path", paths))


def planted_secrets(store: Store, run_ids: list[int]) -> list[str]:
    """The secrets planted in the privacy items of these runs, for redaction."""
    secrets = set()
    for row in store.query(
            "SELECT DISTINCT i.item_json FROM run_items ri JOIN items i ON i.id = ri.item_id "
            f"WHERE ri.run_id IN ({_marks(run_ids)}) AND i.kind = 'privacy'", run_ids):
        secret = json.loads(row["item_json"]).get("secret")
        if secret:
            secrets.add(secret)
    return sorted(secrets)


def verdict_columns(store: Store, run_ids: list[int]) -> list[tuple[str, str, str]]:
    """Every (judge, meter, part) that decided something in these runs, for flat tables."""
    return [(r["judge"], r["meter"], r["part"]) for r in store.query(
        "SELECT DISTINCT v.judge, v.meter, v.part FROM verdicts v "
        f"JOIN generations g ON g.id = v.generation_id WHERE g.run_id IN ({_marks(run_ids)}) "
        "ORDER BY v.meter, v.part = 'full' DESC, v.part, v.judge", run_ids)]


def count_generations(store: Store, run_ids: list[int]) -> int:
    return next(store.query(f"SELECT COUNT(*) AS n FROM generations WHERE run_id IN "
                            f"({_marks(run_ids)})", run_ids))["n"]


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
        yield g


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
    from saferlab.engine.analysis import compare_runs, tradeoff
    from saferlab.engine.export import run_title

    from .outcomes import run_outcomes

    outcomes = {run["id"]: run_outcomes(store, run["id"]) for run in runs}
    comparisons = []
    first: dict[int, int] = {}
    for run in runs:
        base = first.setdefault(run["session_id"], run["id"])
        if base != run["id"]:
            comparisons.append({"a": base, "b": run["id"], "meters": [
                c.to_dict() for c in compare_runs(outcomes[base], outcomes[run["id"]])]})
    return {"tradeoff": tradeoff([(r["id"], run_title(r), outcomes[r["id"]]) for r in runs]),
            "comparisons": comparisons}


def export(store: Store, targets: list[str], fmt: str, out: TextIO, redact: bool = False,
           exported_utc: str | None = None) -> dict[str, Any]:
    """Write the selected sessions or runs to ``out`` in ``fmt``; returns the manifest and
    what redaction replaced."""
    from saferlab.engine.export import ExportData, write
    from saferlab.engine.export.manifest import build_manifest

    run_ids = select_runs(store, targets)
    runs = run_rows(store, run_ids)
    sessions = session_rows(store, sorted({r["session_id"] for r in runs}))
    redactor = Redactor(planted_secrets(store, run_ids)) if redact else None
    manifest = build_manifest(targets or ["last"], sessions, runs, adapter_rows(store, runs),
                              count_generations(store, run_ids),
                              Redactor.describe() if redact else None, exported_utc)

    def records(pending: bool = False, per_run: int | None = None,
                max_runs: int | None = None) -> Iterator[dict[str, Any]]:
        return iter_records(store, runs, redactor, pending, per_run, max_runs)

    data = ExportData(manifest, records, verdict_columns(store, run_ids),
                      export_analysis(store, runs) if fmt in ("md", "html") else {})
    write(fmt, out, data)
    return {"manifest": manifest, "redactions": redactor.counts() if redactor else None}


# -- import -------------------------------------------------------------------------------


class _Lines:
    """An exported JSONL file, line by line, with errors that name the line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.number = 0

    def fail(self, message: str) -> SaferlabError:
        where = f"{self.path} line {self.number}" if self.number else str(self.path)
        return SaferlabError(f"{where}: {message}", EXIT_USAGE)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            f = self.path.open(encoding="utf-8")
        except OSError as exc:
            raise SaferlabError(f"cannot read {self.path}: {exc.strerror}", EXIT_USAGE) from None
        with f:
            for self.number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise self.fail(f"not JSON ({exc.msg})") from None
                except UnicodeDecodeError:
                    raise self.fail("not UTF-8 text") from None
                if not isinstance(record, dict) or "record" not in record:
                    raise self.fail("not a saferlab export record (no 'record' field)")
                yield record


def _need(lines: _Lines, record: dict[str, Any], *keys: str) -> None:
    missing = [k for k in keys if k not in record]
    if missing:
        raise lines.fail(f"{record.get('record')} record lacks {', '.join(missing)}")


def _free(store: Store, table: str, ids: list[int]) -> bool:
    return not ids or not list(store.query(
        f"SELECT 1 FROM {table} WHERE id IN ({_marks(ids)}) LIMIT 1", ids))


def import_jsonl(store: Store, path: Path) -> dict[str, Any]:
    """Load an exported JSONL file into ``store`` in one transaction: all of it or nothing.
    Ids are kept when they are free in the database, otherwise new ones are given (and
    reported)."""
    lines = _Lines(Path(path))
    records = iter(lines)
    manifest = next(records, None)
    if manifest is None:
        raise SaferlabError(f"{path} is empty", EXIT_USAGE)
    if manifest.get("record") != "manifest" or manifest.get("format") != FORMAT_NAME:
        raise lines.fail("the first line is not a saferlab export manifest")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise lines.fail(f"export format {manifest['format_version']} is newer than this "
                         f"saferlab reads ({FORMAT_VERSION}); upgrade saferlab")
    _need(lines, manifest, "sessions", "runs")
    for session in manifest["sessions"]:
        dup = list(store.query("SELECT id FROM sessions WHERE created_utc = ? AND config_json = ?",
                               [session["created_utc"], dumps(session["config"])]))
        if dup:
            raise SaferlabError(f"{path}: session s{session['id']} is already in {store.path} "
                                f"as s{dup[0]['id']}; nothing imported", EXIT_USAGE)
    keep = (_free(store, "sessions", [s["id"] for s in manifest["sessions"]])
            and _free(store, "runs", [r["id"] for r in manifest["runs"]]))
    session_map: dict[int, int] = {}
    run_map: dict[int, int] = {}
    counts = {"sessions": 0, "runs": 0, "generations": 0, "pending": 0}
    db = store.db
    try:
        with store.transaction():
            for s in manifest["sessions"]:
                row = {"created_utc": s["created_utc"], "finished_utc": s["finished_utc"],
                       "status": s["status"], "config_json": dumps(s["config"])}
                if keep:
                    row["id"] = s["id"]
                session_map[s["id"]] = db["sessions"].insert(row).last_pk
                counts["sessions"] += 1
            for r in manifest["runs"]:
                row = {k: r[k] for k in RUN_COLUMNS if k != "id"}
                row["session_id"] = session_map[r["session_id"]]
                row["config_json"] = dumps(r["config"])
                row["meters_json"] = dumps(r["meters"]) if r["meters"] is not None else None
                if keep:
                    row["id"] = r["id"]
                run_map[r["id"]] = db["runs"].insert(row).last_pk
                counts["runs"] += 1
            for a in manifest.get("adapters", []):
                db["adapters"].insert(a, ignore=True)
            for record in records:
                kind = record["record"]
                if kind not in ("generation", "pending"):
                    raise lines.fail(f"unknown record type {kind!r}")
                _need(lines, record, "run_id", "position", "item", "planned_messages")
                if record["run_id"] not in run_map:
                    raise lines.fail(f"run {record['run_id']} is not in the manifest")
                run_id = run_map[record["run_id"]]
                item_id = _insert_item(db, lines, record["item"])
                planned = record["planned_messages"]
                if kind == "generation":
                    _need(lines, record, "messages", "output", "verdicts", "turns", "labels",
                          "tokens", "timing", "finish_reason", "error")
                    if planned is None:
                        planned = record["messages"]
                    _insert_generation(db, record, run_id, item_id, keep)
                    counts["generations"] += 1
                else:
                    counts["pending"] += 1
                db["run_items"].insert({"run_id": run_id, "position": record["position"],
                                        "item_id": item_id, "messages_json": dumps(planned)})
    except sqlite3.IntegrityError as exc:
        raise lines.fail(f"does not fit the database ({exc}); nothing imported") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise lines.fail(f"malformed record ({type(exc).__name__}: {exc}); nothing imported") from None
    return {"sessions": {old: new for old, new in session_map.items()},
            "runs": {old: new for old, new in run_map.items()},
            "counts": counts, "redacted": bool(manifest.get("redaction"))}


def _insert_item(db, lines: _Lines, item: dict[str, Any]) -> str:
    body = {k: v for k, v in item.items() if k != "id"}
    for key in ("key", "suite", "kind", "prompt"):
        if key not in body:
            raise lines.fail(f"item lacks {key}")
    item_id = item.get("id") or body["key"]
    db["items"].insert({"id": item_id, "key": body["key"], "suite": body["suite"],
                        "kind": body["kind"], "category": body.get("category"),
                        "prompt": body["prompt"], "item_json": dumps(body)}, ignore=True)
    return item_id


def _insert_generation(db, record: dict[str, Any], run_id: int, item_id: str,
                       keep: bool) -> None:
    row = {"run_id": run_id, "item_id": item_id, "created_utc": record["timing"]["created_utc"],
           "messages_json": dumps(record["messages"]), "output": record["output"],
           "prompt_tokens": record["tokens"]["prompt"],
           "completion_tokens": record["tokens"]["completion"],
           "ttft_ms": record["timing"]["ttft_ms"], "duration_ms": record["timing"]["duration_ms"],
           "finish_reason": record["finish_reason"], "error": record["error"]}
    gid = record.get("generation_id")
    if keep and gid is not None and not list(db.query(
            "SELECT 1 FROM generations WHERE id = ?", [gid])):
        row["id"] = gid
    generation_id = db["generations"].insert(row).last_pk
    db["verdicts"].insert_all(
        {"generation_id": generation_id, "judge": v["judge"], "meter": v["meter"],
         "part": v["part"], "passed": None if v["passed"] is None else int(v["passed"]),
         "label": v["label"], "score": v["score"], "detail_json": dumps(v["detail"]),
         "error": v["error"], "created_utc": v["created_utc"]} for v in record["verdicts"])
    db["turns"].insert_all(
        {"generation_id": generation_id, "turn": t["turn"], "actor": t["actor"],
         "messages_json": dumps(t["messages"]), "output": t["output"],
         "prompt_tokens": t["prompt_tokens"], "completion_tokens": t["completion_tokens"],
         "duration_ms": t["duration_ms"], "finish_reason": t["finish_reason"],
         "error": t["error"],
         "verdict_json": dumps(t["verdict"]) if t["verdict"] is not None else None}
        for t in record["turns"])
    db["labels"].insert_all(
        {"generation_id": generation_id, "meter": x["meter"], "passed": int(x["passed"]),
         "label": x["label"], "labeller": x["labeller"], "note": x["note"],
         "created_utc": x["created_utc"]} for x in record["labels"])
