"""The current item as it streams (what was sent, what comes back, the verdicts) above a log
of finished items. All model text goes through literal(): shown, never interpreted."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.containers import Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import RichLog, Static

from saferlab.engine.outcome import terminal_style

from ..literal import literal, visible

MAX_PROMPT = 600
GROW_ROWS = 6  # rows reserved ahead for a streaming output: a layout pass every six rows
LOG_S = 0.25  # the log of finished items is written at most this often


def verdict_text(verdicts: list[dict[str, Any]]) -> Text:
    text = Text()
    for v in verdicts:
        if v["part"] != "full":
            continue
        style = terminal_style(v["passed"])
        text.append(f"{v['judge']}", style="dim")
        text.append(": ")
        text.append(v["label"] if not v["error"] else f"error ({visible(v['error'])[:60]})",
                    style=style)
        text.append("   ")
    return text


def _rows(text: str, width: int) -> int | None:
    """About how many rows ``text`` wraps to at ``width`` (None before the first layout)."""
    if width <= 0:
        return None
    # Counted by characters; near the edge a word may wrap early, so that counts as the next
    # row already (a layout pass too many, never a row cut off).
    return sum(max(1, -(-(len(line) + 12) // width)) for line in text.split("\n"))


class Transcript(Vertical):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: dict[str, int] = {}  # rows each part of the item's panel keeps
        self._pending: list[Text] = []  # log lines not written yet
        self._logged = 0.0  # when the log was last written (time.monotonic)
        self._log_timer: Timer | None = None

    def compose(self):
        with VerticalScroll(id="current"):
            yield Static(Text("Nothing running. Press f to fire a batch.", style="dim"),
                         id="item-title")
            yield Static("", id="item-prompt", classes="prompt")
            yield Static("", id="item-output", classes="output")
            yield Static("", id="item-verdicts")
        yield RichLog(id="item-log", max_lines=2000, wrap=False, markup=False)

    def begin(self, run_id: int, key: str, prompt: str) -> None:
        self._key, self._output = key, ""
        # The item's panel keeps its rows from item to item (each part only grows, to the
        # most it has needed this batch): a new item is a repaint of four widgets, not a
        # layout pass of the whole screen.
        self.query_one("#item-title", Static).update(literal(f"r{run_id} · {key}", "bold"),
                                                     layout=False)
        shown = prompt if len(prompt) <= MAX_PROMPT else prompt[:MAX_PROMPT] + " …"
        self._show("#item-prompt", literal(shown), shown)
        self._show("#item-output", "", "")
        self._show("#item-verdicts", "", "")

    def stream(self, key: str, text: str) -> None:
        if key != getattr(self, "_key", None):
            return  # the shown item changed in between; its own judged message will come
        self._output += text
        # A layout pass only when the output outgrows the rows reserved for it, and then
        # GROW_ROWS more are reserved: most flushes only add words where there is room.
        self._show("#item-output", literal(self._output), self._output, GROW_ROWS)

    def judged(self, run_id: int, key: str, prompt: str, output: str,
               verdicts: list[dict[str, Any]], error: str | None, cached: bool = False) -> None:
        streaming = getattr(self, "_key", None)
        # Another item streaming (a batched backend): this one goes to the log only.
        if streaming is None or streaming == key:
            if streaming is None:
                self.begin(run_id, key, prompt)
            self._key = None
            self._output = output
            if error:
                self._show("#item-output", literal(f"error: {error}", "red"), f"error: {error}")
            else:
                self._show("#item-output", literal(output), output)
            verdict_line = verdict_text(verdicts)
            self._show("#item-verdicts", verdict_line, verdict_line.plain)
        line = Text(f"r{run_id} ", style="dim")
        line.append(visible(key))
        line.append("  ")
        line.append_text(verdict_text(verdicts))
        if cached:
            line.append("  cached", style="dim italic")
        self._log(line)

    def _log(self, line: Text) -> None:
        """Lines reach the log at most every LOG_S: each write is a layout pass of the whole
        screen, and a batch ends items in bursts (a cached rerun, hundreds a second)."""
        self._pending.append(line)
        waited = time.monotonic() - self._logged
        if waited >= LOG_S:
            self._flush_log()
        elif self._log_timer is None:
            self._log_timer = self.set_timer(LOG_S - waited, self._flush_log)

    def _flush_log(self) -> None:
        if self._log_timer is not None:
            self._log_timer.stop()
            self._log_timer = None
        log = self.query_one("#item-log", RichLog)
        for line in self._pending:
            log.write(line)
        self._pending.clear()
        self._logged = time.monotonic()

    def _show(self, selector: str, content: Any, text: str, ahead: int = 0) -> None:
        """Show ``content`` in a part of the item's panel, with a layout pass only when its
        ``text`` needs more rows than the part holds (then ``ahead`` rows more are kept)."""
        part = self.query_one(selector, Static)
        rows = _rows(text, part.content_size.width)
        held = self._held.get(selector, 0)
        grow = rows is None or rows > held
        if grow and rows is not None:
            self._held[selector] = rows + ahead
            part.styles.min_height = rows + ahead
        part.update(content, layout=grow)

    def release(self) -> None:
        """The batch ended or a new one begins: the item's panel gives back the rows it kept."""
        self._held.clear()
        for selector in ("#item-prompt", "#item-output", "#item-verdicts"):
            self.query_one(selector, Static).styles.min_height = None

    def note(self, text: str, style: str = "dim") -> None:
        self._pending.append(literal(text, style))
        self._flush_log()  # a note says what just happened: it goes out at once, in order
