"""The Textual lab driven by a Pilot against the scripted fake backend."""

import json
import sqlite3

import pytest

from saferlab.engine.backends.fake import REFUSAL
from saferlab.tui.settings import load_settings

from .tui_helpers import (fake_factory, make_app, run, screen_text, segments, settle,
                          ticking_clock, use_model)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

HOSTILE = "[bold red]x[/] [link=file:///etc/passwd]y[/link] \x1b[31mz \x1b]0;owned\x07"


def configure(screen, reasoning="direct", suites=("harmful", "math"), sample=3,
              attacks=("none",)):
    from textual.widgets import Input, Select, SelectionList

    screen.query_one("#reasoning", Select).value = reasoning
    for widget_id, chosen in (("#suites", suites), ("#attacks", attacks)):
        widget = screen.query_one(widget_id, SelectionList)
        widget.deselect_all()
        for value in chosen:
            widget.select(value)
    screen.query_one("#sample", Input).value = str(sample)


async def resume_from_history(app, pilot, run_id=1, before=None):
    """History (h), run ``run_id`` and its items shown, then r: the run resumes."""
    await pilot.press("h")
    await pilot.pause(0.2)
    app.screen.show_runs(run_id)
    if before is not None:
        before()
    app.screen.show_items(run_id)
    await pilot.press("r")
    await settle(app, pilot)


def test_the_whole_flow(tmp_path):
    from textual.widgets import DataTable, Input

    app = make_app(tmp_path)

    async def flow():
        async with app.run_test(size=(150, 50)) as pilot:
            main = app.screen
            # Choose a model in the picker: type its spec.
            await pilot.press("m")
            await pilot.pause()
            assert type(app.screen).__name__ == "ModelPicker"
            app.screen.query_one("#typed", Input).value = "fake:mixed"
            await pilot.click("#use-typed")
            await settle(app, pilot)
            assert app.screen is main and app.settings.model == "fake:mixed"
            assert "loaded" in str(main.query_one("#model-line").render())
            # Toggle zero-shot-cot and fire a batch of 6 items.
            configure(main, reasoning="zero-shot-cot")
            await pilot.press("f")
            await settle(app, pilot)
            gauges = {g.meter_name: g.meter for g in main.query("MeterGauge")}
            assert gauges["safety"]["n"] == 3 and gauges["reasoning"]["n"] == 3
            assert gauges["privacy"]["n"] == 0
            assert "6/6 items" in str(main.query_one("#progress").render())
            # Compare two configurations on the same items.
            await pilot.press("c")
            await pilot.pause()
            await pilot.press("f")
            await settle(app, pilot, 0.4)
            stats = app.screen.query_one("#stats", DataTable)
            assert stats.row_count >= 2
            assert app.screen.query_one("#pairs", DataTable).row_count == 6
            assert "safety ↑" in screen_text(app)
            await pilot.press("escape")
            await pilot.pause()
            # History: the sessions, then an item in full, labelled by one key.
            await pilot.press("h")
            await pilot.pause(0.3)
            history = app.screen
            assert history.query_one("#sessions", DataTable).row_count == 2
            history.show_runs(1)
            history.show_items(1)
            items = history.query_one("#items", DataTable)
            assert items.row_count == 6
            from saferlab.tui.screens.item import ItemScreen

            first_harmful = next(int(k.value) for k in items.rows
                                 if "harmful" in str(items.get_row(k)[0]))
            app.push_screen(ItemScreen(first_harmful))
            await pilot.pause()
            await pilot.press("u")
            await pilot.pause()
            assert "human safety: unsafe" in screen_text(app)
            await pilot.press("escape")
            await pilot.pause()
            await pilot.press("escape")
            await pilot.pause()
            # Export the session.
            await pilot.press("e")
            await pilot.pause()
            from textual.widgets import Select

            app.screen.query_one("#format", Select).value = "jsonl"
            await pilot.pause()  # choosing a format proposes a file name
            assert app.screen.query_one("#path", Input).value.endswith("saferlab-s2.jsonl")
            app.screen.query_one("#path", Input).value = str(tmp_path / "s.jsonl")
            await pilot.click("#go")
            await settle(app, pilot)

    run(flow())
    with sqlite3.connect(tmp_path / "lab.db") as conn:
        runs = conn.execute("SELECT reasoning, attack, status, n_items FROM runs ORDER BY id").fetchall()
        assert runs[0] == ("zero-shot-cot", "none", "finished", 6)
        assert len(runs) == 3 and runs[1][0] == "zero-shot-cot" and runs[2][0] == "zero-shot-cot"
        assert conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 18
        assert conn.execute("SELECT label FROM labels").fetchall() == [("unsafe",)]
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["record"] == "manifest" and len(lines) == 1 + 12 + 1
    assert json.loads(lines[-1]) | {"sha256": None} == {"record": "end", "records": 12,
                                                        "generations": 12, "sha256": None}
    # The choices are remembered.
    saved = load_settings(tmp_path / "tui.json")
    assert saved.model == "fake:mixed" and saved.reasoning == "zero-shot-cot" and saved.sample == 3


