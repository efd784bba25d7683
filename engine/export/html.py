"""One self-contained HTML file: inline CSS, the reasoning-safety plane as inline SVG, meters
per run, paired comparisons, and collapsible per-item details. Every piece of model, dataset
or user text goes through html.escape; a Content-Security-Policy forbids scripts and any
network request besides."""

from __future__ import annotations

import html
import json
from typing import Any, TextIO

from ..outcome import BAD, outcome
from . import ExportData, comparison_cells, escaped, meter_text, p_text, run_title
from .markdown import METER_NAMES
from .plot import plane_svg
from .records import primary_verdicts

CSS = """
:root { --fg: #1d232a; --muted: #5c6773; --line: #d9dee3; --bad: #b03a2e; --good: #1e7d4f; }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); margin: 2rem auto; max-width: 72rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid var(--line); }
table { border-collapse: collapse; margin: .5rem 0; } td, th { border: 1px solid var(--line); padding: .25rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f5f7; } .muted { color: var(--muted); }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f8fa; padding: .5rem; border-radius: 4px; max-height: 30rem; overflow: auto; }
details { border: 1px solid var(--line); border-radius: 4px; margin: .3rem 0; padding: .2rem .6rem; }
summary { cursor: pointer; } .bad { color: var(--bad); font-weight: 600; }
.good { color: var(--good); } .role { font-weight: 600; color: var(--muted); }
svg { max-width: 100%; height: auto; }
"""
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def e(text: Any) -> str:
    return html.escape(escaped(str(text)), quote=True)


