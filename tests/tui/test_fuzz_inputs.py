"""Random bytes and random JSON where saferlab reads files from users (an import, a dataset for
a loader, a user prompt file): one line on stderr, a documented exit code, an untouched
database; never a traceback."""

import json
import sqlite3
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from saferlab.engine.errors import EXIT_DATABASE, EXIT_USAGE
from saferlab.tui.cli import app

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

runner = CliRunner()
FUZZ = settings(max_examples=int(__import__("os").environ.get("SAFERLAB_FUZZ", "40")), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
# what an export's lines could be mangled into: a record type and random fields
RECORD = st.fixed_dictionaries({"record": st.sampled_from(["manifest", "generation", "pending",
                                                           "end", "other"])},
                               optional={"format": st.just("saferlab-export"),
                                         "format_version": st.integers(0, 3),
                                         "sessions": JSON, "runs": JSON, "counts": JSON,
                                         "run_id": JSON, "item": JSON, "position": JSON})


def one_clean_line(result, codes=(EXIT_USAGE,)):
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    if result.exit_code:
        assert result.exit_code in codes, (result.exit_code, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("saferlab: error: "), result.stderr


def rows(db: Path) -> tuple:
    with sqlite3.connect(db) as conn:
        return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                     for t in ("sessions", "runs", "items", "generations", "verdicts"))


@pytest.fixture(scope="module")
def lab_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("fuzz") / "lab.db"
    result = runner.invoke(app, ["run", "--model", "fake:mixed", "--suite", "harmful", "--limit",
                                 "2", "--db", str(db)])
    assert result.exit_code == 0, result.stderr
    return db


def try_import(db: Path, content: bytes) -> None:
    before = rows(db)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "in.jsonl"
        path.write_bytes(content)
        result = runner.invoke(app, ["import", str(path), "--db", str(db)])
    one_clean_line(result, (EXIT_USAGE, EXIT_DATABASE))
    if result.exit_code:  # refused: nothing imported (an empty manifest imports nothing too)
        assert rows(db) == before


@FUZZ
@given(st.binary(max_size=400))
def test_import_of_random_bytes(lab_db, content):
    try_import(lab_db, content)


@FUZZ
@given(st.lists(JSON | RECORD, min_size=1, max_size=5))
def test_import_of_random_json_lines(lab_db, records):
    try_import(lab_db, "\n".join(json.dumps(r) for r in records).encode() + b"\n")


@FUZZ
@given(st.sampled_from(["advbench", "jbb", "xstest", "harmbench", "strongreject", "gsm8k",
                        "decodingtrust"]),
       st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()))
def test_loaders_on_random_files(loader, content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        path.write_bytes(content)
        result = runner.invoke(app, ["run", "--suite", f"{loader}:{path}", "--dry-run"])
    one_clean_line(result)


@FUZZ
@given(st.sampled_from(["reasoning.toml", "attacks.toml", "modifiers.toml", "suites/x.toml"]),
       st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_user_prompt_files_of_random_content(saferlab_home, name, content):
    path = saferlab_home / "prompts" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    try:
        one_clean_line(runner.invoke(app, ["prompts"]))
        one_clean_line(runner.invoke(app, ["run", "--dry-run", "--limit", "1"]))
    finally:
        path.unlink()
