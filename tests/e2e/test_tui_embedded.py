"""The real Textual app on the real embedded model: a small batch, through the interface."""

import sqlite3

import pytest

from saferlab.engine.saved_adapters import SHIPPED as ORIGIN, saved_adapters

from ..tui.tui_helpers import run, screen_text, settle

SHIPPED = any(a.origin == ORIGIN for a in saved_adapters())

pytestmark = [pytest.mark.model, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def test_a_small_batch_on_the_embedded_model(tmp_path):
    from textual.widgets import Input, SelectionList

    from saferlab.tui.app import LabApp

    app = LabApp(tmp_path / "lab.db", settings_file=tmp_path / "tui.json")
    app.settings.max_tokens = 24

    async def flow():
        async with app.run_test(size=(150, 50)) as pilot:
            await settle(app, pilot)  # the embedded model loads at start
            assert "Q4_1" in str(app.screen.query_one("#model-line").render())
            suites = app.screen.query_one("#suites", SelectionList)
            suites.deselect_all()
            suites.select("harmful")
            suites.select("math")
            app.screen.query_one("#sample", Input).value = "1"
            panel = app.screen.query_one("#adapters", SelectionList)
            listed = [str(o.prompt) for o in panel.options]
            await pilot.press("f")
            await settle(app, pilot, 0.3)
            text = screen_text(app)
            items = 2 * (3 if SHIPPED else 1)  # two items for each adapter configuration
            assert f"{items}/{items} items" in text and "session s1 finished" in text
            assert "tok/s" in text
            return listed

    listed = run(flow())
    with sqlite3.connect(tmp_path / "lab.db") as conn:
        shas = conn.execute("SELECT model_sha256 FROM runs").fetchall()
        adapters = [r[0] for r in conn.execute(
            "SELECT json_extract(config_json, '$.adapter') FROM runs ORDER BY id")]
        outputs = conn.execute("SELECT output, completion_tokens FROM generations").fetchall()
    assert all(sha and len(sha) == 64 for (sha,) in shas)  # the model's digest is recorded
    if SHIPPED:
        # a fresh lab offers the shipped adapters and fires the base beside aligned and
        # aligned+cot: the first batch already shows the trade-off
        assert {"aligned (shipped)", "aligned+cot (shipped)",
                "aligned+long-cot-reflective (shipped)"} <= set(listed)
        assert adapters == [None, "aligned", "aligned+cot"]
    else:
        assert adapters == [None]
    assert len(outputs) == 2 * len(adapters) and all(0 < n <= 24 for _, n in outputs)
