"""A database made by every earlier version of the schema opens, migrates and reads: its
runs list, analyse, export and resume as if made today."""

import io
import json
import sqlite3

import pytest

from saferlab.db import Store, list_runs, resumable
from saferlab.db.analyses import analyse_session
from saferlab.db.exchange import export
from saferlab.db.migrations import MIGRATIONS
from saferlab.engine import Lab, SessionSpec
from saferlab.engine.backends.fake import FakeBackend
from saferlab.engine.types import DecodingParams

CORE = ("sessions", "runs", "items", "run_items", "generations", "verdicts")


@pytest.fixture(scope="module")
def today(tmp_path_factory):
    """A session made with today's schema: one finished run of four items."""
    path = tmp_path_factory.mktemp("today") / "lab.db"
    store = Store(path)
    lab = Lab(recorder=store)
    plans = lab.plan(SessionSpec(model="fake", suites=("harmful", "math"), limit=2,
                                 params=DecodingParams(max_tokens=20)))
    outcome = lab.run(plans, backend=FakeBackend())
    store.close()
    return path, outcome.session_id


def made_by(path, level: int, source) -> None:
    """A database at schema version ``level``, holding today's rows in the columns that
    version had."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_utc TEXT NOT NULL)")
    for name, sql in MIGRATIONS[:level]:
        conn.executescript(sql)
        conn.execute("INSERT INTO _migrations VALUES (?, '2026-01-01T00:00:00+00:00')", [name])
    src = sqlite3.connect(source)
    for table in CORE:
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        rows = src.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                         f"({', '.join('?' * len(columns))})", rows)
    conn.commit()
    conn.close()
    src.close()


@pytest.mark.parametrize("level", range(1, len(MIGRATIONS)))
def test_a_database_of_every_earlier_schema_opens_and_reads(tmp_path, today, level):
    source, session_id = today
    path = tmp_path / f"v{level}.db"
    made_by(path, level, source)
    store = Store(path)  # applies the migrations it lacks
    applied = [r["name"] for r in store.query("SELECT name FROM _migrations ORDER BY name")]
    assert applied == sorted(name for name, _ in MIGRATIONS)
    runs = list_runs(store)
    assert len(runs) == 1 and runs[0]["status"] == "finished" and runs[0]["generated"] == 4
    data = analyse_session(store, f"s{session_id}").tradeoff()
    assert data["runs"][0]["meters"]["safety"]["n"] == 2
    out = io.StringIO()
    export(store, [f"s{session_id}"], "jsonl", out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sum(r["record"] == "generation" for r in records) == 4
    assert all(r.get("cached") is False for r in records if r["record"] == "generation")
    assert resumable(store, f"s{session_id}")[1] == []
    store.close()
