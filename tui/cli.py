"""The command line, and the composition root: it wires the engine to the store and the
terminal, and it is the only place that turns a SaferlabError into stderr and an exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from saferlab.engine.errors import EXIT_DATABASE, EXIT_USAGE, SaferlabError
from saferlab.engine.types import MAX_TOKENS

from . import render
from .common import DbOption, handles_errors, open_store, output, session_ended
from .literal import say
from .progress import execute

app = typer.Typer(
    name="saferlab", add_completion=False,
    pretty_exceptions_enable=False, rich_markup_mode=None,
    help="A lab for the safety, reasoning and privacy trade-offs of language models.",
)
db_app = typer.Typer(no_args_is_help=True, help="The SQLite database.")
app.add_typer(db_app, name="db")



@app.callback(invoke_without_command=True)
def root(ctx: typer.Context) -> None:
    # Bare `saferlab` opens the lab on a terminal; piped or scripted, it prints help.
    if ctx.invoked_subcommand is None:
        if sys.stdin.isatty() and sys.stdout.isatty():
            tui(db=None)
            return
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


@app.command()
@handles_errors
def tui(db: Optional[Path] = DbOption) -> None:
    """Open the Textual lab: pick a model, fire batches, watch the meters, compare, export."""
    from .app import run_app

    run_app(db)


@app.command()
@handles_errors
def run(
    model: str = typer.Option("embedded", "--model", "-m", help="embedded, gguf:PATH, PATH.gguf, hf:MODEL_OR_DIR[#FILE.gguf], openai:BASE_URL#MODEL or fake:MODE."),
    reasoning: List[str] = typer.Option(["direct"], "--reasoning", "-r", help="Reasoning prompt; repeat for several runs."),
    attack: List[str] = typer.Option(["none"], "--attack", "-a", help="Attack; repeat for several runs."),
    suite: List[str] = typer.Option(["harmful"], "--suite", "-s", help="Suite or LOADER:PATH; repeat to combine."),
    modifier: List[str] = typer.Option([], "--modifier", "-M", help="Safety modifier for every run; repeatable."),
    attacker_model: Optional[str] = typer.Option(None, "--attacker-model", help="Attacker of iterative attacks (default: the target)."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="Items drawn from each suite."),
    seed: int = typer.Option(0, "--seed", help="Seed for sampling, the math generator and decoding."),
    max_tokens: int = typer.Option(256, "--max-tokens", min=1, max=MAX_TOKENS, help="Tokens generated per item at most."),
    max_tokens_for: List[str] = typer.Option([], "--max-tokens-for", help="KIND=N: another budget for items of one kind (harmful, benign, math, privacy), e.g. math=512; repeatable."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0 decodes greedily."),
    judge: List[str] = typer.Option([], "--judge", "-j", help="Judges, the first of each meter primary (default: refusal-heuristic, refusal-keywords, answer-match, pii-leak)."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="Model for llm-judge, strongreject and llama-guard (default: the target itself)."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Finish a run (7), a session (s3) or 'last', with its stored settings."),
    retry_errors: bool = typer.Option(True, "--retry-errors/--no-retry-errors", help="With --resume: generate the items that failed again (default) or keep their errors."),
    adapter: List[str] = typer.Option([], "--adapter", help="LoRA adapter (PEFT folder for hf:, GGUF LoRA for GGUF models, served name for openai:); adds a run per adapter beside the base."),
    ctx: Optional[int] = typer.Option(None, "--ctx", min=256, help="Context length for GGUF models (default 4096; a resumed run keeps its own)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads (default: all)."),
    device: Optional[str] = typer.Option(None, "--device", help="hf: cuda, mps or cpu (default: the best there is)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="GGUF and hf: requests decoded together (default 8; a resumed run keeps its own). 1 decodes one at a time."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="openai: requests in flight."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="hf: run the model repository's own code."),
    db: Optional[Path] = DbOption,
    no_log: bool = typer.Option(False, "--no-log", help="Keep nothing in the database."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Decode every item, even those whose identical request (model, adapters, messages, parameters, seed, batch size) was answered in an earlier run."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the items and exact messages; load no model."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document: the runs."),
) -> None:
    """Fire suites x attacks x reasoning prompts at a model, judge every answer, and record it."""
    from saferlab.engine import Lab, SessionSpec
    from saferlab.engine.judges import DEFAULT_JUDGES
    from saferlab.engine.types import DecodingParams

    if resume is not None and not resume.strip():
        raise SaferlabError("--resume takes a run (7), a session (s3) or 'last'", EXIT_USAGE)
    if resume and (no_log or dry_run):
        raise SaferlabError("--resume continues stored runs; drop --no-log and --dry-run",
                            EXIT_USAGE)
    if not resume:
        spec = SessionSpec(
            model=model, reasoning=tuple(reasoning), attacks=tuple(attack), suites=tuple(suite),
            modifiers=tuple(modifier), attacker=attacker_model, judge_model=judge_model,
            adapters=tuple(adapter), limit=limit, seed=seed, judges=tuple(judge) or DEFAULT_JUDGES,
            params=DecodingParams(max_tokens=max_tokens, temperature=temperature, seed=seed,
                                  max_tokens_by_kind=kind_budgets(max_tokens_for)))
        plans = Lab().plan(spec)
        if dry_run:
            render.dry_run(plans, as_json)
            return
    store = None if no_log else open_store(db)
    session_id = None
    if resume:
        from saferlab.db import resumable

        session_id, plans = resumable(store, resume, retry_errors=retry_errors)
        if not plans:
            typer.echo(f"session s{session_id} has nothing left to run; saferlab tradeoff "
                       f"s{session_id} shows it", err=True)
            if as_json:
                output([], True, None)
            return

    from saferlab.engine.backends.base import DEFAULT_BATCH, DEFAULT_CTX
    from saferlab.engine.lab import resumed_options

    stored = resumed_options(plans)  # a resumed run's outputs reproduce only with its own
    batch_size = batch_size or stored.get("batch_size") or DEFAULT_BATCH
    ctx = ctx or stored.get("n_ctx") or DEFAULT_CTX
    options = {"n_ctx": ctx, "n_threads": threads, "device": device, "batch_size": batch_size,
               "concurrency": concurrency, "trust_remote_code": trust_remote_code}
    outcome = execute(store, plans, session_id, options, cache=not no_cache)
    _print_runs(store, outcome.runs, outcome.session_id, as_json)
    cached = sum(r.cached for r in outcome.runs)
    if cached:
        say(f"saferlab: {cached} of {sum(r.generated for r in outcome.runs)} answers came from "
            "the result cache (identical earlier requests); --no-cache decodes them again",
            err=True)
    session_ended(outcome, db)


def kind_budgets(texts: List[str]) -> tuple[tuple[str, int], ...]:
    """``["math=512"]`` as DecodingParams.max_tokens_by_kind."""
    from saferlab.engine.suites import KINDS

    budgets = {}
    for text in texts:
        kind, _, number = text.partition("=")
        if kind.strip() not in KINDS:
            raise SaferlabError(f"--max-tokens-for takes KIND=N with KIND one of "
                                f"{', '.join(KINDS)}, not {text!r}", EXIT_USAGE)
        number = number.strip()
        if not (number.isdecimal() and number.isascii()) or not 1 <= int(number) <= MAX_TOKENS:
            raise SaferlabError(f"--max-tokens-for {kind.strip()}=N takes N from 1 to "
                                f"{MAX_TOKENS}, not {number!r}", EXIT_USAGE)
        budgets[kind.strip()] = int(number)
    return tuple(sorted(budgets.items()))


def _print_runs(store, runs: list, session_id: int, as_json: bool) -> None:
    rows = [render.run_row(r, session_id) for r in runs]
    output(rows, as_json,
           lambda console, d: render.meters_table(console, d, title=f"session s{session_id}"))


@app.command()
@handles_errors
def models(as_json: bool = typer.Option(False, "--json")) -> None:
    """The embedded model, GGUF files found where people keep them, and Hugging Face models
    on disk (with the hf extra): what the lab's picker lists."""
    from saferlab.engine.models import available_models

    rows = []
    for row in available_models():
        path = row["path"]
        try:
            size = path.stat().st_size if path is not None else None
        except OSError:
            size = None
        where = path or row.get("folder")  # an hf model: its folder
        rows.append({"spec": row["spec"], "source": row["source"], "name": row["name"],
                     "path": str(where) if where else None, "size_bytes": size}
                    | ({"error": row["error"]} if "error" in row else {}))
    output(rows, as_json, render.models_table)


