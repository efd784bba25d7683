"""What every command shares: the error boundary and the database option."""

from __future__ import annotations

import functools
import json
import sqlite3
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from saferlab.engine.errors import EXIT_DATABASE, SaferlabError

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
    refuses a path with no file rather than make an empty database there."""
    from saferlab.db import Store, default_db_path

    if existing and db is not None and not db.exists():
        raise SaferlabError(f"no database at {db}", EXIT_DATABASE)
    return Store(db or default_db_path())


def output(data: Any, as_json: bool, draw: Callable[[Any, Any], None]) -> None:
    """``data`` as indented JSON on stdout, or drawn as tables by ``draw(console, data)``."""
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        from .render import console

        draw(console(), data)
