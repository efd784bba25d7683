import subprocess
import sys

FORBIDDEN = ("textual", "typer", "rich", "sqlite_utils", "sqlite3", "llama_cpp", "torch")


def test_engine_imports_no_front_end_sql_or_heavy_library(tmp_path):
    code = ("import sys, saferlab.engine, saferlab.engine.plan, saferlab.engine.runner; "
            "print(sorted({m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    loaded = set(eval(out.stdout))
    assert "saferlab" in loaded
    assert loaded.isdisjoint(FORBIDDEN), loaded & set(FORBIDDEN)


def test_no_generic_top_level_names_are_installed(tmp_path):
    # From a neutral directory, only the saferlab namespace resolves.
    code = ("import importlib.util as u; "
            "print([n for n in ('engine', 'db', 'tui', 'prompts') if u.find_spec(n)]); "
            "import saferlab.engine, saferlab.db, saferlab.tui, saferlab.prompts; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    assert out.stdout.split() == ["[]", "ok"]


def test_db_imports_no_front_end(tmp_path):
    code = ("import sys, saferlab.db, saferlab.db.analyses, saferlab.db.exchange, "
            "saferlab.db.importing, saferlab.db.browse, saferlab.db.trainings; "
            "print(sorted({m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    loaded = set(eval(out.stdout))
    assert "sqlite_utils" in loaded
    assert loaded.isdisjoint({"textual", "typer", "rich", "llama_cpp", "torch"}), loaded
