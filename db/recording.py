"""The engine's Recorder over the database: sessions, runs, their items, every generation
with its verdicts and turns, and the answers the result cache serves."""

from __future__ import annotations

import json
from typing import Any, Sequence

from saferlab.engine.cache import CachedAnswer, CacheMark
from saferlab.engine.types import (FINISH_CANCELLED, GenerationResult, Item, Message, Meter,
                                   Turn, Verdict)

from .database import dumps, utc_now
from .registry import AdapterRegistry


class RunRecorder(AdapterRegistry):
    """Implements engine/recorder.py's Recorder (a run registers the adapters it uses)."""

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


def verdict_from_row(row: dict[str, Any]) -> Verdict:
    passed = row["passed"]
    return Verdict(row["judge"], row["meter"], None if passed is None else bool(passed),
                   row["label"], row["score"], json.loads(row["detail_json"] or "{}"),
                   row["error"], row.get("part") or "full")
