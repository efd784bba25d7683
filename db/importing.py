"""Loading an exported JSONL file back into a database: all of it in one transaction, or
nothing."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any, Iterator

from saferlab.engine.errors import EXIT_USAGE, SaferlabError
from saferlab.engine.export.records import FORMAT_NAME, FORMAT_VERSION
from saferlab.engine.jsontext import parse_json
from saferlab.engine.suites import KINDS
from saferlab.engine.types import DecodingParams, Item

from .exchange import RUN_COLUMNS, marks
from .queries import MAX_ID
from .store import Store, dumps


class _Lines:
    """An exported JSONL file, line by line, with errors that name the line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.number = 0
        # over the record lines between the manifest and the end record, as the export wrote
        self.digest, self.records = hashlib.sha256(), 0

    def fail(self, message: str) -> SaferlabError:
        where = f"{self.path} line {self.number}" if self.number else str(self.path)
        return SaferlabError(f"{where}: {message}", EXIT_USAGE)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            f = self.path.open("rb")  # decoded line by line, so a bad byte names its line
        except OSError as exc:
            raise SaferlabError(f"cannot read {self.path}: {exc.strerror}", EXIT_USAGE) from None
        with f:
            for self.number, raw in enumerate(f, start=1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise self.fail("not UTF-8 text") from None
                if not line.strip():
                    continue
                try:
                    record = parse_json(line)
                except ValueError as exc:
                    raise self.fail(str(exc)) from None
                if not isinstance(record, dict) or "record" not in record:
                    raise self.fail("not a saferlab export record (no 'record' field)")
                if record["record"] not in ("manifest", "end"):
                    self.digest.update(raw)
                    self.records += 1
                yield record


def _need(lines: _Lines, record: dict[str, Any], *keys: str) -> None:
    missing = [k for k in keys if k not in record]
    if missing:
        raise lines.fail(f"{record.get('record')} record lacks {', '.join(missing)}")


def _free(store: Store, table: str, ids: list[int]) -> bool:
    return not ids or not list(store.query(
        f"SELECT 1 FROM {table} WHERE id IN ({marks(ids)}) LIMIT 1", ids))


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
    version = manifest.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise lines.fail(f"the manifest's format_version is not a version: {version!r}")
    if version > FORMAT_VERSION:
        raise lines.fail(f"export format {version} is newer than this "
                         f"saferlab reads ({FORMAT_VERSION}); upgrade saferlab")
    _need(lines, manifest, "sessions", "runs")
    _check_manifest(lines, manifest)
    # A session already here (an earlier import of another of its runs) gets the new runs;
    # a run already here is refused, so nothing is imported twice.
    existing: dict[int, int] = {}
    for session in manifest["sessions"]:
        dup = list(store.query("SELECT id FROM sessions WHERE created_utc = ? AND config_json = ?",
                               [session["created_utc"], dumps(session["config"])]))
        if dup:
            existing[session["id"]] = dup[0]["id"]
    for run in manifest["runs"]:
        dup = list(store.query("SELECT id FROM runs WHERE created_utc = ? AND config_json = ?",
                               [run["created_utc"], dumps(run["config"])]))
        if dup:
            raise SaferlabError(f"{path}: run {run['id']} is already in {store.path} as run "
                                f"{dup[0]['id']}; nothing imported", EXIT_USAGE)
    keep = (_free(store, "sessions", [s["id"] for s in manifest["sessions"]
                                      if s["id"] not in existing])
            and _free(store, "runs", [r["id"] for r in manifest["runs"]]))
    session_map: dict[int, int] = dict(existing)
    run_map: dict[int, int] = {}
    counts = {"sessions": 0, "runs": 0, "generations": 0, "pending": 0}
    db = store.db
    try:
        with store.transaction():
            for s in manifest["sessions"]:
                if s["id"] in existing:
                    continue
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
                # the training that made an adapter is the exporting database's, not this one's
                db["adapters"].insert({k: v for k, v in a.items() if k != "training_id"},
                                      ignore=True)
            end = None
            for record in records:
                kind = record["record"]
                if end is not None:
                    raise lines.fail("a record after the end record; nothing imported")
                if kind == "end":
                    end = record
                    continue
                if kind not in ("generation", "pending"):
                    raise lines.fail(f"unknown record type {kind!r}")
                _need(lines, record, "run_id", "position", "item", "planned_messages")
                if not _is_id(record["position"], low=0):
                    raise lines.fail("position must be a whole number; nothing imported")
                if record["planned_messages"] is not None \
                        and not _are_messages(record["planned_messages"]):
                    raise lines.fail("planned_messages must be a list of messages (role, "
                                     "content); nothing imported")
                if record["run_id"] not in run_map:
                    raise lines.fail(f"run {record['run_id']} is not in the manifest")
                run_id = run_map[record["run_id"]]
                item_id = _insert_item(db, lines, record["item"])
                planned = record["planned_messages"]
                if kind == "generation":
                    _need(lines, record, "messages", "output", "verdicts", "turns", "labels",
                          "tokens", "timing", "finish_reason", "error")
                    problem = _generation_problem(record)
                    if problem:
                        raise lines.fail(f"{problem}; nothing imported")
                    if planned is None:
                        planned = record["messages"]
                    _insert_generation(db, record, run_id, item_id, keep)
                    counts["generations"] += 1
                else:
                    counts["pending"] += 1
                db["run_items"].insert({"run_id": run_id, "position": record["position"],
                                        "item_id": item_id, "messages_json": dumps(planned)})
            _check_whole(lines, manifest, end, counts["generations"])
    except sqlite3.IntegrityError as exc:
        raise lines.fail(f"does not fit the database ({exc}); nothing imported") from None
    except (KeyError, TypeError, AttributeError, ValueError, OverflowError) as exc:
        raise lines.fail(f"malformed record ({type(exc).__name__}: {exc}); nothing imported") from None
    return {"sessions": {old: new for old, new in session_map.items()},
            "runs": {old: new for old, new in run_map.items()},
            "counts": counts, "redacted": bool(manifest.get("redaction"))}


def _is_id(value: Any, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= MAX_ID


def _optional(value: Any, kind: type) -> bool:
    return value is None or (isinstance(value, kind) and not isinstance(value, bool))


def _are_messages(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
        and isinstance(m.get("content"), str) for m in value)


def _config_problem(config: dict[str, Any]) -> str | None:
    """What keeps a run's configuration from being run again or analysed, if anything."""
    for key in ("model", "reasoning", "attack"):
        if not isinstance(config.get(key), str):
            return f"{key} must be text"
    for key in ("suites", "judges", "modifiers"):
        value = config.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"{key} must be a list of names"
    try:
        DecodingParams.from_dict(config.get("decoding") or {})
    except (SaferlabError, TypeError, ValueError) as exc:
        return f"decoding: {exc}"
    return None


def _generation_problem(record: dict[str, Any]) -> str | None:
    """What in a generation record is of the wrong type, if anything."""
    if not _are_messages(record["messages"]):
        return "messages must be a list of messages (role, content)"
    if not _optional(record["output"], str) or not _optional(record["error"], str):
        return "output and error must be text or null"
    tokens, timing = record["tokens"], record["timing"]
    if not isinstance(tokens, dict) or not all(_optional(tokens.get(k), int)
                                               for k in ("prompt", "completion")):
        return "tokens must hold whole numbers"
    if not isinstance(timing, dict) or not isinstance(timing.get("created_utc"), str):
        return "timing must hold created_utc as text"
    if record.get("generation_id") is not None and not _is_id(record["generation_id"]):
        return "generation_id must be a whole number"
    for v in record["verdicts"]:
        if not isinstance(v, dict) or not (v.get("passed") is None
                                           or isinstance(v.get("passed"), bool)):
            return "a verdict's passed must be true, false or null"
    for x in record["labels"]:
        if not isinstance(x, dict) or not isinstance(x.get("passed"), bool):
            return "a label's passed must be true or false"
    return None


def _check_manifest(lines: _Lines, manifest: dict[str, Any]) -> None:
    """The manifest's sessions and runs have the fields and types the import reads."""
    def bad(what: str) -> SaferlabError:
        return lines.fail(f"malformed manifest: {what}; nothing imported")

    sessions, runs = manifest["sessions"], manifest["runs"]
    if not isinstance(sessions, list) or not isinstance(runs, list):
        raise bad("sessions and runs must be lists")
    for kind, entries, keys in (("session", sessions, ("id", "created_utc", "finished_utc",
                                                       "status", "config")),
                                ("run", runs, (*RUN_COLUMNS, "config", "meters"))):
        for n, entry in enumerate(entries, start=1):
            if not isinstance(entry, dict):
                raise bad(f"{kind} {n} is not an object")
            missing = [k for k in keys if k not in entry]
            if missing:
                raise bad(f"{kind} {n} lacks {', '.join(missing)}")
            if not _is_id(entry["id"]) or not isinstance(entry["config"], dict) \
                    or not isinstance(entry["created_utc"], str) \
                    or not isinstance(entry["status"], str):
                raise bad(f"{kind} {n}: id, created_utc, status or config of the wrong type")
            if kind == "run":
                problem = _config_problem(entry["config"])
                if problem:
                    raise bad(f"run {entry['id']}: config: {problem}")
    ids = {s["id"] for s in sessions}
    for run in runs:
        if run["session_id"] not in ids:
            raise bad(f"run {run['id']} belongs to session {run['session_id']!r}, not in it")
        if run["meters"] is not None and not isinstance(run["meters"], dict):
            raise bad(f"run {run['id']}: meters must be an object")


def _check_whole(lines: _Lines, manifest: dict[str, Any], end: dict[str, Any] | None,
                 generations: int) -> None:
    """The file is the one exported: as many generations as its manifest counts and, from
    format 2 on, the records its end record counts and digests (raises inside the import's
    transaction, so a short or altered file imports nothing)."""
    lines.number = 0  # the message is about the whole file
    expected = (manifest.get("counts") or {}).get("generations")
    if expected is not None and expected != generations:
        raise lines.fail(f"holds {generations} generation(s), its manifest counts {expected}: "
                         "cut short or altered; nothing imported")
    if end is None:
        if manifest.get("format_version", 1) >= 2:
            raise lines.fail("has no end record: cut short; nothing imported")
        return
    if (end.get("records"), end.get("generations")) != (lines.records, generations) \
            or end.get("sha256") != lines.digest.hexdigest():
        raise lines.fail("its records do not match its end record (count or sha256): "
                         "cut short or altered; nothing imported")


def _insert_item(db, lines: _Lines, item: dict[str, Any]) -> str:
    body = {k: v for k, v in item.items() if k != "id"}
    for key in ("key", "suite", "kind", "prompt"):
        if not isinstance(body.get(key), str):
            raise lines.fail(f"item lacks {key} (text)" if key not in body
                             else f"item {key} must be text")
    if body["kind"] not in KINDS:
        raise lines.fail(f"item kind must be one of {', '.join(KINDS)}, not {body['kind']!r}")
    try:
        # The id is a digest of the content, made again here: a redacted or edited item then
        # gets an id of its own and never poses as the original.
        item_id = Item.from_dict(body).id
    except (TypeError, ValueError) as exc:
        raise lines.fail(f"malformed item ({exc})") from None
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
           "finish_reason": record["finish_reason"], "error": record["error"],
           "cached": int(bool(record.get("cached")))}
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