def test_model_output_is_shown_literally(tmp_path):
    from textual.widgets import Static

    app = make_app(tmp_path, script=lambda request: HOSTILE)

    async def flow():
        async with app.run_test(size=(150, 50)) as pilot:
            use_model(app, "fake:hostile")
            configure(app.screen, suites=("harmful",), sample=2)
            await pilot.press("f")
            await settle(app, pilot)
            shown = str(app.screen.query_one("#item-output", Static).render())
            assert "[bold red]x[/]" in shown
            assert "[link=file:///etc/passwd]y[/link]" in shown
            assert "\x1b" not in shown and "␛[31mz" in shown
            text = screen_text(app)
            assert "[bold red]x[/]" in text and "[link=file:///etc/passwd]y[/link]" in text
            for seg in segments(app):
                assert "\x1b" not in seg.text and "\x07" not in seg.text
                assert not (seg.style and seg.style.link), seg

    run(flow())


def test_cancel_keeps_what_was_done_and_the_screen_stays_live(tmp_path):
    from textual.widgets import DataTable

    calls = []

    def slow_after_two(request):
        calls.append(request)
        return REFUSAL if len(calls) <= 2 or len(calls) > 3 else " ".join(["thinking"] * 400)

    app = make_app(tmp_path, script=slow_after_two, token_delay=0.01)

    async def flow():
        async with app.run_test(size=(150, 50)) as pilot:
            use_model(app, "fake:refuse")
            configure(app.screen, suites=("harmful",), sample=8)
            await pilot.press("f")
            await pilot.pause(0.6)
            # While it runs: switch screens and come back.
            await pilot.press("h")
            await pilot.pause(0.2)
            assert app.screen.query_one("#sessions", DataTable).row_count == 1
            await pilot.press("escape")
            await pilot.pause()
            assert app.batch_running
            await pilot.press("escape")  # cancel
            await settle(app, pilot)
            assert not app.batch_running
            assert "cancelled" in screen_text(app)
            with sqlite3.connect(tmp_path / "lab.db") as conn:
                status, n = conn.execute("SELECT status, n_items FROM runs").fetchone()
                done = conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
            assert status == "cancelled" and done == 2 and n == 8
            # Resume it from history: the rest is generated, nothing twice.
            calls.clear()
            calls.extend([None, None])  # the rest answer quickly
            await resume_from_history(app, pilot)

    run(flow())
    with sqlite3.connect(tmp_path / "lab.db") as conn:
        status, n = conn.execute("SELECT status, n_items FROM runs").fetchone()
        done = conn.execute("SELECT COUNT(DISTINCT item_id) FROM generations").fetchone()[0]
        rows = conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    assert status == "finished" and done == rows == n == 8


def test_failed_items_are_counted_and_retried_from_history(tmp_path):
    from textual.widgets import DataTable

    server = {"down": True}
    app = make_app(tmp_path, fail=lambda request: "connection refused" if server["down"] else None)

    async def flow():
        async with app.run_test(size=(150, 50)) as pilot:
            use_model(app, "fake:refuse")
            configure(app.screen, suites=("harmful",), sample=3)
            await pilot.press("f")
            await settle(app, pilot)
            text = screen_text(app)
            assert "r1 failed: every item failed (3)" in text and "retry" in text
            def check_and_restore():
                runs = app.screen.query_one("#runs", DataTable)
                assert "failed with 3 errors" in str(runs.get_row_at(0)[2])
                server["down"] = False

            await resume_from_history(app, pilot, before=check_and_restore)

    run(flow())
    with sqlite3.connect(tmp_path / "lab.db") as conn:
        status, error = conn.execute("SELECT status, error FROM runs").fetchone()
        errors = conn.execute("SELECT COUNT(*) FROM generations WHERE error IS NOT NULL")
        assert (status, error, errors.fetchone()[0]) == ("finished", None, 0)
        assert conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0] == 3


