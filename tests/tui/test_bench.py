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


def test_a_ratio_just_under_its_target_is_not_printed_as_the_target():
    f = figures()
    f.update(bench.summarise(f))
    f["ratios"]["tui_vs_cli"] = 0.9496
    f["ratios"]["sequential_generation"] = 0.9712
    text = "\n".join(bench.lines(f))
    assert "0.950x   target >= 0.95: NOT met" in text
    assert "0.97x   target >= 0.97" in text  # two decimals when they do not hide a miss


def test_each_ratio_is_the_median_of_the_ratios_within_a_round():
    def one(plain, lab1, lab8, tui):
        run = {"tokens": 640, "decode_s": 640 / lab1}
        return {"plain": {"tokens": 640, "seconds": 640 / plain, "tokens_per_s": plain},
                # The interface's ratio is to the runner in a process of its own ("cli"),
                # not to this process's batch 8 (here a quarter faster, so a mix-up shows).
                "lab": {"1": run | {"seconds": 640 / lab1, "tokens_per_s": lab1},
                        "8": run | {"seconds": 512 / lab8, "tokens_per_s": lab8 * 1.25}},
                "cli": {"tokens": 640, "seconds": 640 / lab8, "tokens_per_s": lab8},
                "tui": {"tokens": 640, "seconds": 640 / tui, "tokens_per_s": tui}}

    # The machine slows down by half in the second round: both sides move, the ratio holds.
    rounds = [one(160, 152, 256, 240), one(80, 78, 128, 126), one(160, 160, 240, 200)]
    f = figures(rounds=rounds, repeats=3)
    f["decode"] = f["decode"] | {
        "plain": bench.median_run([r["plain"] for r in rounds]),
        "lab": {n: bench.median_run([r["lab"][n] for r in rounds]) for n in ("1", "8")}}
    f["tui"] = bench.median_run([r["tui"] for r in rounds])
    f.update(bench.summarise(f))
    assert f["decode"]["plain"]["tokens_per_s"] == 160  # the round of median duration
    assert f["decode"]["plain"]["repeats_s"] == [4.0, 8.0, 4.0]
    ratios = f["ratios"]
    assert abs(ratios["sequential_end_to_end"] - 0.975) < 1e-9  # 0.95, 0.975, 1.0
    assert abs(ratios["batched_8"] - 2.0) < 1e-9  # 2.0, 2.0, 1.875
    assert abs(ratios["tui_vs_cli"] - 240 / 256) < 1e-9  # 0.9375, 0.984, 0.833
    assert f["ratio_rounds"]["tui_vs_cli"][2] == 200 / 240
    text = "\n".join(bench.lines(f))
    assert "3 rounds" in text and "[0.94 0.98 0.83]" in text


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


def test_a_bench_whose_every_item_failed_gives_no_figure_and_exits_5(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFERLAB_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["bench", "-m", "openai:http://127.0.0.1:9/v1#m",
                                      "--items", "2", "--concurrency", "1"])
    assert result.exit_code == 5, result.output
    assert "no speed to give" in result.stderr and "127.0.0.1:9" in result.stderr
    assert "tokens/s" not in result.stdout


def test_start_up_figures_come_from_the_real_command_and_interface(tmp_path):
    # `saferlab --help` in processes of its own, and the interface started on a pseudo-
    # terminal until its first frame: both measured, whatever the figures are.
    out = bench.startup(str(tmp_path))
    assert out["help_s"] > 0
    assert out["first_frame_s"] is not None and out["first_frame_s"] > 0


def test_every_other_round_runs_backwards(monkeypatch):
    """A machine slowing down within a round favours neither side: the pairs compared (plain
    and batch 1, the command line and the interface) run next to each other, in turn in each
    order."""
    import saferlab.engine.bench as engine_bench

    calls = []
    figure = {"tokens": 10, "seconds": 1.0, "tokens_per_s": 10.0, "decode_s": 1.0,
              "items": 1, "cached": 0, "failed": 0, "load_s": 0.0}
    monkeypatch.setattr(bench, "_batch", lambda *a: (None, [], "m.gguf"))
    monkeypatch.setattr(engine_bench, "plain_llama_cpp",
                        lambda *a: calls.append("plain") or dict(figure))
    monkeypatch.setattr(engine_bench, "lab_decode",
                        lambda spec, options, *a: calls.append(options["batch_size"])
                        or dict(figure))
    monkeypatch.setattr(bench, "in_process",
                        lambda function, *a, **k: calls.append(function[:3]) or dict(figure))
    monkeypatch.setattr(bench, "prefix", lambda *a: {"shared": figure, "not_shared": figure})
    monkeypatch.setattr(bench, "cached_rerun", lambda *a: {})
    monkeypatch.setattr(bench, "startup", lambda folder: {})
    monkeypatch.setattr(bench, "recording", lambda n, folder: {})
    monkeypatch.setattr(bench, "summarise", lambda figures: {})
    figures = bench.measure("embedded", 2, 8, 2, 4, lambda line: None, repeats=2)
    assert calls == ["plain", 1, 2, 4, 8, "run", "tui", "tui", "run", 8, 4, 2, 1, "plain"]
    assert list(figures["rounds"][1]["lab"]) == ["1", "2", "4", "8"]
