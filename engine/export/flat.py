"""JSONL (the complete, importable form) and CSV (one flat row per generation)."""

from __future__ import annotations

import csv
import hashlib
import json
from typing import Any, TextIO

from . import ExportData
from .records import primary_labels

METERS = ("safety", "reasoning", "privacy", "over_refusal")


def write_jsonl(out: TextIO, data: ExportData) -> None:
    """The manifest, a line per record, and an end record: how many records and generations
    came before it and the sha256 of their lines, so that a file cut short or edited is
    refused on import."""
    out.write(json.dumps(data.manifest, ensure_ascii=False, sort_keys=True) + "\n")
    digest, records, generations = hashlib.sha256(), 0, 0
    for record in data.records(pending=True):
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        out.write(line)
        digest.update(line.encode("utf-8"))
        records += 1
        generations += record["record"] == "generation"
    out.write(json.dumps({"record": "end", "records": records, "generations": generations,
                          "sha256": digest.hexdigest()}, sort_keys=True) + "\n")


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str | None) -> str:
    """Text a spreadsheet must not run as a formula (model output is adversarial): cells
    that start like one get a leading apostrophe, as OWASP recommends."""
    if not text:
        return ""
    return "'" + text if text.startswith(_FORMULA) else text


def _verdict_column(judge: str, meter: str, part: str) -> str:
    return f"{judge}:{meter}" + ("" if part == "full" else f":{part}")


def write_csv(out: TextIO, data: ExportData) -> None:
    verdict_cols = [_verdict_column(*c) for c in data.verdict_columns]
    header = (["session_id", "run_id", "generation_id", "position", "model", "reasoning_prompt",
               "modifiers", "attack", "adapter", "item_key", "suite", "kind", "category",
               "prompt", "output", "reasoning_part", "answer_part", "split_how"]
              + [f"meter_{m}" for m in METERS] + verdict_cols
              + ["human_labels", "prompt_tokens", "completion_tokens", "ttft_ms", "duration_ms",
                 "finish_reason", "error", "created_utc", "messages_json", "cached"])
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180; newlines inside cells quoted
    writer.writerow(header)
    for r in data.records():
        run, item, split = r["run"], r["item"], r["split"] or {}
        primary = primary_labels(r)
        verdicts = {_verdict_column(v["judge"], v["meter"], v["part"]): v["label"]
                    for v in r["verdicts"]}
        row: list[Any] = [
            r["session_id"], r["run_id"], r["generation_id"], r["position"], run.get("model"),
            run.get("reasoning"), "+".join(run.get("modifiers") or []), run.get("attack"),
            run.get("adapter"), item["key"], item["suite"], item["kind"], item.get("category"),
            item["prompt"], r["output"], split.get("reasoning"), split.get("answer"),
            split.get("how"),
        ]
        row += [primary.get(m) for m in METERS]
        row += [verdicts.get(c) for c in verdict_cols]
        row += ["; ".join(f"{x['meter']}={x['label']}" for x in r["labels"]),
                r["tokens"]["prompt"], r["tokens"]["completion"], r["timing"]["ttft_ms"],
                r["timing"]["duration_ms"], r["finish_reason"], r["error"],
                r["timing"]["created_utc"], json.dumps(r["messages"], ensure_ascii=False),
                int(bool(r.get("cached")))]
        # Every text cell is guarded: a dataset's category can be a formula as well.
        writer.writerow([_cell(x) if isinstance(x, str) or x is None else x for x in row])