def test_a_model_that_fails_to_load_is_shown_not_raised(tmp_path):
    from saferlab.tui.app import LabApp

    app = LabApp(tmp_path / "lab.db", settings_file=tmp_path / "tui.json", autoload=False)

    async def flow():
        async with app.run_test(size=(150, 50)) as pilot:
            main = app.screen
            main._picked(str(tmp_path / "missing.gguf"))
            await settle(app, pilot)
            line = str(main.query_one("#model-line").render())
            assert "failed" in line and "missing.gguf" in line
            assert main.query_one("#model-line").has_class("-error")
            configure(main, suites=("harmful",), sample=1)
            await pilot.press("f")
            await settle(app, pilot)
            assert type(app.screen).__name__ == "ErrorScreen"
            assert "missing.gguf" in str(app.screen.query_one("#error-message").render())
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is main and "batch failed" in screen_text(app)

    run(flow())


def test_damaged_settings_fall_back_to_defaults(tmp_path):
    path = tmp_path / "tui.json"
    path.write_text('{"model": 7, "sample": "x", "reasoning": "long-cot", "junk": 1')
    assert load_settings(path).model == "embedded"
    path.write_text('{"model": 7, "sample": "x", "reasoning": "long-cot", "junk": 1}')
    s = load_settings(path)
    assert s.model == "embedded" and s.sample == 5 and s.reasoning == "long-cot"


def test_saved_values_the_interface_cannot_use_fall_back_to_defaults(tmp_path):
    path = tmp_path / "tui.json"
    path.write_text(json.dumps({"export_format": "pdf", "max_tokens": -3, "sample": 0,
                                "batch_size": 0, "suites": [1, "math"], "reasoning": "long-cot"}))
    s = load_settings(path)
    assert (s.export_format, s.max_tokens, s.sample, s.batch_size) == ("html", 256, 5, 8)
    assert s.suites == ["harmful", "math"] and s.reasoning == "long-cot"
    path.write_text(json.dumps({"max_tokens": 10 ** 12, "sample": True}))  # a typo, a bool
    s = load_settings(path)
    assert (s.max_tokens, s.sample) == (256, 5)


def test_the_export_dialog_asks_before_replacing_a_file(tmp_path):
    from saferlab.tui.screens.export import ExportScreen

    app = make_app(tmp_path)
    notes = []
    app.tell = lambda text, error=False: notes.append(text)
    good = tmp_path / "good.html"
    good.write_text("PRECIOUS")

    async def flow():
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(app, pilot)
            app.push_screen(ExportScreen(None))
            await pilot.pause()
            from textual.widgets import Select

            app.screen.query_one("#format", Select).value = "csv"
            await pilot.pause()
            from textual.widgets import Input

            app.screen.query_one("#path", Input).value = str(good) + "/"
            await pilot.click("#go")
            await pilot.pause()
            assert isinstance(app.screen, ExportScreen)  # asked, not written
            assert good.read_text() == "PRECIOUS"
            assert any(f"{good} exists (a .html file; this export is .csv): press Export "
                       "again" in n for n in notes), notes

    run(flow())
    from textual.widgets import Checkbox, Input, Select

    from saferlab.tui.settings import Settings, save_settings

    save_settings(Settings(model="fake:refuse", reasoning="long-cot", modifiers=["safety-system"],
                           sample=7), tmp_path / "tui.json")
    app = make_app(tmp_path)

    async def flow():
        async with app.run_test(size=(150, 50)) as pilot:
            await pilot.pause()
            screen = app.screen
            assert screen.query_one("#reasoning", Select).value == "long-cot"
            assert screen.query_one("#mod-safety-system", Checkbox).value is True
            assert screen.query_one("#mod-safety-demos", Checkbox).value is False
            assert screen.query_one("#sample", Input).value == "7"
            assert "fake:refuse" in str(screen.query_one("#model-line").render())
            # A change is saved at once, not only when a batch is fired.
            screen.query_one("#reasoning", Select).value = "step-back"
            await pilot.pause()

    run(flow())
    assert load_settings(tmp_path / "tui.json").reasoning == "step-back"