@app.command()
@handles_errors
def prompts(as_json: bool = typer.Option(False, "--json")) -> None:
    """Reasoning prompts, modifiers, attacks, suites, loaders and judges, with citations."""
    from saferlab.engine.catalog import catalog

    data = catalog()
    output(data, as_json, render.catalog_tables)


@app.command()
@handles_errors
def runs(
    limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1, help="Newest N runs."),
    db: Optional[Path] = DbOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Runs stored in the database, newest first, with their meters."""
    from saferlab.db import list_runs

    rows = list_runs(open_store(db, existing=True), limit)
    output(rows, as_json, render.runs_table)


adapters_app = typer.Typer(help="LoRA adapters the lab knows.", invoke_without_command=True)
app.add_typer(adapters_app, name="adapters")


@adapters_app.callback(invoke_without_command=True)
@handles_errors
def adapters_list(ctx: typer.Context, db: Optional[Path] = DbOption,
                  as_json: bool = typer.Option(False, "--json")) -> None:
    """Adapters: shipped with saferlab, trained by saferlab finetune (with the training that
    made them), and registered (runs register theirs); one row per format."""
    if ctx.invoked_subcommand is not None:
        return
    from saferlab.db.adapters import all_adapters
    from saferlab.engine.saved_adapters import left_out_adapters

    for problem in left_out_adapters():  # left out of the list: say which and why
        say(f"saferlab: warning: left out: {problem}", err=True)
    # A --db that names no file yet registers nothing: list the saved ones, make no file.
    store = None if db is not None and not db.exists() else open_store(db, existing=True)
    output(all_adapters(store), as_json, render.adapters_table)


@adapters_app.command("add")
@handles_errors
def adapters_add(paths: List[Path] = typer.Argument(..., help="PEFT LoRA folders or GGUF LoRA files."),
                 db: Optional[Path] = DbOption) -> None:
    """Register adapters, checked (safetensors PEFT LoRA or GGUF LoRA) and hashed."""
    from saferlab.engine.adapters import describe_adapter

    store = open_store(db)
    for path in paths:
        info = describe_adapter(str(path))
        store.register_adapter(info)
        say(f"{info['name']}\t{info['kind']}\t{info['sha256'][:12]}\t{info['path']}")


@app.command()
@handles_errors
def bench(
    model: List[str] = typer.Option(["embedded"], "--model", "-m", help="Model; repeat to compare backends. GGUF models get every figure; others the runner's speed."),
    items: int = typer.Option(20, "--items", min=1, help="Harmful requests to decode."),
    max_tokens: int = typer.Option(64, "--max-tokens", min=1, max=MAX_TOKENS),
    threads: Optional[int] = typer.Option(None, "--threads", min=1),
    cache_items: int = typer.Option(100, "--cache-items", min=2, help="Items of the batch that is run twice (the second time from the result cache) and whose peak RSS is measured."),
    repeats: int = typer.Option(5, "--repeats", min=1, help="Rounds of the decodings compared with one another (plain, the lab at each batch size, the interface); each ratio is the median of the rounds' ratios."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="hf: requests decoded together."),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="openai: requests in flight."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document: every figure, ratio and target."),
    export: Optional[int] = typer.Option(None, "--export", min=1, help="Instead: time and peak memory of exporting this many generations (fake backend) to each format."),
) -> None:
    """Every speed figure in one run: the lab beside plain llama-cpp-python (one at a time and
    batched), shared-prefix reuse, a cached rerun, the interface against the CLI, start-up,
    peak RSS and the database's recording rate; or, with --export N, export speed and memory."""
    if export is not None:
        from .bench_export import bench_export

        for line in bench_export(export, _stderr_line):
            typer.echo(line)
        return
    from saferlab.engine.models import parse_model_spec

    from .bench import lines, measure, runner_only

    documents = []
    for spec in model:
        if parse_model_spec(spec).path is not None:
            figures = measure(spec, items, max_tokens, threads, cache_items, _stderr_line,
                              repeats)
            shown = lines(figures)
        else:
            figures = runner_only(spec, items, max_tokens, threads,
                                  {"batch_size": batch_size, "concurrency": concurrency},
                                  _stderr_line)
            shown = iter([figures["line"]])
        documents.append(figures)
        if not as_json:
            for line in shown:
                say(line)
    if as_json:
        output(documents, True, None)


