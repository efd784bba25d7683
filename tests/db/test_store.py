import json
import sqlite3
import threading

import pytest

from saferlab.db import Store, list_runs, parse_target, resumable
from saferlab.db.migrations import MIGRATIONS
from saferlab.engine import Lab, SessionSpec
from saferlab.engine.backends.fake import FakeBackend
from saferlab.engine.errors import EXIT_DATABASE, SaferlabError
from saferlab.engine.types import DecodingParams

TABLES = {"sessions", "runs", "items", "run_items", "generations", "verdicts", "file_hashes",
          "_migrations"}


def test_blank_database_is_migrated(tmp_path):
    store = Store(tmp_path / "new" / "lab.db")
    assert TABLES <= set(store.db.table_names())
    assert [r["name"] for r in store.query("SELECT name FROM _migrations")] == [
        name for name, _ in MIGRATIONS]
    assert next(store.query("PRAGMA journal_mode"))["journal_mode"] == "wal"
    store.close()
    again = Store(tmp_path / "new" / "lab.db")  # reopening applies nothing twice
    assert len(list(again.query("SELECT * FROM _migrations"))) == len(MIGRATIONS)


def test_generations_reference_runs_and_items(tmp_path):
    store = Store(tmp_path / "lab.db")
    cols = {c.name for c in store.db["generations"].columns}
    assert {"run_id", "item_id", "messages_json", "output", "error", "finish_reason",
            "prompt_tokens", "completion_tokens", "duration_ms"} <= cols
    fks = {(fk.column, fk.other_table) for fk in store.db["generations"].foreign_keys}
    assert fks == {("run_id", "runs"), ("item_id", "items")}


@pytest.mark.parametrize("content", [b"this is not a database at all" * 100, b"\x00" * 5000])
def test_unreadable_database_is_one_clear_error(tmp_path, content):
    path = tmp_path / "junk.db"
    path.write_bytes(content)
    with pytest.raises(SaferlabError) as err:
        Store(path)
    assert err.value.exit_code == EXIT_DATABASE
    assert str(path) in str(err.value)
    assert path.read_bytes() == content  # nothing was overwritten


def test_database_from_a_newer_release_is_refused(tmp_path):
    path = tmp_path / "lab.db"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO _migrations VALUES ('m999_future', 'x')")
    with pytest.raises(SaferlabError, match="newer saferlab"):
        Store(path)


def test_another_programs_database_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE contacts (name TEXT)")
    before = path.read_bytes()
    with pytest.raises(SaferlabError, match="not a saferlab database.*contacts") as err:
        Store(path)
    assert err.value.exit_code == EXIT_DATABASE
    assert path.read_bytes() == before  # no saferlab tables, not switched to WAL


def test_a_directory_is_not_a_database(tmp_path):
    with pytest.raises(SaferlabError, match="is a directory"):
        Store(tmp_path)


def run_fake(store):
    spec = SessionSpec(model="fake", suites=("harmful", "math", "privacy"), limit=2,
                       reasoning=("direct", "zero-shot-cot"), params=DecodingParams(max_tokens=40))
    lab = Lab(recorder=store)
    return lab.run(lab.plan(spec), backend=FakeBackend())


def test_recorder_stores_every_step(tmp_path):
    store = Store(tmp_path / "lab.db")
    outcome = run_fake(store)
    assert outcome.status == "finished"
    runs = list(store.query("SELECT * FROM runs ORDER BY id"))
    assert [r["status"] for r in runs] == ["finished", "finished"]
    config = json.loads(runs[0]["config_json"])
    assert config["reasoning"] == "direct" and config["suites"] == ["harmful", "math", "privacy"]
    assert set(config["prompt_files"]) >= {"reasoning.toml", "attacks.toml", "suites/math.toml"}
    assert runs[0]["saferlab_version"]
    meters = json.loads(runs[0]["meters_json"])
    assert meters["safety"]["n"] == 2 and meters["reasoning"]["n"] == 2
    for run in runs:
        rows = list(store.query(
            "SELECT g.*, (SELECT COUNT(*) FROM verdicts v WHERE v.generation_id = g.id) AS nv "
            "FROM generations g WHERE run_id = ?", [run["id"]]))
        # Harmful items get both default safety judges; math and privacy items one each.
        assert len(rows) == 6 and sorted(r["nv"] for r in rows) == [1, 1, 1, 1, 2, 2]
        assert all(json.loads(r["messages_json"])[-1]["role"] == "user" for r in rows)
    # Items are stored once, shared by the runs that use them.
    assert next(store.query("SELECT COUNT(*) AS n FROM items"))["n"] == 6
    assert next(store.query("SELECT COUNT(*) AS n FROM run_items"))["n"] == 12
    listed = list_runs(store)
    assert [r["id"] for r in listed] == [2, 1] and listed[0]["generated"] == 6


def test_each_thread_gets_its_own_connection(tmp_path):
    store = Store(tmp_path / "lab.db")
    main_conn = store.db.conn
    seen = []
    t = threading.Thread(target=lambda: seen.append(store.db.conn))
    t.start()
    t.join()
    assert seen and seen[0] is not main_conn


def test_hash_cache_round_trip(tmp_path):
    store = Store(tmp_path / "lab.db")
    assert store.known_sha256("/m.gguf", 10, 5) is None
    store.remember_sha256("/m.gguf", 10, 5, "abc")
    assert store.known_sha256("/m.gguf", 10, 5) == "abc"
    assert store.known_sha256("/m.gguf", 10, 6) is None  # touched file: hash again


@pytest.mark.parametrize("text,expected", [
    ("last", ("session", None)), ("s3", ("session", 3)), ("session:4", ("session", 4)),
    ("7", ("run", 7)), ("r8", ("run", 8)), ("run:9", ("run", 9)),
])
def test_parse_target(text, expected):
    assert parse_target(text) == expected


def test_parse_target_rejects_garbage():
    with pytest.raises(SaferlabError, match="give a run id"):
        parse_target("yesterday")


def test_resumable_finds_unfinished_runs(tmp_path):
    store = Store(tmp_path / "lab.db")
    with pytest.raises(SaferlabError, match="holds no session"):
        resumable(store, "last")
    run_fake(store)
    session_id, plans = resumable(store, "last")
    assert session_id == 1 and plans == []
    # Lose the last generation of run 2 and mark it running, as a kill would leave it.
    store.db.execute("DELETE FROM verdicts WHERE generation_id = (SELECT MAX(id) FROM generations)")
    store.db.execute("DELETE FROM generations WHERE id = (SELECT MAX(id) FROM generations)")
    store.db.execute("UPDATE runs SET status = 'running' WHERE id = 2")
    session_id, plans = resumable(store, "s1")
    assert [p.run_id for p in plans] == [2] and len(plans[0].items) == 6
    assert plans[0].spec.reasoning == "zero-shot-cot"
    assert resumable(store, "2")[1][0].run_id == 2
    with pytest.raises(SaferlabError, match="no run 99"):
        resumable(store, "99")
    backend = FakeBackend()
    outcome = Lab(recorder=store).run(plans, session_id=session_id, backend=backend)
    assert len(backend.calls) == 1 and outcome.runs[0].meters["safety"].n == 2
    assert next(store.query("SELECT COUNT(*) AS n FROM generations"))["n"] == 12
