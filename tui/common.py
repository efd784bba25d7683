"""What every command shares: the error boundary and the database option."""

from __future__ import annotations

import functools
import json
import shlex
import sqlite3
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from saferlab.engine.errors import (EXIT_CANCELLED, EXIT_DATABASE, EXIT_ITEMS_FAILED,
                                    SaferlabError)

from .literal import say

DbOption = typer.Option(None, "--db", help="Database file (default: $SAFERLAB_HOME/saferlab.db "
                        "or the user data directory).", dir_okay=False)
JsonOption = typer.Option(False, "--json", help="Print JSON instead of tables.")


def handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The one place a SaferlabError becomes a line on stderr and an exit code."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SaferlabError as exc:
            say(f"saferlab: error: {exc.message}", err=True)  # it may quote the bad input
            raise typer.Exit(exc.exit_code) from None
        except sqlite3.DatabaseError as exc:
            # The store maps what it foresees; a file that turns read-only, a full disk or a
            # corrupt page can still surface from any query.
            from saferlab.db import default_db_path

            where = kwargs.get("db") or default_db_path()
            say(f"saferlab: error: database {where}: {exc}", err=True)
            raise typer.Exit(EXIT_DATABASE) from None
    return wrapper


MAX_ID = 2 ** 63 - 1  # the largest integer SQLite stores: no run or session id is larger


def open_store(db: Optional[Path], existing: bool = False):
    """The database ``db`` (default: the user's). ``existing``: a command that only reads
    refuses a path with no file rather than make an empty database there; the user's default
    database, before anything made it, reads as empty and is not made either."""
    from saferlab.db import Store, default_db_path

    if existing and db is not None and not db.exists():
        raise SaferlabError(f"no database at {db}", EXIT_DATABASE)
    return Store(db or default_db_path(), create=not existing)


def session_ended(outcome: Any, db: Optional[Path], then: str = "") -> None:
    """What every command that runs a session says when it did not end cleanly, the same
    way: cancelled (exit 130), a run that got nothing back (exit 5), items that failed (a
    warning per run; they are stored and a resume generates them again). ``db``: the --db
    given, which the commands said must name too; ``then``: the command to run after the
    resume ("saferlab tradeoff s3")."""
    on = f" --db {shlex.quote(str(db))}" if db is not None else ""
    resume = f"saferlab run --resume s{outcome.session_id}{on}"
    then = f", then {then}{on}" if then else ""
    if outcome.status == "cancelled":
        say(f"cancelled; finish it with: {resume}{then}", err=True)
        raise typer.Exit(EXIT_CANCELLED)
    retry = f"retry them: {resume}{then}"
    for run in outcome.runs:
        if run.errors and run.status != "failed":
            say(f"saferlab: warning: run {run.run_id}: {run.error}; {retry}", err=True)
    failed = [run for run in outcome.runs if run.status == "failed"]
    if failed:
        say(f"saferlab: error: run {failed[0].run_id}: {failed[0].error}; {retry}", err=True)
        raise typer.Exit(EXIT_ITEMS_FAILED)


def output(data: Any, as_json: bool, draw: Callable[[Any, Any], None]) -> None:
    """``data`` as indented JSON on stdout, or drawn as tables by ``draw(console, data)``."""
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        from .render import console

        draw(console(), data)
