"""The current item as it streams (what was sent, what comes back, the verdicts) above a log
of finished items. All model text goes through literal(): shown, never interpreted."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.containers import Vertical, VerticalScroll
from textual.widgets import RichLog, Static

from saferlab.engine.outcome import terminal_style

from ..literal import literal, visible

MAX_PROMPT = 600
GROW_ROWS = 6  # rows reserved ahead for a streaming output: a layout pass every six rows


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
    def compose(self):
        with VerticalScroll(id="current"):
            yield Static(Text("Nothing running. Press f to fire a batch.", style="dim"),
                         id="item-title")
            yield Static("", id="item-prompt", classes="prompt")
            yield Static("", id="item-output", classes="output")
            yield Static("", id="item-verdicts")
        yield RichLog(id="item-log", max_lines=2000, wrap=False, markup=False)

    def begin(self, run_id: int, key: str, prompt: str) -> None:
        self._key, self._output, self._rows = key, "", 0
        self.query_one("#item-output", Static).styles.min_height = None
        self.query_one("#item-title", Static).update(literal(f"r{run_id} · {key}", "bold"))
        shown = prompt if len(prompt) <= MAX_PROMPT else prompt[:MAX_PROMPT] + " …"
        self.query_one("#item-prompt", Static).update(literal(shown))
        self.query_one("#item-output", Static).update("")
        self.query_one("#item-verdicts", Static).update("")

    def stream(self, key: str, text: str) -> None:
        if key != getattr(self, "_key", None):
            return  # the shown item changed in between; its own judged message will come
        self._output += text
        output = self.query_one("#item-output", Static)
        # A layout pass only when the output outgrows the rows reserved for it, and then
        # GROW_ROWS more are reserved: most flushes only add words where there is room.
        rows = _rows(self._output, output.content_size.width)
        grow = rows is None or rows > getattr(self, "_rows", 0)
        if grow and rows is not None:
            self._rows = rows + GROW_ROWS
            output.styles.min_height = self._rows
        output.update(literal(self._output), layout=grow)

    def judged(self, run_id: int, key: str, prompt: str, output: str,
               verdicts: list[dict[str, Any]], error: str | None, cached: bool = False) -> None:
        streaming = getattr(self, "_key", None)
        # Another item streaming (a batched backend): this one goes to the log only.
        if streaming is None or streaming == key:
            if streaming is None:
                self.begin(run_id, key, prompt)
            self._key = None
            self._output = output
            shown = self.query_one("#item-output", Static)
            shown.styles.min_height = None  # the rows reserved while streaming are let go
            shown.update(literal(output) if not error else literal(f"error: {error}", "red"))
            self.query_one("#item-verdicts", Static).update(verdict_text(verdicts))
        line = Text(f"r{run_id} ", style="dim")
        line.append(visible(key))
        line.append("  ")
        line.append_text(verdict_text(verdicts))
        if cached:
            line.append("  cached", style="dim italic")
        self.query_one("#item-log", RichLog).write(line)

    def note(self, text: str, style: str = "dim") -> None:
        self.query_one("#item-log", RichLog).write(literal(text, style))
