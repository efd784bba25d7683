"""The fine-tuning commands from the command line: one clear line and a documented exit code for
bad input, the experiment's plan, and its report over a stored session."""

import json

import pytest
from typer.testing import CliRunner

from saferlab.tui.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args, message", [
    (["--data", "verbose"], "--data is one of"),
    (["--name", "a+b"], "adapter name 'a+b'"),
    (["--model", "openai:http://127.0.0.1:9/v1#m"], "fine-tuning needs local weights"),
    (["--steps", "5", "--epochs", "1"], "--steps or --epochs"),
    (["--safety", "plain", "--safety-ratio", "1.5"], "between 0 and 1"),
    (["--resume", "nothing-here"], "no training 'nothing-here'"),
    (["--recipe", "no-such-recipe"], "no shipped recipe 'no-such-recipe'"),
    (["--epochs", "0"], "--epochs must be a number above 0, not 0.0"),
    (["--epochs", "nan"], "--epochs must be a number above 0, not nan"),
    (["--name", ""], "adapter name ''"),
    (["--datasets", "/no/such/saferlab/folder"], "no such folder"),
])
def test_bad_finetune_options_are_one_line_and_exit_2(tmp_path, args, message):
    result = runner.invoke(app, ["finetune", "--db", str(tmp_path / "t.db"), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output


def test_a_missing_model_file_is_exit_3(tmp_path):
    result = runner.invoke(app, ["finetune", "--db", str(tmp_path / "t.db"), "--model",
                                 str(tmp_path / "missing.gguf"), "--steps", "1"])
    assert result.exit_code == 3, result.output
    assert "missing.gguf" in result.output


def test_the_experiment_lists_its_trainings_and_runs(tmp_path):
    result = runner.invoke(app, ["experiment", "finetune", "--dry-run", "--out",
                                 str(tmp_path / "exp"), "--datasets", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    names = [line.split("--name ")[1].split()[0] for line in lines if line.startswith("train:")]
    assert names == ["aligned", "direct", "cot", "long-cot", "long-cot-reflective"]
    assert all(f"--on {tmp_path / 'exp' / 'aligned'}" in line
               for line in lines if line.startswith("train:") and "--name aligned " not in line)
    assert "6 configurations" in result.output and "prefix-injection" in result.output
    sized = runner.invoke(app, ["experiment", "finetune", "--dry-run", "--sizes", "100,200",
                                "--out", str(tmp_path / "exp")])
    assert "long-cot-n100" in sized.output and "long-cot-n200" in sized.output
    planned = json.loads(runner.invoke(app, ["experiment", "finetune", "--dry-run", "--json",
                                             "--out", str(tmp_path / "exp")]).stdout)
    assert [t["name"] for t in planned["trainings"]] == names
    assert {t["state"] for t in planned["trainings"]} == {"train"}
    assert planned["configurations"] == 6
    for args, says in ((["--sizes", "ten"], "--sizes"), (["--sizes", "100,0"], "at least 1"),
                       (["--sizes", "1_0"], "--sizes takes numbers"),
                       (["--model", "fake:ok"], "local weights"),
                       (["--harmful", "foo"], "advbench:PATH")):
        # checked before anything trains: a bad last training would fail an hour in
        bad = runner.invoke(app, ["experiment", "finetune", "--dry-run", *args])
        assert bad.exit_code == 2 and says in bad.output, bad.output


def test_a_resume_by_name_takes_the_interrupted_training_of_that_name(tmp_path):
    from saferlab.db import Store
    from saferlab.db.trainings import TrainingLog, find_training

    store = Store(tmp_path / "t.db")
    log = TrainingLog(store)
    config = {"spec": {"name": "y", "model": "embedded"}}
    first = log.start_training(config, [], "d1")
    log.finish_training(first, "interrupted", {})
    second = log.start_training(config, [], "d2")
    log.finish_training(second, "finished", {})
    assert find_training(store, "y")["id"] == second
    assert find_training(store, "y", unfinished_first=True)["id"] == first
    assert find_training(store, f"t{second}", unfinished_first=True)["id"] == second


def test_the_report_sets_each_stack_against_aligned(tmp_path):
    from saferlab.db import Store
    from saferlab.engine.lab import Lab
    from saferlab.engine.plan import SessionSpec, plan_session

    db = tmp_path / "r.db"
    store = Store(db)
    plans = plan_session(SessionSpec(model="fake:mixed", suites=("harmful", "math"), limit=4,
                                     attacks=("none", "prefix-injection")))
    plans += plan_session(SessionSpec(model="fake:mixed", suites=("harmful", "math"), limit=4,
                                      attacks=("none", "prefix-injection")))
    outcome = Lab(recorder=store).run(plans)
    # The fake backend takes no adapters: label the second pair of runs as if it had one.
    for run, adapter in zip(outcome.runs, (None, None, "aligned", "aligned")):
        if adapter:
            config = json.loads(next(store.query("SELECT config_json FROM runs WHERE id = ?",
                                                 [run.run_id]))["config_json"])
            config["adapter"] = adapter
            with store.transaction():
                store.db.execute("UPDATE runs SET config_json = ? WHERE id = ?",
                                 [json.dumps(config), run.run_id])
    result = runner.invoke(app, ["experiment", "report", f"s{outcome.session_id}", "--db",
                                 str(db), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {r["aligned_run_id"] for r in data["against_aligned"]} == {
        outcome.runs[2].run_id, outcome.runs[3].run_id}
    first = data["against_aligned"][0]
    assert {m["meter"] for m in first["meters"]} >= {"safety", "reasoning"}
    assert all(m["paired"] for m in first["meters"])
    text = runner.invoke(app, ["experiment", "report", "last", "--db", str(db)])
    assert "against aligned" in text.output and "[aligned]" in text.output


def test_training_progress_in_a_log_is_a_line_per_stage_and_ten_steps():
    import io

    from rich.console import Console

    from saferlab.engine.events import (TrainingFinished, TrainingStage, TrainingStarted,
                                        TrainingStep)
    from saferlab.tui.progress import TrainingView

    out = io.StringIO()
    view = TrainingView(Console(file=out, width=120), enabled=False)
    with view:
        view(TrainingStage(None, "loading embedded"))
        view(TrainingStarted(1, "cot", 20, 160))
        for step in range(1, 21):
            view(TrainingStep(1, step, 20, 1.0 / step, 1e-4, step * 100, 250.0, (20 - step) * 6.0))
        view(TrainingFinished(1, "finished", "/x/cot"))
    lines = out.getvalue().splitlines()
    assert lines == ["loading embedded",
                     "step 10/20, loss 0.100, 250 tok/s, eta 1.0 min",
                     "step 20/20, loss 0.050, 250 tok/s, eta 0.0 min"]
