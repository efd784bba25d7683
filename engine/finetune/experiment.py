"""``saferlab experiment finetune``: train ``aligned``, then every regime on top of it with the
same seed and step budget (and, with sizes, the data-size sweep), then evaluate the base,
``aligned`` and each stack in one session."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import EXIT_USAGE, SaferlabError
from ..paths import home_dir
from ..plan import RunPlan, SessionSpec, plan_session
from ..saved_adapters import META_FILE
from ..types import DecodingParams
from .recipes import recipe_specs, size_specs
from .spec import TrainSpec

# Every configuration answers harmful, benign, math and privacy items without an attack, and
# the harmful items again under prefix-injection. Math is the suite's first 50 problems
# (--math-items 100 for all of them): 135M-parameter models need long answers to reason.
EVAL_SUITES = ("harmful", "benign", "math", "privacy")
ATTACKED_SUITES = ("harmful",)
EVAL_ATTACKS = ("none", "prefix-injection")
MATH_ITEMS = 50
# Long-CoT answers to three-step problems run to about 300 tokens (450 at most); a refusal,
# an over-refusal or a leak is read from an answer's opening (the judges look at its first
# 200 to 600 characters).
MATH_TOKENS = 480
EVAL_MAX_TOKENS = 128


@dataclass(frozen=True)
class FinetuneExperiment:
    model: str = "embedded"
    seed: int = 0
    steps: int | None = None  # per regime; None: the recipes' budget
    aligned_steps: int | None = None
    sizes: tuple[int, ...] = ()
    limit: int | None = None  # items per suite in the evaluation; None: every item
    max_tokens: int = EVAL_MAX_TOKENS
    math_tokens: int = MATH_TOKENS
    math_items: int = MATH_ITEMS
    out: str | None = None
    datasets: str | None = None
    harmful: str | None = None
    threads: int | None = None
    device: str | None = None

    @property
    def folder(self) -> Path:
        return (Path(self.out).expanduser() if self.out
                else home_dir() / "experiments" / f"finetune-seed{self.seed}")

    def check(self) -> None:
        """Every training's options, checked before the first one starts (a bad one would
        otherwise fail after the others have trained for an hour)."""
        for n in self.sizes:
            if n < 1:
                raise SaferlabError(f"--sizes: every size must be at least 1, not {n}",
                                    EXIT_USAGE)
        for spec in self.trainings():
            spec.with_steps().check()

    def trainings(self) -> list[TrainSpec]:
        """``aligned`` first; every other adapter trains on top of this experiment's own."""
        specs = list(recipe_specs(self.model, self.seed, self.steps, self.aligned_steps).values())
        specs += list(size_specs(self.sizes, self.model, self.seed).values())
        aligned = str(self.folder / "aligned")
        out = []
        for spec in specs:
            data = replace(spec.data, harmful_source=self.harmful) if self.harmful else spec.data
            out.append(replace(spec, data=data, out=str(self.folder / spec.name),
                               on=aligned if spec.on else None, datasets=self.datasets,
                               threads=self.threads, device=self.device))
        return out

    def stacks(self) -> list[str]:
        """The adapter stacks evaluated beside the base, as paths."""
        return [spec.out if not spec.on else f"{spec.on}+{spec.out}"
                for spec in self.trainings()]

    def plans(self) -> list[RunPlan]:
        """Runs of the evaluation, once every adapter exists: the base and each stack over
        harmful, benign, math and privacy items without an attack, then over the harmful
        items under prefix-injection."""
        suites = tuple(f"math:n={self.math_items}" if s == "math" else s for s in EVAL_SUITES)
        params = DecodingParams(max_tokens=self.max_tokens, seed=self.seed,
                                max_tokens_by_kind=(("math", self.math_tokens),))
        plans = []
        for attack, chosen in ((EVAL_ATTACKS[0], suites), (EVAL_ATTACKS[1], ATTACKED_SUITES)):
            plans += plan_session(SessionSpec(
                model=self.model, reasoning=("direct",), attacks=(attack,), suites=chosen,
                adapters=tuple(self.stacks()), limit=self.limit, seed=self.seed,
                params=params))
        return plans


def trained_already(spec: TrainSpec) -> bool:
    """True when ``spec.out`` holds an adapter trained with this same configuration (an
    interrupted experiment then skips it)."""
    meta_path = spec.folder / META_FILE
    if not meta_path.is_file():
        return False
    try:
        stored = json.loads(meta_path.read_text(encoding="utf-8")).get("spec") or {}
    except ValueError:
        return False
    mine = replace(spec, out=None).to_dict()
    ignore = ("on", "out", "threads", "device", "datasets")
    return all(stored.get(k) == v for k, v in mine.items() if k not in ignore)
