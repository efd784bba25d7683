"""What the batch worker tells the interface. Named for what happened; "latest value"
messages replace their queued predecessor, so a fast model never floods the screen.

Dataclasses: Textual calls ``__post_init__`` from Message.__init__, and a dataclass's own
``__init__`` calls it too, so each message is initialised once either way."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message


@dataclass
class SessionBegan(Message):
    session_id: int
    runs: int
    items: int


@dataclass
class RunBegan(Message):
    run_id: int
    title: str
    total: int
    done: int


@dataclass
class ItemBegan(Message):
    run_id: int
    key: str
    prompt: str


@dataclass
class ProgressChanged(Message):
    """Items done over the whole batch, tokens/s and the estimated time left."""

    done: int
    total: int
    tokens_per_s: float | None
    eta_s: float | None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, ProgressChanged)


@dataclass
class TokensStreamed(Message):
    """Tokens of the current item, gathered over FLUSH_S (bridge.py), with the progress
    line of that moment: both change in one repaint."""

    run_id: int
    key: str
    text: str
    progress: ProgressChanged | None = None


@dataclass
class ItemJudged(Message):
    run_id: int
    key: str
    kind: str
    prompt: str
    output: str
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    cached: bool = False  # answered from the result cache, not decoded


@dataclass
class MetersChanged(Message):
    run_id: int
    meters: dict[str, dict[str, Any]]
    done: int
    total: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, MetersChanged) and message.run_id == self.run_id


@dataclass
class RunEnded(Message):
    run_id: int
    status: str
    error: str | None = None


@dataclass
class BatchEnded(Message):
    session_id: int | None
    status: str
    error: str | None = None


@dataclass
class ModelLoaded(Message):
    spec: str
    summary: dict[str, Any]


@dataclass
class ModelFailed(Message):
    spec: str
    error: str
