"""A problem that needs reading: one message, shown literally, until dismissed."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from ..literal import literal


class ErrorScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape", "dismiss(None)", "Close"),
                Binding("enter", "dismiss(None)", "Close", show=False)]

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text, self.message = title, message

    def compose(self):
        with Vertical(id="error"):
            yield Label(literal(self.title_text, "bold"), classes="title")
            yield Static(literal(self.message), id="error-message")
            yield Button("Close", id="close", variant="error")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)
