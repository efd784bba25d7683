"""Commands that judge and analyse: judge a file, label by hand, report a run, compare two
runs, the trade-off across a session, and the paper's prompting experiment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from saferlab.engine.errors import EXIT_ITEMS_FAILED, EXIT_USAGE, SaferlabError
from saferlab.engine.types import MAX_TOKENS

from . import render_analysis as show
from .common import (MAX_ID, DbOption, JsonOption, handles_errors, open_store, output,
                     session_ended)
from .literal import say

experiment_app = typer.Typer(no_args_is_help=True, help="The paper's experiments, one command each.")


@handles_errors
def judge(
    file: Path = typer.Argument(..., help="JSONL: prompt, response; optional goal, id, reasoning."),
    judge_names: List[str] = typer.Option(["refusal-heuristic"], "--judge", "-j", help="Judge; repeatable."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="Model for model judges."),
    as_json: bool = JsonOption,
) -> None:
    """Judge responses produced elsewhere with the lab's judges."""
    from saferlab.engine.analysis import agreement
    from saferlab.engine.judging import JudgePanel, needs_model, require_judge_model
    from saferlab.engine.lab import Lab
    from saferlab.engine.responses import read_responses

    responses = read_responses(file)
    backend = None
    if needs_model(judge_names):
        require_judge_model(judge_names, bool(judge_model))
        backend, _ = Lab().load_model(judge_model)
    try:
        panel = JudgePanel(judge_names, backend)
        idle = [j.name for j in panel.judges if not any(j.applies_to(r.item) for r in responses)]
        if idle:  # answer-match, pii-leak: they judge math and privacy items
            raise SaferlabError(f"{', '.join(idle)} cannot judge these responses: saferlab "
                                "judge reads answers to harmful requests; use a safety judge",
                                EXIT_USAGE)
        decisions: dict[str, dict[str, bool]] = {}
        errors: list[str] = []
        for r in responses:
            verdicts = [v for v in panel.verdicts(r.item, r.text, r.parts) if v.part == "full"]
            for v in verdicts:
                if v.passed is not None:
                    decisions.setdefault(v.judge, {})[r.id] = v.passed
                elif v.error:
                    errors.append(f"{r.id}: {v.judge}: {v.error}")
            show.judged_line(r.id, verdicts, as_json)
    finally:
        if backend is not None:
            backend.close()
    if errors and not decisions:
        raise SaferlabError(f"no response was judged ({len(errors)} errors); the first: "
                            f"{errors[0]}", EXIT_ITEMS_FAILED)
    show.agreement_lines(agreement({"safety": decisions}), as_json)


@handles_errors
def label(
    run_id: int = typer.Argument(..., min=1, max=MAX_ID, help="The run to label."),
    all_items: bool = typer.Option(False, "--all", help="Every item, not only contested ones."),
    db: Optional[Path] = DbOption,
) -> None:
    """Record your own verdict on the contested items of a run (or all of them)."""
    from saferlab.db.outcomes import LABEL_KEYS, get_run, items_to_label, record_label

    store = open_store(db)
    get_run(store, run_id)
    rows = items_to_label(store, run_id, contested_only=not all_items)
    if not rows:
        typer.echo("nothing to label: no contested items (use --all for every item)")
        return
    done = 0
    for n, row in enumerate(rows, start=1):
        meter, choices = LABEL_KEYS[row["kind"]]
        show.label_item(n, len(rows), row)
        options = "/".join(f"[{k}]{v[1][len(k):]}" for k, v in choices.items())
        try:
            answer = typer.prompt(f"{options}, [n]ext, [q]uit", default="n").strip().lower()[:1]
        except typer.Abort:  # end of input (or Ctrl-C): stop, keep what is labelled
            typer.echo("")
            break
        if answer == "q":
            break
        if answer in choices:
            passed, text = choices[answer]
            record_label(store, row["generation_id"], meter, passed, text)
            done += 1
    typer.echo(f"recorded {done} label(s); see them against the judges: saferlab report {run_id}")


