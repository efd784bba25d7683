"""Model output on screen, literally: never parsed as Rich markup, and control characters
(terminal escape sequences among them) shown as visible symbols, never sent to the terminal."""

from __future__ import annotations

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
