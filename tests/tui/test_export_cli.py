import json
import os
import stat

import pytest

from typer.testing import CliRunner

from saferlab.engine.errors import SaferlabError
from saferlab.tui.cli import app

runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def fake_session(*extra):
    result = cli("run", "--model", "fake:mixed", "--suite", "harmful", "--suite", "privacy",
                 "--limit", "3", "--reasoning", "direct", "--reasoning", "zero-shot-cot", *extra)
    assert result.exit_code == 0, result.stderr


def test_export_each_format_to_a_file(tmp_path):
    fake_session()
    umask = os.umask(0)
    os.umask(umask)
    for fmt in ("jsonl", "csv", "md", "html"):
        out = tmp_path / f"session.{fmt}"
        result = cli("export", "-o", out)
        assert result.exit_code == 0, result.stderr
        assert f"exported 2 run(s), 12 generation(s) as {fmt}" in result.stderr
        assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
    assert (tmp_path / "session.csv").read_bytes().startswith(b"\xef\xbb\xbfsession_id,")
    side = json.loads((tmp_path / "session.csv.manifest.json").read_text())
    assert side["counts"]["generations"] == 12
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_export_to_stdout_and_format_errors(tmp_path):
    fake_session()
    result = cli("export", "r1", "--format", "md")
    assert result.exit_code == 0 and result.stdout.startswith("# saferlab export: s1")
    result = cli("export", "--format", "pdf")
    assert result.exit_code == 2 and "unknown format 'pdf'" in result.stderr
    result = cli("export", "s7")
    assert result.exit_code == 2 and "no session s7" in result.stderr
    result = cli("export", "-o", tmp_path / "missing" / "x.jsonl")
    assert result.exit_code == 2 and "does not exist" in result.stderr


def test_an_export_never_replaces_the_database_a_folder_or_a_device(tmp_path):
    db = tmp_path / "lab.db"
    result = cli("run", "--model", "fake:mixed", "--limit", "2", "--db", db)
    assert result.exit_code == 0, result.stderr
    before = db.read_bytes()
    for target in (db, tmp_path / "lab.db-wal", tmp_path / "." / "lab.db"):
        result = cli("export", "-o", target, "--format", "jsonl", "--db", db)
        assert result.exit_code == 2 and "is the database being exported" in result.stderr
    (tmp_path / "folder.jsonl").mkdir()
    result = cli("export", "-o", tmp_path / "folder.jsonl", "--db", db)
    assert result.exit_code == 2 and "is a directory" in result.stderr  # typer checks it first
    from saferlab.db import Store
    from saferlab.tui.exporting import export_file

    with pytest.raises(SaferlabError, match="it is a folder"):  # the interface's way in
        export_file(Store(db), ["last"], "jsonl", tmp_path / "folder.jsonl", False)
    result = cli("export", "-o", tmp_path / ("x" * 300 + ".jsonl"), "--db", db)
    assert result.exit_code == 2 and "cannot write" in result.stderr
    assert "Traceback" not in result.output and ".xxxx" not in result.stderr  # not the temp file
    assert db.read_bytes()[:16] == before[:16] == b"SQLite format 3\x00"


def test_a_failed_export_keeps_the_previous_file(tmp_path, monkeypatch):
    fake_session()
    out = tmp_path / "keep.jsonl"
    out.write_text("the good export\n")
    import saferlab.engine.export.flat as flat

    def boom(out_, data):
        out_.write("half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(flat, "write_jsonl", boom)
    result = cli("export", "-o", out)
    assert result.exit_code != 0
    assert out.read_text() == "the good export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "keep.jsonl"]


def test_import_command(tmp_path):
    fake_session()
    path = tmp_path / "s.jsonl"
    assert cli("export", "-o", path, "--redact").exit_code == 0
    result = cli("import", path, "--db", tmp_path / "colleague.db")
    assert result.exit_code == 0, result.stderr
    assert "imported 1 session(s), 2 run(s), 12 generation(s)" in result.stderr
    assert "redacted" in result.stderr and result.stdout.strip() == "s1"
    result = cli("runs", "--db", tmp_path / "colleague.db", "--json")
    assert [r["id"] for r in json.loads(result.stdout)] == [2, 1]
    result = cli("import", path, "--db", tmp_path / "colleague.db")
    assert result.exit_code == 2 and "already in" in result.stderr
    result = cli("import", tmp_path / "nope.jsonl")
    assert result.exit_code == 2 and "cannot read" in result.stderr