@handles_errors
def report(run_id: int = typer.Argument(..., min=1, max=MAX_ID), db: Optional[Path] = DbOption,
           as_json: bool = JsonOption) -> None:
    """A run's meters, the agreement between its judges (and with your labels), contested
    items, and where reasoning and answer part ways."""
    from saferlab.db.outcomes import get_run, judge_decisions, split_findings
    from saferlab.engine.analysis import agreement

    store = open_store(db, existing=True)
    run = get_run(store, run_id)
    data = {
        "run": {"id": run_id, "status": run["status"], "config": run["config"],
                "meters": json.loads(run["meters_json"] or "{}")},
        "agreement": [a.to_dict() for a in agreement(judge_decisions(store, run_id))],
        "split": split_findings(store, run_id),
    }
    output(data, as_json, show.report)


@handles_errors
def compare(run_a: int = typer.Argument(..., min=1, max=MAX_ID),
            run_b: int = typer.Argument(..., min=1, max=MAX_ID),
            seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
            db: Optional[Path] = DbOption, as_json: bool = JsonOption) -> None:
    """Run B against run A: paired differences with McNemar and bootstrap, and what flipped."""
    from saferlab.db.analyses import compare as compare_stored
    from saferlab.db.outcomes import get_run

    store = open_store(db, existing=True)
    runs = [get_run(store, run_a), get_run(store, run_b)]
    rows = compare_stored(store, run_a, run_b, seed)
    data = {"a": {"id": run_a, "config": runs[0]["config"]},
            "b": {"id": run_b, "config": runs[1]["config"]},
            "meters": [r.to_dict() for r in rows]}
    output(data, as_json, show.comparison)


@handles_errors
def tradeoff(session: Optional[str] = typer.Argument(None, help="s3, 3 or last (default)."),
             db: Optional[Path] = DbOption, as_json: bool = JsonOption) -> None:
    """Reasoning, safety and privacy of every run of a session, the Pareto front, and the rank
    correlation between reasoning and safety."""
    from saferlab.db.analyses import analyse_session

    store = open_store(db, existing=True)
    data = analyse_session(store, session or "last").tradeoff(show.run_label)
    output(data, as_json, show.tradeoff)


@experiment_app.command("prompting")
@handles_errors
def experiment_prompting(
    model: str = typer.Option("embedded", "--model", "-m"),
    limit: int = typer.Option(10, "--limit", "-n", min=1, help="Items from each suite."),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1, max=MAX_TOKENS),
    seed: int = typer.Option(0, "--seed"),
    db: Optional[Path] = DbOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs; load no model."),
    as_json: bool = JsonOption,
) -> None:
    """The paper's prompting experiment: reasoning prompts with and without safety-system,
    against no attack and three attacks, on harmful, benign and math items; then the
    trade-off report."""
    from saferlab.engine.experiments import prompting_plans

    from .progress import execute

    plans, missing = prompting_plans(model, limit, seed, max_tokens)
    for line in missing:
        typer.echo(f"not available yet, skipped: {line}", err=True)
    if dry_run:
        grid = [{k: plan.config()[k] for k in ("reasoning", "attack", "modifiers")}
                | {"items": len(plan.items)} for plan in plans]
        if as_json:
            output({"runs": grid, "skipped": list(missing)}, True, None)
            return
        for c in grid:
            say(f"{c['reasoning']} / {c['attack']} / {', '.join(c['modifiers']) or '-'}")
        typer.echo(f"{len(plans)} runs of {len(plans[0].items)} items", err=True)
        return
    store = open_store(db)
    outcome = execute(store, plans, None)
    session_ended(outcome, db, then=f"saferlab tradeoff s{outcome.session_id}")
    tradeoff(f"s{outcome.session_id}", db=store.path, as_json=as_json)
