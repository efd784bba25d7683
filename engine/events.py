"""Events the runner emits through its ``emit`` callable.

The same stream feeds the CLI progress bar, the Textual app (as messages) and tests (as a list).
Names say what happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .types import GenerationResult, Item, Meter, Verdict


@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class SessionStarted(Event):
    session_id: int
    runs: int
    items: int  # items over all runs, those a resumed run already has included


@dataclass(frozen=True)
class RunStarted(Event):
    run_id: int
    config: dict[str, Any]
    total: int
    done: int  # items already generated (a resumed run)
    # What the model is sent last, by item key (the attack included): what a transcript shows.
    prompts: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class TokenGenerated(Event):
    run_id: int
    item_key: str
    text: str


@dataclass(frozen=True)
class ItemGenerated(Event):
    run_id: int
    item: Item
    result: GenerationResult


@dataclass(frozen=True)
class ItemJudged(Event):
    run_id: int
    item: Item
    result: GenerationResult
    verdicts: tuple[Verdict, ...]
    cached: bool = False  # answered from the result cache, not decoded


@dataclass(frozen=True)
class MetersUpdated(Event):
    run_id: int
    meters: dict[str, Meter]
    done: int
    total: int


@dataclass(frozen=True)
class RunFinished(Event):
    run_id: int
    status: str  # "finished", "cancelled", or "failed" when every item failed
    meters: dict[str, Meter] = field(default_factory=dict)
    error: str | None = None  # how many items failed, and the first error


@dataclass(frozen=True)
class RunFailed(Event):
    run_id: int
    error: str


@dataclass(frozen=True)
class SessionFinished(Event):
    session_id: int
    status: str  # "finished", "cancelled" or "failed"


Emit = Callable[[Event], None]


def ignore(_: Event) -> None:
    """An emit that drops everything."""


# -- fine-tuning -----------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainingStarted(Event):
    training_id: int
    name: str
    total_steps: int
    examples: int
    done_steps: int = 0  # steps a resumed training already has


@dataclass(frozen=True)
class TrainingStage(Event):
    """A stage before or after the steps: loading, answering keep data, saving, converting."""

    training_id: int | None
    text: str


@dataclass(frozen=True)
class TrainingStep(Event):
    training_id: int
    step: int
    total_steps: int
    loss: float | None
    learning_rate: float | None
    tokens: int  # tokens trained on in this call so far (padding excluded)
    tokens_per_s: float | None
    eta_s: float | None


@dataclass(frozen=True)
class TrainingFinished(Event):
    training_id: int
    status: str  # "finished", "interrupted" or "failed"
    adapter_path: str | None = None
