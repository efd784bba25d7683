"""Tables for the terminal. Every cell is a rich Text, so nothing from a model, a dataset or a
user-named file is ever read as markup."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .literal import LiteralConsole, say

METERS = ("safety", "reasoning", "privacy", "over_refusal")
SHORT = ("run", "done", "status", "pareto", "worse", "better")


def console() -> Console:
    """stdout; when it is a file or a pipe, wide enough that tables of meters never wrap."""
    plain = LiteralConsole()
    return plain if plain.is_terminal else LiteralConsole(width=200)


def run_row(outcome: Any, session_id: int) -> dict[str, Any]:
    return {
        "id": outcome.run_id, "session_id": session_id, "status": outcome.status,
        "config": outcome.config,
        "meters": {k: m.to_dict() for k, m in outcome.meters.items()},
        "generated": outcome.generated, "items": outcome.total,
        "completion_tokens": outcome.completion_tokens,
        "tokens_per_s": (round(outcome.completion_tokens * 1000 / outcome.elapsed_ms, 1)
                         if outcome.elapsed_ms and outcome.completion_tokens else None),
        "error": outcome.error, "errors": outcome.errors, "cached": outcome.cached,
    }


def status_label(status: str, errors: int | None) -> str:
    """A run's status, with how many of its items failed (stored; --resume retries them)."""
    return f"{status} with {errors} error{'s' if errors != 1 else ''}" if errors else status


def status_cell(status: str, errors: int | None) -> Text:
    return Text(status_label(status, errors), style="yellow" if errors else "")


def meter_cell(meter: dict[str, Any] | None) -> Text:
    if not meter or not meter.get("n"):
        return Text("-", style="dim")
    return Text(f"{meter['value']:.2f} n={meter['n']}\n[{meter['low']:.2f},{meter['high']:.2f}]")


def table_of(title: str | None, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for c in columns:
        # Meters are the point of every table: never wrap them, squeeze the rest instead.
        table.add_column(c, no_wrap=c in METERS or c in SHORT,
                         min_width=len(c) if c in SHORT else None)
    return table


def shown_meters(rows: list[dict[str, Any]]) -> list[str]:
    """The meters some row has a value for; all of them when none has."""
    shown = [m for m in METERS if any((r["meters"].get(m) or {}).get("n") for r in rows)]
    return shown or list(METERS[:3])


def meters_table(console: Console, rows: list[dict[str, Any]], title: str) -> None:
    meters = shown_meters(rows)
    adapters = any(r["config"].get("adapter") for r in rows)
    modifiers = any(r["config"].get("modifiers") for r in rows)
    table = table_of(title, "run", "prompt", "attack", *(["modifiers"] if modifiers else []),
                     *(["adapter"] if adapters else []), "status", *meters)
    for r in rows:
        c = r["config"]
        table.add_row(Text(str(r["id"])), Text(c["reasoning"]), Text(c["attack"]),
                      *([Text("+".join(c.get("modifiers") or []) or "-")] if modifiers else []),
                      *([Text(c.get("adapter") or "-")] if adapters else []),
                      status_cell(r["status"], r.get("errors")),
                      *(meter_cell(r["meters"].get(m)) for m in meters))
    console.print(table)
    console.print(Text("meter: value, n, [Wilson 95% interval]; safety = 1 - attack success "
                       "rate, reasoning = accuracy, privacy = 1 - leak rate, over_refusal = "
                       "share of benign items refused", style="dim"))


def runs_table(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print(Text("no runs yet: try saferlab run --limit 5"))
        return
    meters = shown_meters(rows)
    adapters = any(r.get("adapter") for r in rows)
    modifiers = any(r.get("modifiers") for r in rows)
    table = table_of(None, "run", "model", "prompt", "attack",
                     *(["modifiers"] if modifiers else []),
                     *(["adapter"] if adapters else []), "done", "status", *meters)
    for r in rows:
        table.add_row(Text(f"{r['id']} s{r['session_id']}"), Text(r["model"]),
                      Text(r["reasoning"]), Text(r["attack"]),
                      *([Text("+".join(r.get("modifiers") or []) or "-")] if modifiers else []),
                      *([Text(r.get("adapter") or "-")] if adapters else []),
                      Text(f"{r['generated']}/{r['items']}"),
                      status_cell(r["status"], r.get("errors")),
                      *(meter_cell(r["meters"].get(m)) for m in meters))
    console.print(table)


def models_table(console: Console, rows: list[dict[str, Any]]) -> None:
    table = table_of(None, "spec", "name", "size", "path")
    for r in rows:
        size = f"{r['size_bytes'] / 1e6:.0f} MB" if r.get("size_bytes") else "-"
        table.add_row(Text(r["spec"]), Text(r["name"]), Text(size),
                      Text(r.get("path") or r.get("error", "")))
    console.print(table)


def catalog_tables(console: Console, data: dict[str, list[dict[str, Any]]]) -> None:
    for section, entries in data.items():
        table = table_of(section.replace("_", " "), "name", "description", "citation")
        for e in entries:
            table.add_row(Text(e["name"]), Text(e.get("description", "")),
                          Text(e.get("citation", "") or ""))
        if not entries:
            table.add_row(Text("-", style="dim"), Text("none yet", style="dim"), Text(""))
        console.print(table)


def dry_run(plans: list[Any], as_json: bool) -> None:
    """The items and the exact first messages of each run, as `run --dry-run` prints them.
    Plain text, never markup: requests and prompts are shown exactly as they would be sent."""
    from saferlab.engine.protocols import first_turn

    runs = []
    for plan in plans:
        recipe = plan.get_recipe()
        items = []
        for p in plan.items:
            actor, messages = first_turn(recipe, p.item, p.messages)
            items.append({"id": p.item.id, "key": p.item.key, "suite": p.item.suite,
                          "kind": p.item.kind, "actor": actor,
                          "messages": [m.to_dict() for m in messages]})
        runs.append({"config": plan.config(), "items": items})
    if as_json:
        # On a terminal, non-ASCII is escaped (C1 and bidi controls among it); in a file or a
        # pipe it stays as it is.
        print(json.dumps({"runs": runs}, indent=2, ensure_ascii=sys.stdout.isatty()))
        return
    for n, run in enumerate(runs, start=1):
        c = run["config"]
        mods = ", ".join(c["modifiers"]) or "no modifiers"
        say(f"=== run {n}: {c['reasoning']} / {c['attack']} / {mods} "
            f"({len(run['items'])} items, {c['protocol']})")
        for item in run["items"]:
            say(f"--- {item['key']} ({item['kind']}) -> {item['actor']}")
            for m in item["messages"]:
                say(f"[{m['role']}]")
                say(m["content"])
        say("")


def adapters_table(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print(Text("no adapters yet: saferlab finetune, saferlab adapters add PATH, or "
                           "run with --adapter PATH"))
        return
    table = table_of(None, "name", "kind", "from", "use as", "base model", "sha256", "path")
    for r in rows:
        origin = r.get("origin") or "file"
        if r.get("training_id"):
            origin += f" t{r['training_id']}"
        table.add_row(Text(r["name"]), Text(r["kind"]), Text(origin),
                      Text(r.get("use_as") or r["name"]), Text(r["base_model"] or "-"),
                      Text((r["sha256"] or "-")[:12]), Text(r["path"]))
    console.print(table)