def test_adapter_toggles_list_what_the_backend_loads(tmp_path):
    from saferlab.db import Store
    from saferlab.db.adapters import adapters_for

    store = Store(tmp_path / "lab.db")
    for name, kind in (("cot-lora", "gguf-lora"), ("safety-peft", "peft"), ("served", "served"),
                       ("deleted", "gguf-lora")):
        path = tmp_path / name
        if name != "deleted":
            path.write_text("weights")
        store.register_adapter({"name": name, "kind": kind, "path": str(path), "sha256": "0" * 64})
    # a registered file that is gone is not offered
    # (besides those shipped with saferlab for the embedded model)
    assert [a["name"] for a in adapters_for(store, "embedded")
            if a["origin"] != "shipped"] == ["cot-lora"]
    assert [a["name"] for a in adapters_for(store, "hf:/models/x")] == ["safety-peft"]
    assert [a["name"] for a in adapters_for(store, "openai:http://h/v1#m")] == ["served"]
    assert adapters_for(store, "fake:mixed") == []


def test_the_interface_starts_without_heavy_libraries():
    import subprocess
    import sys

    code = ("import sys; import saferlab.tui.cli, saferlab.tui.app, saferlab.tui.screens.main, "
            "saferlab.tui.screens.compare, saferlab.tui.screens.history, saferlab.db; "
            "heavy = [m for m in ('torch', 'transformers', 'llama_cpp', 'pandas', 'numpy', "
            "'matplotlib', 'faker') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_model_judge_can_be_another_model(tmp_path):
    from textual.widgets import Input, SelectionList

    from saferlab.tui.plans import build_plans

    app = make_app(tmp_path)

    async def flow():
        async with app.run_test(size=(150, 50)) as pilot:
            use_model(app, "fake:mixed")
            app.screen.query_one("#judges", SelectionList).select("llm-judge")
            app.screen.query_one("#judge-model", Input).value = "fake:refuse"
            await pilot.pause()
            plans = build_plans(app.settings)
            assert {p.spec.judge_model for p in plans} == {"fake:refuse"}
            app.screen.query_one("#judge-model", Input).value = ""
            await pilot.pause()
            assert {p.spec.judge_model for p in build_plans(app.settings)} == {"fake:mixed"}

    run(flow())
    assert load_settings(tmp_path / "tui.json").judge_model == ""


def test_the_lab_fits_an_80x24_terminal(tmp_path):
    from textual.widgets import Input

    app = make_app(tmp_path)

    async def flow():
        async with app.run_test(size=(80, 24)) as pilot:
            use_model(app, "fake:mixed")
            await pilot.pause()
            text = screen_text(app)
            for title in ("Safety", "Reasoning", "Privacy", "Over-refusal", "Items per suite"):
                assert title in text, title
            sample = app.screen.query_one("#sample", Input).region
            assert sample.height and sample.bottom <= 23  # in view, above the footer
            assert app.screen.has_class("-narrow") and app.screen.has_class("-short")

    run(flow())


def test_a_new_batch_clears_the_last_one_and_the_configuration_folds(tmp_path):
    from textual.widgets import Static

    app = make_app(tmp_path, token_delay=0.05)

    async def flow():
        async with app.run_test(size=(120, 40)) as pilot:
            use_model(app, "fake:refuse")
            configure(app.screen, suites=("harmful",), sample=2)
            await pilot.press("f")
            await settle(app, pilot)
            assert "2/2 items" in str(app.screen.query_one("#progress", Static).render())
            configure(app.screen, suites=("harmful",), sample=3)
            await pilot.press("f")
            await pilot.pause(0.01)
            # The progress line counts the new batch from nothing, before its first item ends.
            progress = str(app.screen.query_one("#progress", Static).render())
            assert "2/2 items" not in progress and "/3 items" in progress
            await settle(app, pilot)
            left = app.screen.query_one("#left")
            live_width = app.screen.query_one("#live").region.width
            await pilot.press("b")
            await pilot.pause()
            assert not left.display and app.screen.query_one("#live").region.width > live_width
            await pilot.press("b")
            await pilot.pause()
            assert left.display and left.region.width

    run(flow())


def test_the_batch_size_is_a_choice_of_the_lab(tmp_path):
    from textual.widgets import Input

    app = make_app(tmp_path)

    async def flow():
        async with app.run_test(size=(120, 40)) as pilot:
            use_model(app, "fake:refuse")
            app.screen.query_one("#batch-size", Input).value = "2"
            await pilot.pause()
            assert app.settings.batch_size == 2
            configure(app.screen, suites=("harmful",), sample=2)
            await pilot.press("f")
            await settle(app, pilot)
            assert app.loaded.options["batch_size"] == 2
            for bad in ("nonsense", "0", "-5"):
                box = app.screen.query_one("#batch-size", Input)
                box.value = bad
                await pilot.pause()
                assert app.settings.batch_size == 2  # the last good number stays
                assert box.has_class("-invalid") or bad == "nonsense", bad
            sample = app.screen.query_one("#sample", Input)
            sample.value = "0"  # not quietly 1: an empty batch is never fired either
            await pilot.pause()
            assert app.settings.sample == 2 and sample.has_class("-invalid")

    run(flow())
    assert json.loads((tmp_path / "tui.json").read_text())["batch_size"] == 2


def test_every_load_and_batch_runs_on_the_one_model_thread(tmp_path):
    """llama.cpp keeps compute threads for each thread that decodes, and a pool left by
    another thread slows the decoding one: loads and batches all run on the model thread."""
    import threading

    from saferlab.tui.app import LabApp

    seen = []

    def script(request):
        seen.append(("decode", threading.get_ident()))
        return REFUSAL

    scripted = fake_factory(script)

    def factory(spec):
        seen.append(("load", threading.get_ident()))
        return scripted(spec)

    app = LabApp(tmp_path / "lab.db", backend_factory=factory, settings_file=tmp_path / "t.json",
                 autoload=False, clock=ticking_clock())
    threads = {}

    async def flow():
        async with app.run_test(size=(120, 40)) as pilot:
            use_model(app, "fake:refuse")
            app.load_model("fake:comply", app.screen)  # the model picker's load
            await settle(app, pilot)
            # The first batch loads fake:refuse, the second reuses it (other items: the
            # cache would answer the same ones).
            for suite in ("harmful", "benign"):
                configure(app.screen, suites=(suite,), sample=2)
                await pilot.press("f")
                await settle(app, pilot)
            threads["model"] = app.model_thread.submit(threading.get_ident).result()

    run(flow())
    assert [kind for kind, _ in seen].count("load") == 2
    assert [kind for kind, _ in seen].count("decode") == 4
    assert {ident for _, ident in seen} == {threads["model"]}
    assert threads["model"] != threading.get_ident()


def test_a_streaming_output_is_laid_out_every_few_rows_and_never_cut(tmp_path):
    """Streaming adds words where rows are reserved: a layout pass (the costly part of a
    repaint) comes only when the output outgrows them, and every row stays visible."""
    from textual.widgets import Static

    from saferlab.tui.widgets.transcript import GROW_ROWS, Transcript

    app = make_app(tmp_path)

    async def flow():
        async with app.run_test(size=(100, 40)) as pilot:
            transcript = app.screen.query_one(Transcript)
            output = app.screen.query_one("#item-output", Static)
            transcript.begin(1, "harmful/1", "a request")
            await pilot.pause(0.05)
            layouts = []
            original = output.refresh

            def counting(*args, layout=False, **kwargs):
                layouts.append(layout)
                return original(*args, layout=layout, **kwargs)

            output.refresh = counting
            words = [f"word{i} " for i in range(150)]
            passes = 0  # flushes that asked for a layout pass
            for word in words:
                before = sum(layouts)
                transcript.stream("harmful/1", word)
                passes += sum(layouts) > before
                await pilot.pause(0)
            await pilot.pause(0.1)
            rows = -(-len("".join(words)) // output.content_size.width)
            assert rows >= 2 * GROW_ROWS  # the output grew well past one reservation
            assert 0 < passes <= rows // GROW_ROWS + 2  # not a pass per row
            assert output.content_size.height >= rows  # nothing cut off
            assert output.render().plain.rstrip().endswith("word149")

    run(flow())


def test_a_new_item_is_a_repaint_not_a_layout_pass_and_the_log_keeps_every_line(tmp_path):
    """The item's panel keeps its rows from item to item, so a new item of no more rows than
    the last asks for no layout pass of the screen; one that needs more rows gets them. Log
    lines written in a burst come out together, all of them, in order."""
    from textual.widgets import RichLog, Static

    from saferlab.tui.widgets.transcript import Transcript

    app = make_app(tmp_path)
    verdicts = [{"judge": "refusal-keywords", "meter": "safety", "label": "refused",
                 "part": "full", "passed": True, "error": None}]

    async def flow():
        async with app.run_test(size=(100, 40)) as pilot:
            transcript = app.screen.query_one(Transcript)
            layouts = []
            for part in ("#item-title", "#item-prompt", "#item-output", "#item-verdicts"):
                widget = app.screen.query_one(part, Static)

                def counting(*args, layout=False, _original=widget.refresh, _part=part,
                             **kwargs):
                    layouts.append((_part, layout))
                    return _original(*args, layout=layout, **kwargs)

                widget.refresh = counting
            answer = " ".join(f"word{i}" for i in range(40))

            def item(i: int, prompt: str) -> None:
                transcript.begin(1, f"harmful/{i}", prompt)
                transcript.stream(f"harmful/{i}", answer)
                transcript.judged(1, f"harmful/{i}", prompt, answer, verdicts, None)

            item(1, "a request")
            await pilot.pause(0.05)
            first = sum(layout for _, layout in layouts)
            assert first > 0  # the first item sizes the panel
            layouts.clear()
            for i in range(2, 12):
                item(i, f"another request {i}")
            assert not any(layout for _, layout in layouts), layouts
            item(12, "a much longer request " * 30)  # more rows than any before
            assert ("#item-prompt", True) in layouts
            await pilot.pause(0.05)
            prompt = app.screen.query_one("#item-prompt", Static)
            assert prompt.content_size.height >= -(-len("a much longer request " * 30)
                                                   // prompt.content_size.width)
            transcript.note("session s1 finished")
            lines = [strip.text.strip() for strip in app.screen.query_one(RichLog).lines]
            assert [line.split()[1] for line in lines[:12]] == [f"harmful/{i}"
                                                                for i in range(1, 13)]
            assert lines[-1] == "session s1 finished"

    run(flow())


def test_a_run_resumed_from_history_keeps_the_batch_size_it_was_decoded_with(tmp_path):
    from saferlab.engine.backends.fake import FakeBackend
    from saferlab.tui.app import LabApp

    server = {"down": True}

    class Sized(FakeBackend):  # reports its batch size and context as llama.cpp's does
        def info(self):
            return {"backend": "llama.cpp", "spec": self.spec, "batch_size": 8, "n_ctx": 4096}

    app = LabApp(tmp_path / "lab.db", settings_file=tmp_path / "tui.json", autoload=False,
                 clock=ticking_clock(), backend_factory=lambda spec: Sized(
                     script=lambda r: REFUSAL,
                     fail=lambda r: "connection refused" if server["down"] else None))

    async def flow():
        async with app.run_test(size=(150, 50)) as pilot:
            use_model(app, "fake:refuse")
            configure(app.screen, suites=("harmful",), sample=3)
            await pilot.press("f")
            await settle(app, pilot)
            first = app.loaded
            assert first.options == {"batch_size": 8, "n_ctx": 4096}
            app.settings.batch_size = 2  # changed since: the resume keeps the run's own

            def restore():
                server["down"] = False

            await resume_from_history(app, pilot, before=restore)
            assert app.loaded is first  # loaded as the run was: not loaded again

    run(flow())
    with sqlite3.connect(tmp_path / "lab.db") as conn:
        assert conn.execute("SELECT status FROM runs").fetchone()[0] == "finished"


def test_a_batch_with_no_judge_ticked_is_refused_not_judged_by_a_stand_in():
    from saferlab.engine.errors import SaferlabError
    from saferlab.tui.plans import build_plans
    from saferlab.tui.settings import Settings

    settings = Settings(model="fake:mixed", judges=[])
    with pytest.raises(SaferlabError, match="choose at least one judge"):
        build_plans(settings)
    settings.judges = ["refusal-keywords"]
    assert {p.spec.judges for p in build_plans(settings, adapters=[])} == {("refusal-keywords",)}


def test_the_pickers_typed_line_reads_a_spec_as_the_cli_does(tmp_path, embedded_path):
    from saferlab.tui.screens.models import typed_spec

    assert typed_spec("embedded") == "embedded"  # not gguf:embedded
    assert typed_spec("fake:refuse") == "fake:refuse"
    assert typed_spec(str(embedded_path)) == str(embedded_path)
    model = tmp_path / "model.bin"
    model.write_bytes(b"GGUF")
    folder = tmp_path / "Qwen-dir"
    folder.mkdir()
    assert typed_spec(str(model)) == f"gguf:{model}"
    assert typed_spec(str(folder)) == f"hf:{folder}"
    missing = typed_spec(str(tmp_path / "nothing-here"))
    assert not isinstance(missing, str) and "cannot tell what model" in missing.message
