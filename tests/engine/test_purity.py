import subprocess
import sys

FORBIDDEN = ("textual", "typer", "rich", "sqlite_utils", "sqlite3", "llama_cpp", "torch")


def top_level_modules_after(modules: str, cwd) -> set[str]:
    """The top-level packages a fresh interpreter holds after importing ``modules``."""
    code = (f"import sys, {modules}; "
            "print(sorted({m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=cwd)
    return set(eval(out.stdout))


def test_engine_imports_no_front_end_sql_or_heavy_library(tmp_path):
    loaded = top_level_modules_after(
        "saferlab.engine, saferlab.engine.plan, saferlab.engine.runner", tmp_path)
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
    loaded = top_level_modules_after(
        "saferlab.db, saferlab.db.analyses, saferlab.db.exchange, saferlab.db.importing, "
        "saferlab.db.browse, saferlab.db.trainings", tmp_path)
    assert "sqlite_utils" in loaded
    assert loaded.isdisjoint({"textual", "typer", "rich", "llama_cpp", "torch"}), loaded
