"""What every judge is: a name, the meter it feeds, and a decision on one output."""

from __future__ import annotations

from typing import Protocol

from ..types import Item, MeterName, Verdict


class Judge(Protocol):
    name: str
    meter: MeterName

    def applies_to(self, item: Item) -> bool: ...

    def judge(self, item: Item, text: str) -> Verdict: ...
