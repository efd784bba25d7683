"""Fine-tuning commands: ``saferlab finetune`` (train one LoRA adapter), ``saferlab trainings``
(what was trained), and ``saferlab experiment finetune`` (the paper's second half)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from saferlab.engine.errors import EXIT_CANCELLED, EXIT_USAGE, SaferlabError
from saferlab.engine.types import MAX_TOKENS

from .common import DbOption, JsonOption, handles_errors, open_store, output, session_ended
from .literal import say

DatasetsOption = typer.Option(
    None, "--datasets", help="A folder of public datasets (AdvBench is read from "
    "advbench/harmful_behaviors.csv in it; evaluation sets in it are kept out of training). "
    "Default: $SAFERLAB_DATASETS.", envvar="SAFERLAB_DATASETS")


@handles_errors
def finetune(
    model: str = typer.Option("embedded", "--model", "-m", help="embedded, gguf:PATH or hf:MODEL_OR_DIR[#FILE.gguf] (loaded through transformers)."),
    data: str = typer.Option("cot", "--data", help="Reasoning data: none, direct, cot or long-cot."),
    reasoning_source: str = typer.Option("math", "--reasoning-source", help="math (the generator, training seeds) or gsm8k:PATH (GSM8K's train split)."),
    safety: str = typer.Option("none", "--safety", help="Safety data: none, plain, reflective or star1:PATH."),
    safety_ratio: float = typer.Option(0.0, "--safety-ratio", help="Share of the examples that are safety data."),
    keep_ratio: float = typer.Option(0.0, "--keep-ratio", help="Share that are harmless instructions answered by the model itself (all of the rest with --data none)."),
    keep_loss_tokens: int = typer.Option(32, "--keep-loss-tokens", min=0, help="Learn only the first N tokens of each keep answer (where helping or refusing is decided); 0: whole answers."),
    protective: int = typer.Option(0, "--protective", min=0, help="Keep instructions that ask how to protect against, recognise or report the tasks of the harmful training requests (same words, opposite intent), answered by the model itself."),
    also_refuse: Optional[str] = typer.Option(None, "--also-refuse", help="More requests to refuse beside AdvBench's: star1 (STAR-1's questions that its own answer declines, from --datasets) or star1:PATH."),
    harmful: Optional[str] = typer.Option(None, "--harmful", help="Harmful requests to refuse: advbench:PATH (default: AdvBench under --datasets)."),
    n: int = typer.Option(400, "--n", min=1, help="Training examples in all."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Optimizer steps (default 100)."),
    epochs: Optional[float] = typer.Option(None, "--epochs", help="Passes over the data, instead of --steps."),
    lr: float = typer.Option(2e-4, "--lr", help="Peak learning rate (cosine schedule, short warm-up)."),
    rank: int = typer.Option(8, "--rank", min=1, help="LoRA rank."),
    targets: str = typer.Option("all-linear", "--targets", help="Layers that get a LoRA: all-linear, attention (q, k, v, o), mlp (gate, up, down) or module names joined by commas."),
    alpha: int = typer.Option(16, "--alpha", min=1, help="LoRA alpha (scale alpha/rank)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    max_len: int = typer.Option(512, "--max-len", min=32, help="Longest example in tokens; longer ones are left out."),
    seed: int = typer.Option(0, "--seed"),
    on: Optional[str] = typer.Option(None, "--on", help="Train on top of this adapter (stack), merged into the base: use the result as ON+NAME."),
    name: Optional[str] = typer.Option(None, "--name", help="The adapter's name (default: DATA[-SAFETY])."),
    out: Optional[Path] = typer.Option(None, "--out", help="The adapter's folder (default: $SAFERLAB_HOME/adapters/NAME)."),
    datasets: Optional[Path] = DatasetsOption,
    device: Optional[str] = typer.Option(None, "--device", help="cuda, mps or cpu (default: the best there is)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="float32, bfloat16 or float16 (default: bf16 on a GPU that has it, else fp32)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads."),
    recipe: Optional[str] = typer.Option(None, "--recipe", help="Retrain a shipped adapter from its recipe (aligned, cot, ...)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue an interrupted training (its name or id) from its checkpoint."),
    db: Optional[Path] = DbOption,
    as_json: bool = JsonOption,
) -> None:
    """Train a LoRA adapter (PEFT, loss on the answers only) on reasoning, safety and keep data;
    save it as a PEFT folder and a GGUF LoRA, and record the run and its exact data."""
    from saferlab.engine.finetune.data import DataSpec
    from saferlab.engine.finetune.spec import TrainSpec

    store = open_store(db)
    resume_state = None
    if resume:
        spec, resume_state = _resumable(store, resume)
    elif recipe:
        from saferlab.engine.finetune.recipes import recipe_spec

        spec = recipe_spec(recipe, name=name, out=str(out) if out else None,
                           datasets=str(datasets) if datasets else None, harmful=harmful,
                           threads=threads, device=device)
    else:
        data_spec = DataSpec(data=data, reasoning_source=reasoning_source, safety=safety,
                             harmful_source=harmful, n=n, safety_ratio=safety_ratio,
                             keep_ratio=keep_ratio, seed=seed, protective=protective,
                             also_refuse=also_refuse)
        default_name = data if safety == "none" else f"{data}-{safety.partition(':')[0]}"
        spec = TrainSpec(name=default_name if name is None else name, model=model, data=data_spec, on=on,
                         out=str(out) if out else None, steps=steps, epochs=epochs, lr=lr,
                         rank=rank, alpha=alpha, targets=targets, batch_size=batch_size,
                         max_len=max_len, seed=seed, device=device, dtype=dtype, threads=threads,
                         keep_loss_tokens=keep_loss_tokens, datasets=str(datasets) if datasets else None)
    if resume_state is None:
        spec.with_steps().check()  # here, before the training's process imports torch
    from .train_process import run_training

    outcome = run_training(store, spec, resume_state)
    summary = training_summary(outcome, spec)
    if recipe:
        summary["recipe_check"] = _recipe_check(recipe, outcome)
    output(summary, as_json, _print_summary)
    if outcome.status != "finished":
        typer.echo(f"interrupted at step {outcome.steps}/{outcome.total_steps}; continue with: "
                   f"saferlab finetune --resume {spec.name}", err=True)
        raise typer.Exit(EXIT_CANCELLED)


def _resumable(store, target: str):
    import json

    from saferlab.db.trainings import find_training
    from saferlab.engine.finetune.spec import TrainSpec

    row = find_training(store, target, unfinished_first=True)
    if row["status"] == "finished":
        raise SaferlabError(f"training {row['name']} (t{row['id']}) finished already: its "
                            f"adapter is at {row['adapter_path']}", EXIT_USAGE)
    return TrainSpec.from_dict(json.loads(row["config_json"])["spec"]), _resume(store, row["id"])


def _resume(store, training_id: int):
    """What continuing a stored training needs: its id and exact training set."""
    from saferlab.db.trainings import training_examples
    from saferlab.engine.finetune.data import Example
    from saferlab.engine.finetune.spec import Resume

    return Resume(training_id, [Example.from_dict(e)
                                for e in training_examples(store, training_id)])


def training_summary(outcome, spec) -> dict[str, Any]:
    meta = outcome.adapter or {}
    return {"training_id": outcome.training_id, "status": outcome.status,
            "adapter": str(outcome.folder) if outcome.folder else None,
            "gguf": meta.get("gguf_path"), "steps": outcome.steps,
            "total_steps": outcome.total_steps,
            "first_loss": outcome.losses[0] if outcome.losses else None,
            "final_loss": outcome.losses[-1] if outcome.losses else None,
            "tokens_per_s": outcome.tokens_per_s, "peak_rss_mb": outcome.peak_rss_mb,
            "duration_s": outcome.duration_s, "data_sha256": outcome.data_sha256,
            "sha256": meta.get("sha256"), "use_as": _use_as(outcome, meta, spec)}


def _use_as(outcome, meta: dict[str, Any], spec) -> str | None:
    """How to name the adapter in --adapter: by name when it is where names are looked up,
    else by path; on top of the adapters it was trained on, named as --on named them."""
    from saferlab.engine.saved_adapters import trained_root

    if not meta or outcome.folder is None:
        return None
    folder = Path(outcome.folder)
    own = meta["name"] if folder.parent.resolve() == trained_root().resolve() else str(folder)
    return f"{spec.on}+{own}" if spec.on else own


def _recipe_check(name: str, outcome) -> dict[str, Any]:
    from saferlab.engine.finetune.recipes import find_recipe

    expected = find_recipe(name)
    got = (outcome.adapter or {}).get("sha256", {})
    return {"data_sha256_matches": expected.get("data_sha256") == outcome.data_sha256,
            "peft_sha256_matches": expected.get("sha256", {}).get("peft") == got.get("peft"),
            "expected_data_sha256": expected.get("data_sha256")}


def _print_summary(console, d: dict[str, Any]) -> None:
    from rich.text import Text

    if d["status"] != "finished":
        console.print(Text(f"training t{d['training_id']}: {d['status']} at step {d['steps']}"))
        return
    loss = (f"loss {d['first_loss']:.3f} -> {d['final_loss']:.3f}"
            if d["first_loss"] is not None else "")
    rate = f"{d['tokens_per_s']:.0f} tok/s" if d["tokens_per_s"] else ""
    lines = [f"training t{d['training_id']}: {d['steps']} steps, {loss}, {rate}, "
             f"{d['duration_s'] / 60:.1f} min, peak RSS {d['peak_rss_mb']:.0f} MB",
             f"adapter: {d['adapter']}"]
    if d.get("gguf"):
        lines.append(f"GGUF LoRA: {d['gguf']}")
    lines.append(f"data sha256: {d['data_sha256']}")
    lines.append(f"use it: saferlab run --adapter {d['use_as']}")
    if "recipe_check" in d:
        rc = d["recipe_check"]
        lines.append("recipe: training data " + ("matches" if rc["data_sha256_matches"]
                                                  else "DIFFERS from") + " the shipped recipe; "
                     "adapter weights " + ("match" if rc["peft_sha256_matches"] else
                                           "differ (floating point differs across machines)"))
    for line in lines:
        console.print(Text(line))


@handles_errors
def trainings(limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1),
              db: Optional[Path] = DbOption, as_json: bool = JsonOption) -> None:
    """Fine-tuning runs stored in the database, newest first."""
    from saferlab.db.trainings import list_trainings

    output(list_trainings(open_store(db, existing=True), limit), as_json, _trainings_table)


def _trainings_table(console, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    if not rows:
        console.print(Text("no trainings yet: saferlab finetune --help"))
        return
    table = Table(box=None)
    for col in ("id", "name", "status", "on", "examples", "steps", "min", "tok/s", "RSS MB",
                "loss", "data sha256"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(Text(str(x)) for x in (
            f"t{r['id']}", r["name"], r["status"], r["on_adapters"] or "-", r["n_examples"],
            r["steps"] or "-", f"{(r['duration_ms'] or 0) / 60000:.1f}",
            f"{r['tokens_per_s']:.0f}" if r["tokens_per_s"] else "-",
            f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] else "-",
            f"{r['final_loss']:.3f}" if r["final_loss"] is not None else "-",
            (r["data_sha256"] or "")[:12])))
    console.print(table)



@handles_errors
def experiment_finetune(
    model: str = typer.Option("embedded", "--model", "-m"),
    seed: int = typer.Option(0, "--seed", help="One seed for every training and the evaluation."),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, help="Steps of each regime (default: the shipped recipes')."),
    aligned_steps: Optional[int] = typer.Option(None, "--aligned-steps", min=1, help="Steps of the aligned adapter."),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="The data-size sweep: long-CoT examples per adapter, e.g. 100,200,400."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="Items per suite in the evaluation (default: all)."),
    max_tokens: int = typer.Option(128, "--max-tokens", min=1, max=MAX_TOKENS, help="Tokens per answer to harmful, benign and privacy items (their verdicts come from the opening)."),
    math_tokens: int = typer.Option(480, "--math-tokens", min=1, help="Tokens per answer to a math item (long-CoT answers take about 300, the longest about 450)."),
    math_items: int = typer.Option(50, "--math-items", min=1, help="Math problems (the suite's first N; 100 is the whole suite)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where the adapters go (default: $SAFERLAB_HOME/experiments/finetune-seedN); ones already there with the same recipe are reused."),
    datasets: Optional[Path] = DatasetsOption,
    harmful: Optional[str] = typer.Option(None, "--harmful", help="Harmful requests to refuse: advbench:PATH."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1),
    device: Optional[str] = typer.Option(None, "--device"),
    db: Optional[Path] = DbOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="List the trainings and runs; train nothing."),
    as_json: bool = JsonOption,
) -> None:
    """The paper's fine-tuning experiment: train aligned, then direct, cot, long-cot and
    long-cot-reflective on top of it (and the size sweep); evaluate the base, aligned and every
    stack on harmful (no attack and prefix-injection), benign, math and privacy items in one
    session; print the trade-off and each regime against aligned."""
    from saferlab.engine.finetune.experiment import FinetuneExperiment, trained_already

    from .progress import execute
    from .train_process import train_apart

    parts = [s.strip() for s in sizes.split(",")] if sizes else []
    if not all(p.isdecimal() and p.isascii() for p in parts):  # int() would read 1_0 as 10
        raise SaferlabError(f"--sizes takes numbers separated by commas, not {sizes!r}",
                            EXIT_USAGE)
    size_list = tuple(int(p) for p in parts)
    exp = FinetuneExperiment(model=model, seed=seed, steps=steps, aligned_steps=aligned_steps,
                             sizes=size_list, limit=limit, max_tokens=max_tokens,
                             math_tokens=math_tokens, math_items=math_items,
                             out=str(out) if out else None,
                             datasets=str(datasets) if datasets else None, harmful=harmful,
                             threads=threads, device=device)
    exp.check()
    if dry_run:
        from saferlab.engine.finetune.experiment import EVAL_ATTACKS
        from saferlab.engine.finetune.spec import command_line

        planned = [{"name": spec.name, "state": "reuse" if trained_already(spec) else "train",
                    "command": f"{command_line(spec)} --out {spec.out}"}
                   for spec in exp.trainings()]
        configurations = len(exp.stacks()) + 1
        if as_json:
            output({"trainings": planned, "configurations": configurations,
                    "attacks": list(EVAL_ATTACKS)}, True, None)
            return
        for p in planned:
            say(f"{p['state']}: {p['command']}")
        typer.echo(f"then {configurations} configurations over harmful, benign, math "
                   "and privacy items, and over harmful items under prefix-injection", err=True)
        return
    store = open_store(db)
    for spec in exp.trainings():
        if trained_already(spec):
            typer.echo(f"{spec.name}: reusing {spec.out}", err=True)
            continue
        # Each training in a process of its own: its memory is handed back when it ends.
        outcome = train_apart(store.path, spec, _interrupted(store, spec))
        if outcome.status != "finished":
            typer.echo("interrupted; run the same command again to continue", err=True)
            raise typer.Exit(EXIT_CANCELLED)
        typer.echo(f"{spec.name}: trained in {outcome.duration_s / 60:.1f} min, "
                   f"{outcome.tokens_per_s or 0:.0f} tok/s, peak RSS "
                   f"{outcome.peak_rss_mb:.0f} MB", err=True)
    plans = exp.plans()
    outcome = execute(store, plans, None, {"n_threads": threads})
    session_ended(outcome, db, then=f"saferlab experiment report s{outcome.session_id}")
    finetune_report(store, outcome.session_id, as_json)


def _interrupted(store, spec):
    """The interrupted training that ``spec`` is, to resume from its checkpoint."""
    from saferlab.db.trainings import unfinished_training

    if not spec.checkpoints.is_dir():
        return None
    training_id = unfinished_training(store, spec.name, spec.out)
    return None if training_id is None else _resume(store, training_id)


def finetune_report(store, session_id: int, as_json: bool) -> None:
    """The trade-off of the session, and each adapter stack against ``aligned`` under the same
    attack (paired: McNemar exact test and bootstrap interval)."""
    from saferlab.db.analyses import analyse_session

    from . import render_analysis as show

    analysis = analyse_session(store, f"s{session_id}")
    runs = analysis.runs
    data = analysis.tradeoff(show.run_label)
    reference = {r["config"]["attack"]: r for r in runs if r["config"].get("adapter") == "aligned"}
    data["against_aligned"] = []
    for r in runs:
        ref = reference.get(r["config"]["attack"])
        if ref is None or r["id"] == ref["id"]:
            continue
        data["against_aligned"].append({
            "run_id": r["id"], "label": show.run_label(r), "aligned_run_id": ref["id"],
            "meters": [m.to_dict() | {"flips": {k: len(v) for k, v in m.flips.items()}}
                       for m in analysis.compare(ref["id"], r["id"])]})
    output(data, as_json, _finetune_tables)


def _finetune_tables(console, data: dict[str, Any]) -> None:
    from rich.text import Text

    from . import render_analysis as show
    from .render import table_of

    show.tradeoff(console, data)
    if not data["against_aligned"]:
        return
    meters = ("safety", "reasoning", "over_refusal", "privacy")
    table = table_of(f"session s{data['session_id']}: each configuration against aligned "
                     "(same attack; b - a, paired)", "run", "configuration", *meters)
    for row in data["against_aligned"]:
        cells = {m["meter"]: m for m in row["meters"]}

        def cell(name: str) -> Text:
            m = cells.get(name)
            if not m or m["diff"] is None:
                return Text("-")
            p = "-" if m["p_value"] is None else f"{m['p_value']:.3f}"
            return Text(f"{m['diff']:+.2f} p={p}\n[{m['low']:+.2f},{m['high']:+.2f}]")

        table.add_row(Text(str(row["run_id"])), Text(row["label"]), *(cell(m) for m in meters))
    console.print(table)
    console.print(Text("safety, reasoning and privacy: higher is better; over_refusal: lower is "
                       "better. p: McNemar exact test on the items that changed."))


@handles_errors
def experiment_report(session: str = typer.Argument("last", help="s3, 3 or last."),
                      db: Optional[Path] = DbOption, as_json: bool = JsonOption) -> None:
    """The fine-tuning experiment's tables for a session (after a resumed evaluation)."""
    from saferlab.db.queries import session_runs

    store = open_store(db, existing=True)
    session_id, _ = session_runs(store, session)
    finetune_report(store, session_id, as_json)
