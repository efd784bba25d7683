"""The bridge from engine events to interface messages, without an interface."""

from saferlab.engine import events as ev
from saferlab.engine.types import GenerationResult, Item
from saferlab.tui import messages as msg
from saferlab.tui.bridge import FLUSH_S, Bridge

from .tui_helpers import ticking_clock


def item(key):
    return Item(key=key, suite="harmful", kind="harmful", prompt=f"request {key}")


def test_interleaved_tokens_of_a_batch_show_one_item_at_a_time():
    posted = []
    bridge = Bridge(posted.append, clock=ticking_clock(FLUSH_S / 4))
    bridge(ev.SessionStarted(1, 1, 2))
    for i in range(10):  # two items decoded together, tokens interleaved
        bridge(ev.TokenGenerated(1, "a", f"a{i} "))
        bridge(ev.TokenGenerated(1, "b", f"b{i} "))
    bridge(ev.ItemJudged(1, item("a"), GenerationResult("a", text="A"), ()))
    bridge(ev.TokenGenerated(1, "b", "b10 "))
    bridge(ev.ItemJudged(1, item("b"), GenerationResult("b", text="B"), ()))
    began = [m.key for m in posted if isinstance(m, msg.ItemBegan)]
    streamed = [m for m in posted if isinstance(m, msg.TokensStreamed)]
    assert began == ["a", "b"]
    assert all(m.key == "a" for m in streamed if "a" in m.text)
    assert "".join(m.text for m in streamed if m.key == "a").startswith("a0 a1")
    assert all(m.key == "b" for m in streamed if "b" in m.text)
    # b's tokens waited for their turn, then came together.
    assert "".join(m.text for m in streamed if m.key == "b").startswith("b0 b1")
    progress = [m for m in posted if isinstance(m, msg.ProgressChanged)]
    assert progress[-1].done == 2 and progress[-1].total == 2 and progress[-1].tokens_per_s


def test_flushes_are_spaced_not_per_token():
    posted = []
    bridge = Bridge(posted.append, clock=ticking_clock(FLUSH_S / 100))
    bridge(ev.SessionStarted(1, 1, 1))
    for i in range(200):
        bridge(ev.TokenGenerated(1, "a", "x"))
    streamed = [m for m in posted if isinstance(m, msg.TokensStreamed)]
    assert 2 <= len(streamed) <= 10  # about every FLUSH_S of (fake) time


def test_meters_redraw_at_most_every_flush_and_the_last_always_arrives():
    from saferlab.engine.types import Meter
    from saferlab.tui.bridge import METERS_S

    posted = []
    bridge = Bridge(posted.append, clock=ticking_clock(METERS_S / 10))
    bridge(ev.SessionStarted(1, 1, 40))
    for done in range(1, 41):  # a batch's items ending in a burst
        meter = Meter("safety", done, done, 1.0, 0.9, 1.0)
        bridge(ev.MetersUpdated(1, {"safety": meter}, done, 40))
    bridge(ev.RunFinished(1, "finished"))
    meters = [m for m in posted if isinstance(m, msg.MetersChanged)]
    assert 2 <= len(meters) <= 6  # 40 items in 4 * METERS_S of (fake) time
    assert meters[-1].done == 40 and meters[-1].meters["safety"]["n"] == 40
    assert posted.index(meters[-1]) < next(i for i, m in enumerate(posted)
                                           if isinstance(m, msg.RunEnded))
