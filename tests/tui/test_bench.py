"""`saferlab bench`: its parts run and its report says what each figure is against its
target. Figures themselves are never asserted (a slow machine is not a failure)."""

import json

from typer.testing import CliRunner

from saferlab.tui import bench
from saferlab.tui.cli import app


def figures(**overrides):
    run = {"tokens": 640, "seconds": 4.0, "tokens_per_s": 160.0, "decode_s": 3.9}
    f = {"model": "embedded", "items": 10, "max_tokens": 64, "threads": 2, "cores": 2,
         "decode": {"plain": {"tokens": 640, "seconds": 4.0, "tokens_per_s": 160.0},
                    "lab": {"1": run, "8": run | {"tokens_per_s": 250.0}},
                    "prefix": {"shared": run, "not_shared": run | {"tokens_per_s": 40.0}}},
         "cache": {"first": {"run_s": 20.0, "items": 100, "cached": 0, "peak_rss_mb": 390.0},
                   "rerun": {"run_s": 0.1, "items": 100, "cached": 100, "peak_rss_mb": 380.0}},
         "tui": {"tokens": 640, "seconds": 2.7, "tokens_per_s": 237.0, "key_to_end_s": 2.8},
         "startup": {"help_s": 0.2, "first_frame_s": None},
         "recording": {"generations": 2000, "seconds": 0.5, "per_s": 4000.0}}
    return f | overrides


def test_the_report_gives_each_figure_with_its_target():
    f = figures()
    f.update(bench.summarise(f))
    text = "\n".join(bench.lines(f))
    assert "batch 8, end to end" in text and "1.56x" in text
    assert "target >= 1.5: met" in text  # 250 / 160
    assert "prefix shared" in text and "4.00x" in text
    assert "200x" in text  # 20 s, then 0.1 s
    assert "not measured" in text and "n/a" in text  # no first frame on this machine
    targets = f["targets"]
    assert targets["batched_8"]["met"] and targets["tui_vs_cli"]["met"] is False
    assert targets["first_frame_s"]["met"] is None and targets["help_s"]["met"]


def test_recording_with_the_fake_backend_counts_every_generation(tmp_path):
    out = bench.recording(50, str(tmp_path))
    assert out["generations"] == 50 and out["per_s"] > 0


def test_a_model_without_a_file_gets_the_runners_figure_as_json(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFERLAB_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["bench", "-m", "fake:refuse", "--items", "3", "--json"])
    assert result.exit_code == 0, result.output
    (doc,) = json.loads(result.stdout)
    assert doc["model"] == "fake:refuse" and doc["runner"]["items"] == 3
    assert "through saferlab" in doc["line"]


def test_start_up_figures_come_from_the_real_command_and_interface(tmp_path):
    # `saferlab --help` in processes of its own, and the interface started on a pseudo-
    # terminal until its first frame: both measured, whatever the figures are.
    out = bench.startup(str(tmp_path))
    assert out["help_s"] > 0
    assert out["first_frame_s"] is not None and out["first_frame_s"] > 0
