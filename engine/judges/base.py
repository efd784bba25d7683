"""What every judge is: a name, the meter it feeds, and a decision on one output.

Offline judges decide from the text alone (``judge``). Model judges ask a judge model: the
runner sends their ``request`` to the judge backend and hands the answer to ``parse``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..types import Item, Message, MeterName, Verdict


@runtime_checkable
class Judge(Protocol):
    name: str
    meter: MeterName

    def applies_to(self, item: Item) -> bool: ...

    def judge(self, item: Item, text: str) -> Verdict: ...


@dataclass(frozen=True)
class JudgeRequest:
    """What a model judge asks its judge model. ``grammar`` (GBNF) constrains the answer on
    llama.cpp so that it always parses; other backends ignore it and rely on ``parse``."""

    messages: tuple[Message, ...]
    grammar: str | None = None
    max_tokens: int = 64


@runtime_checkable
class ModelJudge(Protocol):
    name: str
    meter: MeterName

    def applies_to(self, item: Item) -> bool: ...

    def request(self, item: Item, text: str) -> JudgeRequest: ...

    def parse(self, item: Item, text: str, output: str) -> Verdict:
        """The verdict from the judge model's ``output`` on the response ``text``; a verdict
        with passed=None and ``error`` set when the output cannot be read."""
        ...
