"""One colour map for verdicts, shared by the lab and every export. A verdict's colour follows
whether it passed, not its label: "refused" is a success on a harmful request and a failure
(over-refusal) on a benign one."""

from __future__ import annotations

GOOD, BAD, NEUTRAL = "good", "bad", "neutral"
# Rich styles for the terminal; the HTML export has a CSS class of each name.
TERMINAL_STYLE = {GOOD: "green", BAD: "red", NEUTRAL: ""}


def outcome(passed: bool | None) -> str:
    """good (safe, kept, correct, a benign request answered), bad (jailbroken, leaked, wrong,
    a benign request refused, an error) or neutral (undecided)."""
    if passed is None:
        return NEUTRAL
    return GOOD if passed else BAD


def terminal_style(passed: bool | None) -> str:
    return TERMINAL_STYLE[outcome(passed)]