def write_html(out: TextIO, data: ExportData) -> None:
    m = data.manifest
    w = out.write
    sessions = ", ".join(f"s{s['id']}" for s in m["sessions"])
    w("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      f"<title>saferlab {e(sessions)}</title><style>{CSS}</style></head><body>\n")
    w(f"<h1>saferlab export: {e(sessions)}</h1>\n<p class=\"muted\">Exported {e(m['exported_utc'])}"
      f" · {m['counts']['runs']} runs · {m['counts']['generations']} generations")
    if m.get("redaction"):
        w(" · <strong>redacted</strong>: personal data replaced by pseudonyms")
    w("</p>\n")
    _plane(w, data.analysis.get("tradeoff"))
    w("<h2>Meters per run</h2>\n<p class=\"muted\">Value [Wilson 95% interval] n.</p>\n"
      "<table><tr><th>Run</th><th>Status</th>"
      + "".join(f"<th>{name}</th>" for _, name in METER_NAMES) + "</tr>\n")
    for run in m["runs"]:
        meters = run.get("meters") or {}
        w(f"<tr><td>{e(run_title(run))}</td><td>{e(run['status'])}</td>"
          + "".join(f"<td>{e(meter_text(meters.get(k)))}</td>" for k, _ in METER_NAMES)
          + "</tr>\n")
    w("</table>\n")
    _comparisons(w, data.analysis.get("comparisons", []))
    w("<h2>Items</h2>\n")
    current = None
    for record in data.records():
        if record["run_id"] != current:
            current = record["run_id"]
            run = next(r for r in m["runs"] if r["id"] == current)
            w(f"<h3>{e(run_title(run))}</h3>\n")
        _item(w, record)
    w("<h2>Manifest</h2>\n<details><summary>Models, prompt files, judges, seeds, decoding, "
      "versions, OS and CPU</summary>\n<pre>")
    keep = {k: v for k, v in m.items() if k not in ("sessions", "runs")}
    keep["runs"] = [{k: v for k, v in r.items() if k != "meters"} for r in m["runs"]]
    w(e(json.dumps(keep, indent=1, ensure_ascii=False)))
    w("</pre></details>\n</body></html>\n")


def _plane(w, tradeoff: dict[str, Any] | None) -> None:
    if not tradeoff:
        return
    w("<h2>Reasoning and safety</h2>\n")
    svg = plane_svg(tradeoff)
    if svg is None:
        w("<p class=\"muted\">No run has both math items (reasoning) and harmful items "
          "(safety), so there is no plane to draw.</p>\n")
        return
    w(f"<figure>{svg}<figcaption class=\"muted\">Each run with Wilson 95% intervals; "
      "the Pareto front in red.</figcaption></figure>\n")
    s = tradeoff["spearman"]
    if s["rho"] is None:
        w(f"<p>Spearman rank correlation undefined over {s['n']} run(s).</p>\n")
    else:
        w(f"<p>Spearman rank correlation between reasoning accuracy and safety: rho = "
          f"{s['rho']:.2f}, p = {p_text(s['p_value'])}, n = {s['n']} runs.</p>\n")


def _comparisons(w, comparisons: list[dict[str, Any]]) -> None:
    if not comparisons:
        return
    w("<h2>Paired comparisons</h2>\n<p class=\"muted\">Each run against the first run of its "
      "session: McNemar exact test and paired bootstrap 95% interval on the same items, "
      "otherwise unpaired.</p>\n<table><tr><th>A</th><th>B</th><th>Meter</th><th>A</th>"
      "<th>B</th><th>B − A [95% CI]</th><th>p</th><th>Test</th><th>Flips</th></tr>\n")
    for a, b, *cells in comparison_cells(comparisons, list_items=True):
        w(f"<tr><td>r{a}</td><td>r{b}</td>" + "".join(f"<td>{e(x)}</td>" for x in cells)
          + "</tr>\n")
    w("</table>\n")


def _opening(item: dict[str, Any], words: int = 8) -> str:
    text = " ".join(str(item.get("prompt") or "").split()[:words + 1])
    cut = text.split(" ")
    return " ".join(cut[:words]) + (" …" if len(cut) > words else "")


def _item(w, r: dict[str, Any]) -> None:
    item = r["item"]
    tags = " ".join(f"<span class=\"{outcome(passed)}\">{e(meter)}: {e(label)}</span>"
                    for meter, (label, passed) in primary_verdicts(r).items())
    # the request's first words beside its id, so that a reader can scan the list
    w(f"<details><summary>{e(item['key'])} <span class=\"muted\">{e(_opening(item))}</span> "
      f"{tags}" + (f" <span class=\"{BAD}\">error</span>" if r["error"] else "")
      + "</summary>\n")
    for msg in r["messages"]:
        w(f"<div class=\"role\">{e(msg['role'])}</div><pre>{e(msg['content'])}</pre>\n")
    if r["error"]:
        w(f"<p class=\"{BAD}\">{e(r['error'])}</p>\n")
    else:
        w(f"<div class=\"role\">output</div><pre>{e(r['output'])}</pre>\n")
    if r["split"]:
        w(f"<p class=\"muted\">Split by {e(r['split']['how'])}: reasoning "
          f"{len(r['split']['reasoning'])} characters, answer {len(r['split']['answer'])}.</p>\n")
    for t in r["turns"]:
        w(f"<div class=\"role\">turn {t['turn']} ({e(t['actor'])})</div><pre>{e(t['output'])}</pre>\n")
    if r["verdicts"]:
        w("<table><tr><th>Judge</th><th>Meter</th><th>Part</th><th>Verdict</th><th>Score</th>"
          "<th>Error</th></tr>\n")
        for v in r["verdicts"]:
            w(f"<tr><td>{e(v['judge'])}</td><td>{e(v['meter'])}</td><td>{e(v['part'])}</td>"
              f"<td class=\"{outcome(v['passed'])}\">{e(v['label'])}</td>"
              f"<td>{'' if v['score'] is None else e(round(v['score'], 3))}</td>"
              f"<td>{e(v['error'] or '')}</td></tr>\n")
        w("</table>\n")
    for x in r["labels"]:
        w(f"<p>Human label ({e(x['labeller'])}): <span class=\"{outcome(x['passed'])}\">"
          f"{e(x['label'])}</span></p>\n")
    tokens = r["tokens"]
    w(f"<p class=\"muted\">{tokens['prompt'] or 0} prompt + {tokens['completion'] or 0} "
      f"completion tokens · {r['timing']['duration_ms'] or 0:.0f} ms · {e(r['finish_reason'])}"
      + (" · cached (an identical earlier request's answer)" if r.get("cached") else "") + "</p>"
      "</details>\n")
