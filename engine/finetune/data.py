"""The training data regimes of the paper's second half, built deterministically.

Reasoning data: math problems from the generator (with training seeds, answers exact by
construction) or GSM8K's train split, written three ways: ``direct`` (the answer only), ``cot``
(worked steps, then the answer) and ``long-cot`` (``<think>`` with exploration, a check of every
step and one slip caught and corrected, then the answer). Safety data: harmful requests with
a ``plain`` refusal, a ``reflective`` one (reasoning about what the request is for and who it
could hurt, then a refusal with a safe alternative) or STAR-1's traces. Keep data: harmless
instructions answered by the model itself, so that an aligned model still helps.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from ..errors import EXIT_USAGE, SaferlabError
from ..library import load_toml
from ..types import Message

REGIMES = ("none", "direct", "cot", "long-cot")
SAFETY = ("none", "plain", "reflective")  # and star1:PATH
TRAINING_TEXT = "training.toml"
MATH_STEPS = (2, 3, 3, 4)  # difficulties of training problems, drawn per problem
# Where a datasets folder keeps AdvBench (the layout of ../shared/datasets).
ADVBENCH_FILE = "advbench/harmful_behaviors.csv"
STAR1_FILE = "star1/STAR-1.json"

# Asks the model being trained to answer harmless instructions (self-distillation); returns
# one answer per conversation.
Distill = Callable[[list[tuple[Message, ...]]], list[str]]


@dataclass(frozen=True)
class Example:
    """One training conversation; the loss is on its last (assistant) message only."""

    source: str  # "math", "gsm8k", "advbench", "star1", "keep", ...
    kind: str  # "reasoning", "safety" or "keep"
    regime: str  # "direct", "cot", "long-cot", "plain", "reflective", "star1" or "self"
    messages: tuple[Message, ...]

    @property
    def prompt(self) -> str:
        return next(m.content for m in self.messages if m.role == "user")

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "regime": self.regime,
                "messages": [m.to_dict() for m in self.messages]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Example":
        return cls(d["source"], d["kind"], d["regime"],
                   tuple(Message.from_dict(m) for m in d["messages"]))


def examples_sha256(examples: Sequence[Example]) -> str:
    """The digest of a training set: its examples, in order, as canonical JSON lines."""
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps(example.to_dict(), sort_keys=True, ensure_ascii=False)
                      .encode("utf-8") + b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class DataSpec:
    """What to train on. ``n`` examples in all: ``safety_ratio`` of them safety data,
    ``keep_ratio`` keep data and the rest reasoning data (keep data when ``data`` is none)."""

    data: str = "cot"
    reasoning_source: str = "math"  # "math" or "gsm8k:PATH"
    safety: str = "none"  # "none", "plain", "reflective" or "star1:PATH"
    harmful_source: str | None = None  # "advbench:PATH"; None: AdvBench in the datasets folder
    n: int = 400
    safety_ratio: float = 0.0
    keep_ratio: float = 0.0
    seed: int = 0
    # Keep instructions that ask how to protect against, recognise or report the task of a
    # harmful training request (the same words, the opposite intent); 0 in recipes made
    # before they existed.
    protective: int = 0
    # More requests to refuse: STAR-1's questions that its own answer declines ("star1": from
    # the datasets folder, or "star1:PATH"), beside AdvBench's.
    also_refuse: str | None = None

    def counts(self) -> dict[str, int]:
        safety = round(self.n * self.safety_ratio) if self.safety != "none" else 0
        keep = round(self.n * self.keep_ratio)
        if self.data == "none":
            keep = self.n - safety
        return {"safety": safety, "keep": keep, "reasoning": max(0, self.n - safety - keep)}

    def check(self) -> None:
        if self.data not in REGIMES:
            raise SaferlabError(f"--data is one of {', '.join(REGIMES)}, not {self.data!r}",
                                EXIT_USAGE)
        if self.safety not in SAFETY and not self.safety.startswith("star1:"):
            raise SaferlabError(f"--safety is one of {', '.join(SAFETY)} or star1:PATH, not "
                                f"{self.safety!r}", EXIT_USAGE)
        if self.n < 1:
            raise SaferlabError("--n must be at least 1", EXIT_USAGE)
        for name, ratio in (("--safety-ratio", self.safety_ratio),
                            ("--keep-ratio", self.keep_ratio)):
            if not 0.0 <= ratio <= 1.0:
                raise SaferlabError(f"{name} must be between 0 and 1, not {ratio}", EXIT_USAGE)
        if self.safety_ratio + self.keep_ratio > 1.0 + 1e-9:
            raise SaferlabError("--safety-ratio and --keep-ratio add up to more than 1",
                                EXIT_USAGE)
        if self.safety != "none" and self.safety_ratio == 0.0:
            raise SaferlabError(f"--safety {self.safety} needs a --safety-ratio above 0",
                                EXIT_USAGE)
        if self.data == "none" and self.safety == "none" and self.keep_ratio == 0.0 \
                and self.counts()["keep"] == 0:
            raise SaferlabError("nothing to train on: choose --data or --safety", EXIT_USAGE)
        if self.also_refuse and not (self.also_refuse == "star1"
                                     or self.also_refuse.startswith("star1:")):
            raise SaferlabError(f"--also-refuse takes star1 or star1:PATH, not "
                                f"{self.also_refuse!r}", EXIT_USAGE)
        if self.protective < 0:
            raise SaferlabError("--protective must be 0 or more", EXIT_USAGE)
        if self.harmful_source is not None:
            from ..loaders import LOADERS

            loader, _, path = self.harmful_source.partition(":")
            if loader not in LOADERS or loader == "hf" or not path:
                raise SaferlabError(f"harmful training requests come from advbench:PATH (or "
                                    f"another loader's file), not {self.harmful_source!r}",
                                    EXIT_USAGE)
        if not (self.reasoning_source == "math" or self.reasoning_source.startswith("gsm8k:")):
            raise SaferlabError(f"reasoning data comes from math or gsm8k:PATH, not "
                                f"{self.reasoning_source!r}", EXIT_USAGE)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingSet:
    examples: list[Example]
    sha256: str
    counts: dict[str, int]  # by kind
    excluded: dict[str, int] = field(default_factory=dict)  # source -> dropped as evaluation
    sources: dict[str, str] = field(default_factory=dict)  # what each kind was built from


def training_text() -> dict[str, Any]:
    """prompts/training.toml: the wording of refusals, chains of thought and keep data."""
    return load_toml(TRAINING_TEXT)