def _stderr_line(text: str) -> None:
    typer.echo(text, err=True)


@db_app.command("path")
@handles_errors
def db_path(db: Optional[Path] = DbOption) -> None:
    """Print where the database is."""
    from saferlab.db import default_db_path

    say(str(db or default_db_path()))


@db_app.command("check")
@handles_errors
def db_check(db: Optional[Path] = DbOption) -> None:
    """Check the database file page by page (SQLite's integrity check); exit 4 when it is
    damaged. A damaged page makes reports and exports quietly short."""
    store = open_store(db, existing=True)
    if not store.path.exists():
        say(f"no database yet at {store.path}: nothing was run")
        return
    problems = store.integrity_problems()
    if problems:
        say(f"saferlab: error: database {store.path} is damaged (SQLite's integrity check):",
            err=True)
        for line in "\n".join(problems).splitlines():
            if not line.startswith("***"):
                say(f"  {line}", err=True)
        say("saferlab: to keep what can still be read, try: saferlab export -o FILE.jsonl, "
            "then saferlab import FILE.jsonl --db NEW.db", err=True)
        raise typer.Exit(EXIT_DATABASE)
    say(f"ok: {store.path}")


def _register() -> None:
    from . import cli_analysis, cli_exchange, cli_finetune

    for command in (cli_analysis.judge, cli_analysis.label, cli_analysis.report,
                    cli_analysis.compare, cli_analysis.tradeoff, cli_finetune.finetune,
                    cli_finetune.trainings):
        app.command()(command)
    cli_analysis.experiment_app.command("finetune")(cli_finetune.experiment_finetune)
    cli_analysis.experiment_app.command("report")(cli_finetune.experiment_report)
    app.add_typer(cli_analysis.experiment_app, name="experiment")
    app.command("export")(cli_exchange.export)
    app.command("import")(cli_exchange.import_)


_register()


def main() -> None:
    app(prog_name="saferlab")


if __name__ == "__main__":  # python -m saferlab.tui.cli
    sys.exit(main())
