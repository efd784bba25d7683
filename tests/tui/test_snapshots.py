"""How the main screens look, pinned (textual is pinned too, so these do not churn). After a
deliberate change of looks: pytest tests/tui/test_snapshots.py --snapshot-update, then read
the SVGs in __snapshots__ before committing them."""

import pytest

from .tui_helpers import make_app, use_model

pytest.importorskip("pytest_textual_snapshot")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SIZE = (140, 44)
FIXED_UTC = "2026-01-02T03:04:05.000+00:00"


@pytest.fixture(autouse=True)
def fixed_time(monkeypatch):
    import saferlab.db.outcomes
    import saferlab.db.recording
    import saferlab.db.registry

    # Every module that stamps rows with the time.
    for module in (saferlab.db.recording, saferlab.db.registry, saferlab.db.outcomes):
        monkeypatch.setattr(module, "utc_now", lambda: FIXED_UTC)


async def fire(pilot) -> None:
    from textual.widgets import Input, SelectionList

    app = pilot.app
    use_model(app, "fake:mixed")
    screen = app.screen
    suites = screen.query_one("#suites", SelectionList)
    suites.deselect_all()
    for name in ("harmful", "math", "privacy", "benign"):
        suites.select(name)
    screen.query_one("#sample", Input).value = "2"
    await pilot.press("f")
    await app.workers.wait_for_complete()
    await pilot.pause(0.3)


def test_main_screen_before_any_batch(snap_compare, tmp_path):
    assert snap_compare(make_app(tmp_path), terminal_size=SIZE)


def test_main_screen_after_a_batch(snap_compare, tmp_path):
    assert snap_compare(make_app(tmp_path), run_before=fire, terminal_size=SIZE)


def test_history_screen(snap_compare, tmp_path):
    async def fire_then_history(pilot):
        await fire(pilot)
        await pilot.press("h")
        await pilot.pause(0.3)

    assert snap_compare(make_app(tmp_path), run_before=fire_then_history, terminal_size=SIZE)


def test_help_screen(snap_compare, tmp_path):
    assert snap_compare(make_app(tmp_path), press=["question_mark"], terminal_size=SIZE)


def test_main_screen_at_80x24_after_a_batch(snap_compare, tmp_path):
    # the meters in two rows with whole titles; the sample size in view without scrolling
    assert snap_compare(make_app(tmp_path), run_before=fire, terminal_size=(80, 24))


def test_main_screen_at_100x30_after_a_batch(snap_compare, tmp_path):
    assert snap_compare(make_app(tmp_path), run_before=fire, terminal_size=(100, 30))


def test_main_screen_at_160x48_after_a_batch(snap_compare, tmp_path):
    assert snap_compare(make_app(tmp_path), run_before=fire, terminal_size=(160, 48))
