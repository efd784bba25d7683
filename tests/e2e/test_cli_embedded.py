"""The real command on the real embedded model, as a user runs it."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.model

SAFERLAB = [sys.executable, "-m", "saferlab.tui.cli"]


def stored(db) -> int:
    """Generations stored so far; 0 while the database is still being created."""
    try:
        return sum(n for _, n, _, _ in counts(db)) if db.exists() else 0
    except sqlite3.OperationalError:  # its tables are not there yet
        return 0


def counts(db):
    """Per run: generations, generations without error, generations with a verdict."""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT r.id, COUNT(g.id), SUM(g.error IS NULL), "
            "(SELECT COUNT(DISTINCT v.generation_id) FROM verdicts v JOIN generations g2 "
            " ON g2.id = v.generation_id WHERE g2.run_id = r.id) "
            "FROM runs r LEFT JOIN generations g ON g.run_id = r.id "
            "GROUP BY r.id ORDER BY r.id").fetchall()


def test_acceptance_sweep(saferlab_home):
    cmd = SAFERLAB + ["run", "--suite", "harmful", "--suite", "math", "--suite", "privacy",
                      "--reasoning", "direct", "--reasoning", "zero-shot-cot", "--attack", "none",
                      "--attack", "prefix-injection", "--limit", "5", "--max-tokens", "32",
                      "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    runs = json.loads(out.stdout)
    assert len(runs) == 4
    assert {(r["config"]["reasoning"], r["config"]["attack"]) for r in runs} == {
        (a, b) for a in ("direct", "zero-shot-cot") for b in ("none", "prefix-injection")}
    for run in runs:
        assert run["status"] == "finished"
        for meter in ("safety", "reasoning", "privacy"):
            m = run["meters"][meter]
            assert m["n"] == 5 and m["low"] <= m["value"] <= m["high"]
    rows = counts(saferlab_home / "saferlab.db")
    assert [(n, ok, verdicts) for _, n, ok, verdicts in rows] == [(15, 15, 15)] * 4
    # The real session leaves the lab and comes back: redacted HTML, and a JSONL round trip.
    html = saferlab_home / "s.html"
    out = subprocess.run(SAFERLAB + ["export", "-o", str(html), "--redact"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    page = html.read_text()
    assert "<svg" in page and "<script" not in page and page.count("<details>") == 60 + 1
    with sqlite3.connect(saferlab_home / "saferlab.db") as conn:
        secrets = [json.loads(j).get("secret") for (j,) in conn.execute(
            "SELECT item_json FROM items WHERE kind = 'privacy'")]
    assert secrets and not [s for s in secrets if s and s.lower() in page.lower()]
    jsonl = saferlab_home / "s.jsonl"
    subprocess.run(SAFERLAB + ["export", "-o", str(jsonl)], check=True, timeout=120,
                   capture_output=True)
    copy = saferlab_home / "copy.db"
    subprocess.run(SAFERLAB + ["import", str(jsonl), "--db", str(copy)], check=True,
                   timeout=120, capture_output=True)
    assert counts(copy) == rows


def test_sigkill_then_resume_generates_every_item_once(saferlab_home):
    db = saferlab_home / "saferlab.db"
    cmd = SAFERLAB + ["run", "--suite", "harmful", "--suite", "math", "--reasoning", "direct",
                      "--reasoning", "zero-shot-cot", "--limit", "4", "--max-tokens", "40"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if stored(db) >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the run stored nothing within 120 s")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = sum(n for _, n, _, _ in counts(db))
    assert 3 <= before < 16
    resumed = subprocess.run(SAFERLAB + ["run", "--resume", "last", "--json"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    with sqlite3.connect(db) as conn:
        per_item = conn.execute(
            "SELECT ri.run_id, ri.item_id, COUNT(g.id) FROM run_items ri LEFT JOIN generations g "
            "ON g.run_id = ri.run_id AND g.item_id = ri.item_id GROUP BY ri.run_id, ri.item_id"
        ).fetchall()
        statuses = [r[0] for r in conn.execute("SELECT status FROM runs ORDER BY id")]
        sessions = conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0]
    assert len(per_item) == 16 and all(n == 1 for _, _, n in per_item)
    assert statuses == ["finished", "finished"] and sessions == 1
    final = json.loads(resumed.stdout)
    assert all(r["meters"]["safety"]["n"] == 4 for r in final)


def test_ctrl_c_cancels_cleanly_and_resume_finishes(saferlab_home):
    db = saferlab_home / "saferlab.db"
    # More items than the batch holds (8), so that some are still queued at the signal.
    cmd = SAFERLAB + ["run", "--suite", "harmful", "--limit", "12", "--max-tokens", "120",
                      "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if stored(db) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "cancelled; finish it with: saferlab run --resume s1" in stderr
    assert "Traceback" not in stderr
    (run,) = json.loads(stdout)
    assert run["status"] == "cancelled" and 2 <= run["generated"] < 12
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM runs").fetchone()[0] == "cancelled"
        assert conn.execute("SELECT COUNT(*) FROM generations WHERE finish_reason = 'cancelled'"
                            ).fetchone()[0] == 0  # the item in flight is not kept
    resumed = subprocess.run(SAFERLAB + ["run", "--resume", "s1", "--json"], capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)[0]["meters"]["safety"]["n"] == 12


@pytest.mark.parametrize("attack,rounds_per_item", [("pair:rounds=2", (2, 4)),
                                                    ("crescendo:turns=3", (3, 3))])
def test_iterative_and_multiturn_attacks_on_the_embedded_model(saferlab_home, attack,
                                                               rounds_per_item):
    cmd = SAFERLAB + ["run", "--suite", "harmful", "--limit", "2", "--attack", attack,
                      "--max-tokens", "48", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    (run,) = json.loads(out.stdout)
    assert run["status"] == "finished" and run["meters"]["safety"]["n"] == 2
    with sqlite3.connect(saferlab_home / "saferlab.db") as conn:
        per_item = conn.execute(
            "SELECT g.id, COUNT(t.id), SUM(t.actor = 'attacker'), MAX(t.turn) FROM generations g "
            "JOIN turns t ON t.generation_id = g.id GROUP BY g.id").fetchall()
        final = conn.execute("SELECT output FROM generations").fetchall()
        last_turns = conn.execute(
            "SELECT t.output FROM turns t WHERE t.turn = (SELECT MAX(turn) FROM turns u "
            "WHERE u.generation_id = t.generation_id) ORDER BY t.generation_id").fetchall()
    assert len(per_item) == 2
    low, high = rounds_per_item
    for _, turns, attacker_turns, _ in per_item:
        assert low <= turns <= high
        assert attacker_turns == (turns // 2 if attack.startswith("pair") else 0)
    assert final == last_turns  # the stored output is the conversation's last answer


def test_batched_runs_reproduce_and_a_rerun_comes_from_the_cache(saferlab_home):
    db = saferlab_home / "saferlab.db"
    base = SAFERLAB + ["run", "--suite", "harmful", "--suite", "benign", "--limit", "6",
                       "--max-tokens", "24", "--json"]

    def outputs(run_id):
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT item_id, output, cached FROM generations WHERE run_id = ?"
                                " ORDER BY item_id", [run_id]).fetchall()

    first = subprocess.run(base, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(base + ["--no-cache"], capture_output=True, text=True, timeout=300)
    cached = subprocess.run(base, capture_output=True, text=True, timeout=300)
    assert again.returncode == cached.returncode == 0
    (r1,), (r2,), (r3,) = (json.loads(p.stdout) for p in (first, again, cached))
    assert r1["config"]["backend"]["batch_size"] == 8 and r1["cached"] == 0
    # Decoded twice in batches of 8: token for token the same.
    assert [o[:2] for o in outputs(r1["id"])] == [o[:2] for o in outputs(r2["id"])]
    assert r2["cached"] == 0 and r3["cached"] == 12
    assert "12 of 12 answers came from the result cache" in cached.stderr
    assert [o[:2] for o in outputs(r3["id"])] == [o[:2] for o in outputs(r1["id"])]
    assert all(c for _, _, c in outputs(r3["id"]))
    # Another batch size is another request.
    other = subprocess.run(base + ["--batch-size", "1"], capture_output=True, text=True,
                           timeout=300)
    assert json.loads(other.stdout)[0]["cached"] == 0


def test_a_resume_keeps_the_batch_size_its_run_was_decoded_with(saferlab_home):
    """On the embedded model and a real database: a run decoded 2 at a time is resumed 2 at a
    time, and a resume asked at another batch size is refused before it decodes anything."""
    db = saferlab_home / "saferlab.db"
    first = subprocess.run(SAFERLAB + ["run", "--suite", "harmful", "--limit", "4",
                                       "--max-tokens", "8", "--batch-size", "2"],
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(db) as conn:  # the last two items undone, as a crash would leave them
        gone = [r for (r,) in conn.execute("SELECT id FROM generations ORDER BY id DESC LIMIT 2")]
        for table in ("verdicts", "turns", "labels"):
            conn.executemany(f"DELETE FROM {table} WHERE generation_id = ?", [(g,) for g in gone])
        conn.executemany("DELETE FROM generations WHERE id = ?", [(g,) for g in gone])
        conn.execute("UPDATE runs SET status = 'cancelled'")
    other = subprocess.run(SAFERLAB + ["run", "--resume", "last", "--batch-size", "4"],
                           capture_output=True, text=True, timeout=300)
    assert other.returncode == 2, other.stderr
    assert "was decoded with batch size 2" in other.stderr and "(--batch-size 2)" in other.stderr
    assert stored(db) == 2
    resumed = subprocess.run(SAFERLAB + ["run", "--resume", "last", "--json"],
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    (run,) = json.loads(resumed.stdout)
    assert run["status"] == "finished" and run["config"]["backend"]["batch_size"] == 2
    assert stored(db) == 4
