"""Reasoning judges. `answer-match`: flexible extraction (the last number, as lm-evaluation-
harness does for GSM8K) decides the meter; strict extraction (an explicit final-answer marker)
is stored beside it."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from ..types import Item, Verdict

# A number with optional sign, $ and thousands separators: "-1,234.50", "$12", "7".
NUMBER = re.compile(r"-?\$?\s?\d[\d,]*(?:\.\d+)?")
# "#### 42", "The answer is 42", "Final answer: $42", "\boxed{42}".
STRICT = re.compile(
    r"(?:####|\bthe (?:final )?answer is|\bfinal answer\s*(?:is|:)|\\boxed\{)\s*\**\s*"
    r"(-?\$?\s?\d[\d,]*(?:\.\d+)?)", re.I)


def to_number(token: str) -> Decimal | None:
    try:
        return Decimal(token.replace("$", "").replace(",", "").replace(" ", ""))
    except InvalidOperation:
        return None


def last_number(text: str) -> Decimal | None:
    for match in reversed(NUMBER.findall(text)):
        if (value := to_number(match)) is not None:
            return value
    return None


def strict_number(text: str) -> Decimal | None:
    matches = STRICT.findall(text)
    return to_number(matches[-1]) if matches else None


def _show(value: Decimal | None) -> str | None:
    # "f" keeps 60 as "60"; plain normalize() would print "6E+1".
    return None if value is None else f"{value.normalize():f}"


class AnswerMatch:
    name = "answer-match"
    meter = "reasoning"

    def applies_to(self, item: Item) -> bool:
        return item.kind == "math" and item.answer is not None

    def judge(self, item: Item, text: str) -> Verdict:
        expected = to_number(str(item.answer))
        flexible, strict = last_number(text), strict_number(text)
        detail = {"expected": _show(expected), "flexible": _show(flexible),
                  "strict": _show(strict), "strict_correct": strict is not None and strict == expected}
        if flexible is None:
            return Verdict(self.name, "reasoning", False, "no-answer", detail=detail)
        correct = flexible == expected
        return Verdict(self.name, "reasoning", correct, "correct" if correct else "wrong",
                       detail=detail)
