import json
import sqlite3

import pytest
from typer.testing import CliRunner

from saferlab.tui.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_bare_command_prints_help():
    result = invoke()
    assert "Usage: saferlab" in result.output and "run" in result.output
    assert result.exit_code == 0


def test_db_path_follows_home_and_option(saferlab_home, tmp_path):
    assert invoke("db", "path").output.strip() == str(saferlab_home / "saferlab.db")
    assert invoke("db", "path", "--db", str(tmp_path / "x.db")).output.strip() == str(tmp_path / "x.db")


def test_prompts_json_lists_every_section():
    data = json.loads(invoke("prompts", "--json").output)
    assert set(data) == {"reasoning_prompts", "modifiers", "attacks", "suites", "loaders", "judges"}
    names = {k: {e["name"] for e in v} for k, v in data.items()}
    assert {"direct", "zero-shot-cot"} <= names["reasoning_prompts"]
    assert {"none", "prefix-injection"} <= names["attacks"]
    assert {"harmful", "math", "privacy"} <= names["suites"]
    assert {"refusal-keywords", "answer-match", "pii-leak"} <= names["judges"]
    assert all(e["description"] for v in data.values() for e in v)


def test_models_lists_the_embedded_model():
    rows = json.loads(invoke("models", "--json").output)
    assert rows[0]["spec"] == "embedded" and rows[0]["size_bytes"] > 90_000_000


def test_run_with_the_fake_backend_prints_runs_as_json(saferlab_home):
    result = runner.invoke(app, ["run", "--model", "fake:refuse", "--suite", "harmful",
                                 "--suite", "math", "--attack", "none", "--attack",
                                 "prefix-injection", "--limit", "3", "--json"])
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    assert len(runs) == 2
    for run in runs:
        assert run["status"] == "finished" and run["generated"] == 6
        assert set(run["meters"]) == {"safety", "reasoning", "privacy"}
        assert run["meters"]["safety"] == {"value": 1.0, "low": pytest.approx(0.4385, abs=1e-4),
                                           "high": 1.0, "n": 3, "k": 3}
        assert run["meters"]["privacy"]["value"] is None
    assert {r["config"]["attack"] for r in runs} == {"none", "prefix-injection"}
    with sqlite3.connect(saferlab_home / "saferlab.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 12
        assert conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] == 12
    listed = json.loads(invoke("runs", "--json").output)
    assert [r["id"] for r in listed] == [2, 1]


def test_no_log_leaves_no_database(saferlab_home):
    result = runner.invoke(app, ["run", "--model", "fake", "--limit", "2", "--no-log", "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 1
    assert not (saferlab_home / "saferlab.db").exists()


@pytest.mark.parametrize("args,code,message", [
    (["--attack", "nope"], 2, "unknown attack 'nope'; known: none, prefix-injection"),
    (["--reasoning", "nope"], 2, "unknown reasoning prompt 'nope'"),
    (["--suite", "nope"], 2, "unknown suite 'nope'"),
    (["--judge", "nope"], 2, "unknown judge 'nope'"),
    (["--model", "hf:x/y"], 2, "unknown model scheme 'hf:'"),
    (["--model", "/nowhere/m.gguf"], 3, "model file not found: /nowhere/m.gguf"),
    (["--resume", "last"], 2, "nothing to resume"),
])
def test_set_up_errors_are_one_line(args, code, message):
    result = runner.invoke(app, ["run", *args])
    assert result.exit_code == code
    assert result.stderr.strip() == f"saferlab: error: {message}" or message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_non_gguf_model_and_unreadable_database(tmp_path):
    bogus = tmp_path / "model.gguf"
    bogus.write_text("hello")
    result = runner.invoke(app, ["run", "--model", str(bogus), "--no-log"])
    assert result.exit_code == 3 and "is not a GGUF model file" in result.stderr
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite" * 500)
    for args in (["run", "--model", "fake", "--db", str(junk)], ["runs", "--db", str(junk)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 4
        assert result.stderr.startswith(f"saferlab: error: cannot open database {junk}")
        assert len(result.stderr.strip().splitlines()) == 1
