"""The real Textual app on the real embedded model: a small batch, through the interface."""

import sqlite3

import pytest

from ..tui.tui_helpers import run, screen_text, settle

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
            await pilot.press("f")
            await settle(app, pilot, 0.3)
            text = screen_text(app)
            assert "2/2 items" in text and "session s1 finished" in text
            assert "tok/s" in text

    run(flow())
    with sqlite3.connect(tmp_path / "lab.db") as conn:
        (sha,) = conn.execute("SELECT model_sha256 FROM runs").fetchone()
        outputs = conn.execute("SELECT output, completion_tokens FROM generations").fetchall()
    assert sha and len(sha) == 64  # the loaded model's digest is recorded
    assert len(outputs) == 2 and all(0 < n <= 24 for _, n in outputs)
