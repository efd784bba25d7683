"""Model output on screen, literally: never parsed as Rich markup, and control characters
(terminal escape sequences among them) shown as visible symbols, never sent to the terminal."""

from __future__ import annotations

import sys
from typing import Iterable

from rich.console import Console
from rich.segment import Segment
from rich.text import Text

# C0 controls but tab and newline become the Unicode control pictures (ESC -> "␛"), DEL
# becomes "␡", and C1 controls (0x9b is an 8-bit CSI) are spelled out.
_TABLE = {c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)}
_TABLE[0x7F] = "\u2421"
_TABLE.update({c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})
# Bidirectional overrides could reorder what the reader sees.
_TABLE.update({c: f"\\u{c:04x}" for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))})


def visible(text: str) -> str:
    return text.translate(_TABLE)


def literal(text: str, style: str = "") -> Text:
    """A Rich Text that shows ``text`` as it is: for Static, Label, DataTable cells, logs."""
    return Text(visible(text), style=style)


class LiteralConsole(Console):
    """The console every command prints through: whatever text a table or line holds (a
    request, a model's answer, a user file's description) reaches the terminal as ``visible``
    makes it; Rich's own styles and cursor controls are kept."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return super()._render_buffer(
            segment if segment.control else Segment(visible(segment.text), segment.style)
            for segment in buffer)


def say(text: str, err: bool = False) -> None:
    """A plain line of data on stdout (or stderr), shown literally."""
    print(visible(text), file=sys.stderr if err else sys.stdout)
