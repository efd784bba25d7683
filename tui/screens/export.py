"""Export the current session or a run: JSONL, CSV, Markdown or HTML, with or without
redaction. The file is written by a worker."""

from __future__ import annotations

from pathlib import Path

from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select

from saferlab.engine.export import SUFFIXES

FORMATS = (("JSONL (complete, importable)", "jsonl"), ("CSV", "csv"), ("Markdown", "md"),
           ("HTML report", "html"))


class ExportScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Back")]

    def __init__(self, session_id: int | None, run_id: int | None = None) -> None:
        super().__init__()
        self.session_id, self.run_id = session_id, run_id
        self._replace: Path | None = None  # the existing file the user was asked about

    def target(self) -> str:
        if self.run_id is not None:
            return f"r{self.run_id}"
        return f"s{self.session_id}" if self.session_id is not None else "last"

    def compose(self):
        s = self.app.settings
        with Vertical(id="export"):
            yield Label(f"Export {self.target()}", classes="title")
            yield Select([(Content(label), value) for label, value in FORMATS],
                         value=s.export_format, allow_blank=False, id="format")
            yield Checkbox("Redact personal data (secrets, e-mails, phones, ids)",
                           s.export_redact, id="redact")
            yield Label("File", classes="section")
            yield Input(self._default_path(s.export_format), id="path")
            with Horizontal(classes="row"):
                yield Button("Export", id="go", variant="primary")
                yield Button("Back", id="back")

    def _default_path(self, fmt: str) -> str:
        name = f"saferlab-{self.target()}.{fmt}"
        return str(Path.cwd() / name)

    def on_select_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.query_one("#path", Input).value = self._default_path(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "go":
            self._go()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._go()

    def _go(self) -> None:
        fmt = self.query_one("#format", Select).value
        redact = self.query_one("#redact", Checkbox).value
        path = self.query_one("#path", Input).value.strip()
        if not isinstance(fmt, str) or not path:
            self.app.tell("choose a format and a file", error=True)
            return
        target = Path(path).expanduser()
        try:
            there = target.is_file()
        except (OSError, ValueError):  # a name too long, a NUL byte: the export says so
            there = False
        if there and self._replace != target:  # asked once; Export again replaces
            self._replace = target
            suffix = SUFFIXES.get(fmt, "")
            other = (f" (a {target.suffix} file; this export is {suffix})"
                     if target.suffix.lower() != suffix else "")
            self.app.tell(f"{target} exists{other}: press Export again to replace it",
                          error=True)
            return
        s = self.app.settings
        s.export_format, s.export_redact = fmt, redact
        self.app.save()
        self.app.run_export([self.target()], fmt, Path(path), redact)
        self.dismiss(None)
