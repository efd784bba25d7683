"""The export record: one generation as a self-describing JSON object, built from stored rows.
Every other format (CSV, Markdown, HTML) reads these records, so all formats agree."""

from __future__ import annotations

import json
from typing import Any

from ..split import split_output
from .redact import Redactor

FORMAT_NAME = "saferlab-export"
FORMAT_VERSION = 2  # 2: the file ends with an end record (counts and digest)
# The configuration every generation line repeats; the full one is in the manifest.
RUN_KEYS = ("model", "reasoning", "modifiers", "attack", "adapter", "suites", "judges",
            "judge_model", "seed", "decoding", "protocol")


class RunContext:
    """What the records of one run share: its configuration and its attack's decoder (the
    judges saw decoded text, and the reasoning/answer split is made on what they saw)."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.run_id = run["id"]
        self.session_id = run["session_id"]
        config = run["config"]
        self.summary = {"id": run["id"], **{k: config.get(k) for k in RUN_KEYS}}
        self.protocol = config.get("protocol", "single")
        self._decode = _decoder(config.get("attack", "none"))

    def decode(self, text: str) -> str:
        return self._decode(text)


def _decoder(attack: str):
    try:
        from ..attacks import get_attack

        return get_attack(attack).decode
    except Exception:  # an attack this installation does not know: judge what was written
        return lambda text: text


def _loads(text: str | None, default: Any = None) -> Any:
    return json.loads(text) if text else default


def _item(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["item_id"], **json.loads(row["item_json"])}


def generation_record(run: RunContext, row: dict[str, Any],
                      redactor: Redactor | None = None) -> dict[str, Any]:
    """The export record of one stored generation (a row of db.exchange.iter_generation_rows)."""
    messages = json.loads(row["messages_json"])
    planned = _loads(row.get("planned_json"))
    turns = [{"turn": t["turn"], "actor": t["actor"], "messages": json.loads(t["messages_json"]),
              "output": t["output"], "prompt_tokens": t["prompt_tokens"],
              "completion_tokens": t["completion_tokens"], "duration_ms": t["duration_ms"],
              "finish_reason": t["finish_reason"], "error": t["error"],
              "verdict": _loads(t["verdict_json"])} for t in row["turns"]]
    split = None
    if row["error"] is None:
        first = None
        targets = [t for t in turns if t["actor"] == "target"]
        if run.protocol == "self-reflect" and len(targets) == 2:
            first = run.decode(targets[0]["output"])
        parts = split_output(run.decode(row["output"]), first)
        if parts is not None:
            split = {"reasoning": parts.reasoning, "answer": parts.answer, "how": parts.how}
    record = {
        "record": "generation",
        "session_id": run.session_id,
        "run_id": run.run_id,
        "generation_id": row["id"],
        "position": row["position"],
        "run": run.summary,
        "item": _item(row),
        "messages": messages,
        # What the plan said before the conversation unfolded; null when the same.
        "planned_messages": None if planned == messages else planned,
        "output": row["output"],
        "split": split,
        "verdicts": [{"judge": v["judge"], "meter": v["meter"], "part": v["part"],
                      "passed": None if v["passed"] is None else bool(v["passed"]),
                      "label": v["label"], "score": v["score"],
                      "detail": _loads(v["detail_json"], {}), "error": v["error"],
                      "created_utc": v["created_utc"]} for v in row["verdicts"]],
        "labels": [{"meter": x["meter"], "passed": bool(x["passed"]), "label": x["label"],
                    "labeller": x["labeller"], "note": x["note"],
                    "created_utc": x["created_utc"]} for x in row["labels"]],
        "turns": turns,
        "tokens": {"prompt": row["prompt_tokens"], "completion": row["completion_tokens"]},
        "timing": {"created_utc": row["created_utc"], "ttft_ms": row["ttft_ms"],
                   "duration_ms": row["duration_ms"]},
        "finish_reason": row["finish_reason"],
        "error": row["error"],
        # Answered from the result cache (an identical earlier request), not decoded.
        "cached": bool(row.get("cached")),
    }
    return _redacted(record, redactor)


def pending_record(run: RunContext, row: dict[str, Any],
                   redactor: Redactor | None = None) -> dict[str, Any]:
    """A planned item of an unfinished run, so an import can be resumed."""
    record = {"record": "pending", "session_id": run.session_id, "run_id": run.run_id,
              "position": row["position"], "run": run.summary, "item": _item(row),
              "planned_messages": json.loads(row["planned_json"])}
    return _redacted(record, redactor)


# Fields whose text came from models, datasets or people; the rest is configuration.
_TEXT_FIELDS = ("item", "messages", "planned_messages", "output", "split", "turns", "labels")


def _redacted(record: dict[str, Any], redactor: Redactor | None) -> dict[str, Any]:
    if redactor is None:
        return record
    for key in _TEXT_FIELDS:
        if key in record:
            record[key] = redactor.value(record[key])
    if record.get("error"):
        record["error"] = redactor.text(record["error"])
    for v in record.get("verdicts", []):
        v["detail"] = redactor.value(v["detail"])
        if v["error"]:
            v["error"] = redactor.text(v["error"])  # a judge's error may quote the output
    return record


def primary_verdicts(record: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """{meter: (label, passed)} by each meter's primary judge (first in the run's judge list
    that decided) over the full output."""
    order = {name: i for i, name in enumerate(record["run"].get("judges") or [])}
    best: dict[str, tuple[int, str, bool]] = {}
    for v in record.get("verdicts", []):
        if v["part"] != "full" or v["passed"] is None:
            continue
        rank = order.get(v["judge"], len(order))
        if v["meter"] not in best or rank < best[v["meter"]][0]:
            best[v["meter"]] = (rank, v["label"], v["passed"])
    return {meter: (label, passed) for meter, (_, label, passed) in best.items()}


def primary_labels(record: dict[str, Any]) -> dict[str, str]:
    return {meter: label for meter, (label, _) in primary_verdicts(record).items()}
