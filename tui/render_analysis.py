"""Terminal output of the analysis commands. Cells are rich Text: nothing from a model or a
dataset is read as markup."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from .literal import say
from .render import table_of


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def run_label(run: dict[str, Any]) -> str:
    """A run's name, as the lab and the exports write it."""
    from saferlab.engine.export import config_title

    return config_title(run["config"])


def judged_line(rid: str, verdicts: list, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({"id": rid, "verdicts": {
            v.judge: {"jailbroken": None if v.passed is None else not v.passed, "error": v.error}
            for v in verdicts}}))
    else:
        say(f"{rid}\t" + "\t".join(f"{v.judge}={v.label}" for v in verdicts))


def agreement_lines(pairs: list, as_json: bool) -> None:
    """After the verdicts: on stderr with --json, so stdout stays one object a line."""
    for a in pairs:
        line = (f"agreement {a.judge_a} ~ {a.judge_b}: {_fmt(a.percent and a.percent * 100, 1)}% "
                f"kappa {_fmt(a.kappa)} over {a.n} (contested: {len(a.contested)})")
        typer.echo(line, err=as_json)


def label_item(n: int, total: int, row: dict[str, Any]) -> None:
    say(f"\n=== {n}/{total} {row['key']} ({row['kind']})")
    say("--- request")
    say(row["prompt"])
    say("--- response")
    say(row["output"])
    say("--- judges: " + ", ".join(
        f"{v['judge']}={v['label']}" + ("" if v["part"] == "full" else f" ({v['part']})")
        for v in row["verdicts"]))


def report(console: Console, data: dict[str, Any]) -> None:
    run = data["run"]
    console.print(Text(f"run {run['id']} ({run['status']}): {run_label(run)}"))
    table = table_of("meters", "meter", "value", "interval", "n")
    for name, m in run["meters"].items():
        if m.get("n"):
            table.add_row(Text(name), Text(_fmt(m["value"])),
                          Text(f"[{_fmt(m['low'])}, {_fmt(m['high'])}]"), Text(str(m["n"])))
    console.print(table)
    table = table_of("agreement between judges", "meter", "judges", "n", "agree", "kappa",
                   "contested")
    for a in data["agreement"]:
        shown = ", ".join(a["contested"][:6]) + (" ..." if len(a["contested"]) > 6 else "")
        table.add_row(Text(a["meter"]), Text(f"{a['judge_a']} ~ {a['judge_b']}"), Text(str(a["n"])),
                      Text(_fmt(a["percent"])), Text(_fmt(a["kappa"])), Text(shown or "-"))
    console.print(table if data["agreement"] else Text("one judge per meter: no agreement to show"))
    for name, keys in data["split"].items():
        console.print(Text(f"{name}: {len(keys)}" + (f" ({', '.join(keys[:8])})" if keys else "")))


def comparison(console: Console, data: dict[str, Any]) -> None:
    console.print(Text(f"A = run {data['a']['id']}: {run_label(data['a'])}"))
    console.print(Text(f"B = run {data['b']['id']}: {run_label(data['b'])}"))
    table = table_of(None, "meter", "A", "B", "B - A", "95% interval", "p", "worse", "better")
    for m in data["meters"]:
        worse, better = (list(m["flips"].values()) + [[], []])[:2] if m["paired"] else (None, None)
        table.add_row(Text(m["meter"]), Text(_fmt(m["a"])), Text(_fmt(m["b"])),
                      Text(_fmt(m["diff"])), Text(f"[{_fmt(m['low'], 2)},{_fmt(m['high'], 2)}]"),
                      Text(_fmt(m["p_value"], 4)),
                      Text("-" if worse is None else str(len(worse))),
                      Text("-" if better is None else str(len(better))))
    console.print(table)
    tests = sorted({m["test"] for m in data["meters"]})
    console.print(Text(f"test: {', '.join(tests)}; worse/better: items that flipped from A to B"
                       + ("; different items, so compared unpaired" if "mcnemar-exact" not in tests
                          else ""), style="dim"))
    for m in data["meters"]:
        for kind, keys in m["flips"].items():
            if keys:
                console.print(Text(f"{m['meter']} {kind}: {', '.join(keys)}"))


def tradeoff(console: Console, data: dict[str, Any]) -> None:
    shown = [k for k in ("reasoning", "safety", "privacy", "over_refusal")
             if any(r["meters"][k]["n"] for r in data["runs"])]
    table = table_of(f"session s{data['session_id']}: the reasoning-safety trade-off", "run",
                     "configuration", *shown, "pareto")

    def cell(m: dict[str, Any]) -> Text:
        return Text("-" if not m["n"] else f"{m['value']:.2f} n={m['n']}\n[{m['low']:.2f},{m['high']:.2f}]")

    for r in data["runs"]:
        table.add_row(Text(str(r["run_id"])), Text(r["label"]),
                      *(cell(r["meters"][k]) for k in shown),
                      Text("*" if r["pareto"] else ""))
    console.print(table)
    s = data["spearman"]
    why = ""
    if s["rho"] is None:
        why = (" (needs 3 runs with both meters)" if s["n"] < 3
               else " (undefined: a meter has the same value in every run)")
    console.print(Text(f"Spearman rho(reasoning, safety) = {_fmt(s['rho'])}, p = "
                       f"{_fmt(s['p_value'], 4)}, over {s['n']} runs{why}"))
