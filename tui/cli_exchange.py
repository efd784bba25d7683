"""Commands that move sessions in and out: export to JSONL, CSV, Markdown or HTML, and import
an exported JSONL file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from saferlab.engine.errors import EXIT_USAGE, SaferlabError

from .common import DbOption, handles_errors, open_store


@handles_errors
def export(
    targets: List[str] = typer.Argument(None, help="Sessions (s3, last) or runs (7); default: the latest session."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="jsonl, csv, md or html (default: from -o's suffix, else jsonl)."),
    output_path: Optional[Path] = typer.Option(None, "--output", "-o", dir_okay=False, help="File to write (default: stdout)."),
    redact: bool = typer.Option(False, "--redact", help="Replace planted secrets, e-mail addresses, phone numbers and national ids with stable pseudonyms."),
    db: Optional[Path] = DbOption,
) -> None:
    """Export sessions or runs: JSONL (complete, importable), CSV, Markdown or one HTML file."""
    from saferlab.db.exchange import export as run_export
    from saferlab.engine.export import FORMATS, SUFFIXES

    if fmt is None:
        by_suffix = {v: k for k, v in SUFFIXES.items()} | {".markdown": "md", ".htm": "html"}
        fmt = by_suffix.get(output_path.suffix.lower(), "jsonl") if output_path else "jsonl"
    if fmt not in FORMATS:
        raise SaferlabError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}",
                            EXIT_USAGE)
    store = open_store(db, existing=True)
    if output_path is None:
        result = run_export(store, list(targets or []), fmt, sys.stdout, redact)
    else:
        from .exporting import export_file

        result = export_file(store, list(targets or []), fmt, output_path, redact)
    manifest = result["manifest"]
    counts = manifest["counts"]
    where = str(output_path) if output_path else "stdout"
    typer.echo(f"exported {counts['runs']} run(s), {counts['generations']} generation(s) "
               f"as {fmt} to {where}", err=True)
    if result["redactions"] is not None:
        done = result["redactions"]["pseudonyms"]
        typer.echo("redacted: " + (", ".join(f"{n} {kind} value(s)" for kind, n in done.items())
                                   or "nothing matched"), err=True)


@handles_errors
def import_(
    file: Path = typer.Argument(..., exists=False, help="A JSONL file made by saferlab export."),
    db: Optional[Path] = DbOption,
) -> None:
    """Load an exported JSONL file into the database (all of it, or nothing on error)."""
    from saferlab.db.importing import import_jsonl

    store = open_store(db)
    result = import_jsonl(store, file)
    counts = result["counts"]
    moved = {f"s{a}": f"s{b}" for a, b in result["sessions"].items() if a != b}
    moved |= {f"r{a}": f"r{b}" for a, b in result["runs"].items() if a != b}
    typer.echo(f"imported {counts['sessions']} session(s), {counts['runs']} run(s), "
               f"{counts['generations']} generation(s)"
               + (f", {counts['pending']} pending item(s)" if counts["pending"] else "")
               + f" into {store.path}", err=True)
    if moved:
        typer.echo("ids taken in this database, renumbered: "
                   + ", ".join(f"{a} -> {b}" for a, b in moved.items()), err=True)
    if result["redacted"]:
        typer.echo("note: the export was redacted; pseudonyms stand for personal data",
                   err=True)
    sessions = sorted(set(result["sessions"].values()))
    typer.echo(" ".join(f"s{s}" for s in sessions))
