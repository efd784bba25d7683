"""A training in a process of its own (what ``experiment finetune`` does for each adapter): its
outcome, its set-up errors and its record come back to the parent as if it had trained there,
and the parent never loads torch for it."""

import json
import subprocess
import sys

import pytest

from saferlab.engine.finetune.data import DataSpec
from saferlab.engine.finetune.spec import TrainSpec


def _spec(tmp_path, **kw) -> TrainSpec:
    return TrainSpec(**({"name": "apart", "data": DataSpec(data="direct", n=8, seed=1),
                         "steps": 2, "batch_size": 4, "rank": 2, "alpha": 4, "lr": 3e-3,
                         "threads": 2, "max_len": 160, "out": str(tmp_path / "apart")} | kw))


def test_a_set_up_error_in_the_child_is_the_same_error_in_the_parent(tmp_path):
    from saferlab.engine.errors import SaferlabError
    from saferlab.tui.train_process import train_apart

    spec = _spec(tmp_path, model=f"gguf:{tmp_path / 'missing.gguf'}")
    with pytest.raises(SaferlabError) as err:
        train_apart(tmp_path / "t.db", spec)
    assert err.value.exit_code == 3 and "missing.gguf" in err.value.message


@pytest.mark.model
def test_a_training_apart_returns_its_outcome_and_is_recorded(tmp_path):
    pytest.importorskip("peft")
    # In a fresh interpreter, so that "the parent never imported torch" means something.
    script = f"""
import json, sys
from pathlib import Path
from saferlab.engine.finetune.data import DataSpec
from saferlab.engine.finetune.spec import TrainSpec
from saferlab.tui.train_process import train_apart

spec = TrainSpec.from_dict(json.loads({json.dumps(json.dumps(_spec(tmp_path).to_dict()))}))
outcome = train_apart(Path({str(tmp_path / 't.db')!r}), spec)
print(json.dumps({{"status": outcome.status, "steps": outcome.steps,
                   "peak": outcome.peak_rss_mb, "folder": str(outcome.folder),
                   "id": outcome.training_id, "torch": "torch" in sys.modules}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == "finished" and result["steps"] == 2
    assert result["torch"] is False  # the weights, torch and peft lived in the child only
    assert result["peak"] > 100  # the child's own peak, which loaded the model

    from saferlab.db import Store
    from saferlab.db.trainings import find_training

    row = find_training(Store(tmp_path / "t.db"), "apart")
    assert row["id"] == result["id"] and row["status"] == "finished"
    assert row["adapter_path"] == result["folder"]
    assert (tmp_path / "apart" / "adapter.gguf").is_file()


@pytest.mark.model
def test_a_training_whose_parent_is_killed_stops_with_a_checkpoint(tmp_path):
    """Killed outright (SIGKILL: no handler runs), the parent cannot stop its training; the
    child sees it gone and stops as Ctrl-C stops it, after the current step with a checkpoint,
    instead of training on alone."""
    import os
    import signal
    import sqlite3
    import time

    pytest.importorskip("peft")
    db = tmp_path / "t.db"
    spec = _spec(tmp_path, steps=400, save_every=1)
    script = f"""
import json
from pathlib import Path
from saferlab.engine.finetune.spec import TrainSpec
from saferlab.tui.train_process import train_apart

train_apart(Path({str(db)!r}), TrainSpec.from_dict(json.loads({json.dumps(json.dumps(spec.to_dict()))})))
"""
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)

    def query(sql):
        try:
            with sqlite3.connect(db) as con:
                return con.execute(sql).fetchone()
        except sqlite3.Error:
            return None

    try:
        deadline = time.monotonic() + 240
        while (query("select count(*) from training_steps") or (0,))[0] < 1:
            assert parent.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 120
        while (query("select status from trainings") or ("running",))[0] == "running":
            assert time.monotonic() < deadline, "the training went on without its parent"
            time.sleep(0.5)
    finally:
        if parent.poll() is None:
            parent.kill()
    status, steps = query("select status, steps from trainings")
    assert status == "interrupted" and steps < 400
    assert list(tmp_path.glob(".apart.checkpoints/checkpoint-*"))
