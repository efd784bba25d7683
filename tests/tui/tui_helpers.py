"""Shared by the Textual tests: a scripted-backend app and a text dump of the screen."""

from __future__ import annotations

import asyncio
import itertools

from saferlab.engine.backends.fake import FakeBackend
from saferlab.engine.models import parse_model_spec
from saferlab.tui.app import LabApp


def fake_factory(script=None, **kwargs):
    def factory(spec: str):
        return FakeBackend(parse_model_spec(spec) if spec.startswith("fake") else None,
                           script=script, **kwargs)
    return factory


def ticking_clock(step: float = 0.01):
    """A clock that advances a fixed step per reading: tokens/s and ETA become reproducible."""
    counter = itertools.count()
    return lambda: next(counter) * step


def make_app(tmp_path, script=None, **kwargs) -> LabApp:
    backend_kwargs = {k: kwargs.pop(k) for k in ("token_delay", "stall", "fail") if k in kwargs}
    return LabApp(tmp_path / "lab.db", backend_factory=fake_factory(script, **backend_kwargs),
                  settings_file=tmp_path / "tui.json", autoload=False,
                  clock=kwargs.pop("clock", ticking_clock()), **kwargs)


def use_model(app, spec: str) -> None:
    """Point the lab at ``spec`` without loading it: the adapter panel then lists (and the
    settings keep) only the adapters that model can load, as after picking it."""
    app.settings.model = spec
    app.screen._show_adapters()


def screen_text(app) -> str:
    """What the terminal would show, as plain text (every segment of the current screen)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


def segments(app):
    for strip in app.screen._compositor.render_strips():
        yield from strip


def run(coro):
    return asyncio.run(coro)


async def settle(app, pilot, seconds: float = 0.2) -> None:
    """Wait for the workers, then for the messages they posted to be handled."""
    await app.workers.wait_for_complete()
    await pilot.pause(seconds)
