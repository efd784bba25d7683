"""Splitting an output into its reasoning trace and its final answer.

The paper's point is that reasoning changes safety: a model may refuse in its answer while its
reasoning spells out the harm, or leak a secret only while thinking. Judging both parts
separately shows where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK = re.compile(r"<think>(.*?)(?:</think>|$)(.*)", re.S | re.I)
# Explicit final-answer markers, the last one wins: "#### 42", "The answer is", "Final answer:".
MARKER = re.compile(r"(####|\bthe (?:final )?answer is\b|\bfinal answer\s*:|\banswer\s*:)", re.I)


@dataclass(frozen=True)
class Parts:
    reasoning: str
    answer: str
    how: str  # "think-tags", "marker" or "second-turn"


def split_output(text: str, first_turn: str | None = None) -> Parts | None:
    """The reasoning and the answer of an output, or None when it has no visible split.

    ``first_turn`` is the first answer of a self-reflect conversation: then it is the
    reasoning and ``text`` (the revised answer) is the answer.
    """
    if first_turn is not None:
        return Parts(first_turn, text, "second-turn")
    think = THINK.search(text)
    if think:
        before = text[: think.start()].strip()
        reasoning = (before + "\n" + think.group(1)).strip() if before else think.group(1).strip()
        return Parts(reasoning, think.group(2).strip(), "think-tags")
    markers = list(MARKER.finditer(text))
    if markers:
        cut = markers[-1].start()
        if text[:cut].strip():
            return Parts(text[:cut].strip(), text[cut:].strip(), "marker")
    return None
