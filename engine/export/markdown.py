"""Markdown: meters per run with intervals, the paired comparisons, the trade-off and a short
sample of items; readable as a GitHub issue or a paper's appendix."""

from __future__ import annotations

import html
import json
import re
from typing import Any, TextIO

from . import ExportData, comparison_cells, escaped, meter_text, p_text, run_title
from .records import primary_labels

SAMPLE_PER_RUN = 2
SAMPLE_RUNS = 8
SNIPPET = 600
METER_NAMES = (("safety", "Safety"), ("reasoning", "Reasoning"), ("privacy", "Privacy"),
               ("over_refusal", "Over-refusal"))


def _cell(text: str) -> str:
    """Text for a table cell or heading: no raw HTML, no column breaks, one line."""
    text = html.escape(escaped(text), quote=False)
    return text.replace("|", "\\|").replace("\n", " ")


def _fenced(text: str) -> str:
    """A code block no text can close early: the fence is longer than any backtick run."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{escaped(text)}\n{fence}"


def _short(text: str) -> str:
    return text if len(text) <= SNIPPET else text[:SNIPPET] + f" … [{len(text) - SNIPPET} more characters]"


def write_markdown(out: TextIO, data: ExportData) -> None:
    m = data.manifest
    runs = m["runs"]
    w = out.write
    sessions = ", ".join(f"s{s['id']}" for s in m["sessions"])
    w(f"# saferlab export: {sessions}\n\n")
    w(f"Exported {m['exported_utc']} with saferlab "
      f"{m['exported_with']['libraries'].get('saferlab', '?')}: {m['counts']['runs']} runs, "
      f"{m['counts']['generations']} generations.")
    for model in m["models"]:
        v = model["value"]
        g = v.get("gguf") or {}
        desc = ", ".join(x for x in (g.get("quantization"), g.get("size_label")) if x)
        w(f" Model `{v['spec']}`" + (f" ({desc})" if desc else "")
          + (f", sha256 `{v['sha256'][:16]}…`" if v.get("sha256") else "") + ".")
    if m.get("redaction"):
        w(" **Redacted**: personal data replaced by pseudonyms such as `[email-1]`.")
    w("\n\n## Meters per run\n\nValue [Wilson 95% interval] n. Safety counts refusals of "
      "harmful requests; over-refusal counts refusals of benign ones.\n\n")
    w("| Run | Status | " + " | ".join(name for _, name in METER_NAMES) + " |\n")
    w("|---|---|" + "---|" * len(METER_NAMES) + "\n")
    for run in runs:
        meters = run.get("meters") or {}
        w(f"| {_cell(run_title(run))} | {run['status']} | "
          + " | ".join(meter_text(meters.get(k)) for k, _ in METER_NAMES) + " |\n")
    _tradeoff(w, data.analysis.get("tradeoff"))
    _comparisons(w, data.analysis.get("comparisons", []), {r["id"]: r for r in runs})
    _sample(w, data)
    w("\n## Manifest\n\n<details><summary>Models, prompt files, judges, seeds, decoding, "
      "versions, OS and CPU</summary>\n\n")
    keep = {k: m[k] for k in ("models", "adapters", "prompt_files", "judges", "seeds",
                               "decoding", "recorded_with", "exported_with", "redaction")}
    w(_fenced(json.dumps(keep, indent=1, ensure_ascii=False)).replace("```text", "```json", 1))
    w("\n\n</details>\n")


def _tradeoff(w, tradeoff: dict[str, Any] | None) -> None:
    if not tradeoff:
        return
    s = tradeoff["spearman"]
    w("\n## Reasoning and safety\n\n")
    if s["rho"] is None:
        w(f"Spearman rank correlation undefined over {s['n']} run(s) with both meters "
          "(it needs 3 or more runs whose meters vary).")
    else:
        w(f"Spearman rank correlation between reasoning accuracy and safety across "
          f"{s['n']} runs: rho = {s['rho']:.2f} (p = {p_text(s['p_value'])}).")
    if tradeoff["pareto"]:
        w(" Pareto front (no run is both safer and better at reasoning): "
          + ", ".join(f"r{i}" for i in tradeoff["pareto"]) + ".")
    w("\n")


def _comparisons(w, comparisons: list[dict[str, Any]], runs: dict[int, Any]) -> None:
    if not comparisons:
        return
    w("\n## Paired comparisons\n\nEach run against the first run of its session. Paired "
      "runs (same items): McNemar exact test and paired bootstrap 95% interval; otherwise "
      "unpaired (Newcombe interval, two-proportion z test).\n\n")
    w("| A | B | Meter | A | B | B − A [95% CI] | p | Test | Flips |\n"
      "|---|---|---|---|---|---|---|---|---|\n")
    for a, b, *cells in comparison_cells(comparisons):
        w(f"| r{a} | {_cell(run_title(runs[b]))} | " + " | ".join(cells) + " |\n")


def _sample(w, data: ExportData) -> None:
    w(f"\n## Sample of items\n\nThe first {SAMPLE_PER_RUN} generations of "
      f"{'each' if len(data.manifest['runs']) <= SAMPLE_RUNS else f'the first {SAMPLE_RUNS}'} "
      "run(s).\n")
    for record in data.records(per_run=SAMPLE_PER_RUN, max_runs=SAMPLE_RUNS):
        item = record["item"]
        labels = ", ".join(f"{k}: {v}" for k, v in primary_labels(record).items())
        w(f"\n### r{record['run_id']} · {_cell(item['key'])}"
          + (f" · {_cell(labels)}" if labels else "") + "\n\n")
        w("Prompt:\n\n" + _fenced(_short(record["messages"][-1]["content"]
                                         if record["messages"] else item["prompt"])) + "\n\n")
        if record["error"]:
            w(f"Error: {_cell(record['error'])}\n")
        else:
            w("Output:\n\n" + _fenced(_short(record["output"])) + "\n")
