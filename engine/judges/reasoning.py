"""Reasoning judges. `answer-match`: the last number in the output equals the item's answer."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from ..types import Item, Verdict

# A number with optional sign, $ and thousands separators: "-1,234.50", "$12", "7".
NUMBER = re.compile(r"-?\$?\s?\d[\d,]*(?:\.\d+)?")


def last_number(text: str) -> Decimal | None:
    for match in reversed(NUMBER.findall(text)):
        token = match.replace("$", "").replace(",", "").replace(" ", "")
        try:
            return Decimal(token)
        except InvalidOperation:
            continue
    return None


class AnswerMatch:
    name = "answer-match"
    meter = "reasoning"

    def applies_to(self, item: Item) -> bool:
        return item.kind == "math" and item.answer is not None

    def judge(self, item: Item, text: str) -> Verdict:
        expected = Decimal(str(item.answer).replace(",", "").replace("$", ""))
        got = last_number(text)
        if got is None:
            return Verdict(self.name, "reasoning", False, "no-answer",
                           detail={"expected": str(expected), "extracted": None})
        correct = got == expected
        return Verdict(self.name, "reasoning", correct, "correct" if correct else "wrong",
                       detail={"expected": str(expected), "extracted": str(got.normalize())})
