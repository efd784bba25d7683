"""What to run: a session spec in, run plans out (items and the exact messages for each)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import EXIT_USAGE, SaferlabError
from .judges import DEFAULT_JUDGES, make_judge
from .judging import needs_model
from .library import prompt_file_sha256
from .prompting import Recipe
from .suites import load_suite, sample, suite_files
from .adapter_refs import resolve_stacks
from .types import AdapterStack, DecodingParams, Item, Message


@dataclass(frozen=True)
class SessionSpec:
    """What the user asked for. Several reasoning prompts or attacks make a cartesian product
    of runs over the same items."""

    model: str = "embedded"
    reasoning: tuple[str, ...] = ("direct",)
    attacks: tuple[str, ...] = ("none",)
    suites: tuple[str, ...] = ("harmful",)
    modifiers: tuple[str, ...] = ()
    attacker: str | None = None  # the attacker model of iterative attacks; None: the target
    judge_model: str | None = None  # the model that model judges (llm-judge, ...) ask
    # LoRA adapters of the target: PEFT folders (hf:), GGUF LoRA files (GGUF models), names of
    # adapters saferlab made, served model names (openai:), or stacks of them with scales
    # ("aligned+cot@0.5"). Each adds runs with that stack beside the base model.
    adapters: tuple[str, ...] = ()
    limit: int | None = None
    seed: int = 0
    params: DecodingParams = DecodingParams()
    judges: tuple[str, ...] = DEFAULT_JUDGES


@dataclass(frozen=True)
class RunSpec:
    """One run's configuration, stored as JSON with the run."""

    model: str
    reasoning: str
    attack: str
    suites: tuple[str, ...]
    limit: int | None
    seed: int
    params: DecodingParams
    judges: tuple[str, ...]
    modifiers: tuple[str, ...] = ()
    attacker: str | None = None
    judge_model: str | None = None
    adapter: str | None = None  # the key of the adapter stack of this run; None: the base

    @property
    def adapter_stack(self) -> AdapterStack | None:
        return AdapterStack.parse(self.adapter) if self.adapter else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "reasoning": self.reasoning, "attack": self.attack,
            "modifiers": list(self.modifiers), "attacker": self.attacker,
            "judge_model": self.judge_model, "adapter": self.adapter,
            "suites": list(self.suites), "limit": self.limit, "seed": self.seed,
            "decoding": self.params.to_dict(), "judges": list(self.judges),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSpec":
        return cls(model=d["model"], reasoning=d["reasoning"], attack=d["attack"],
                   suites=tuple(d["suites"]), limit=d.get("limit"), seed=d.get("seed", 0),
                   params=DecodingParams.from_dict(d.get("decoding", {})),
                   judges=tuple(d.get("judges", DEFAULT_JUDGES)),
                   modifiers=tuple(d.get("modifiers", ())), attacker=d.get("attacker"),
                   judge_model=d.get("judge_model"), adapter=d.get("adapter"))

    def recipe(self) -> Recipe:
        return Recipe.from_names(self.reasoning, self.modifiers, self.attack)


@dataclass(frozen=True)
class PlannedItem:
    item: Item
    messages: tuple[Message, ...]


@dataclass(frozen=True)
class RunPlan:
    """One run to make: its configuration and its items with their exact messages. Plans are
    never changed: a stage that learns more (the model's digest, the stored run's id) makes
    a new plan with dataclasses.replace."""

    spec: RunSpec
    items: tuple[PlannedItem, ...]
    run_id: int | None = None  # the stored run (set once it is created, or on resume)
    extra_config: dict[str, Any] = field(default_factory=dict)
    recipe: Recipe | None = None  # rebuilt from the spec's names when None (resume)
    retry_errors: bool = False  # on resume: items whose generation failed are generated again

    def get_recipe(self) -> Recipe:
        return self.recipe if self.recipe is not None else self.spec.recipe()

    def config(self) -> dict[str, Any]:
        return self.spec.to_dict() | self.extra_config


def prompt_file_hashes(recipe: Recipe, suites: tuple[str, ...],
                       judges: tuple[str, ...]) -> dict[str, str]:
    files = recipe.files() + ["refusal_keywords.toml"] + suite_files(suites)
    if needs_model(judges):
        files.append("judges.toml")
    return {f: prompt_file_sha256(f) for f in dict.fromkeys(files)}


def _unique(values: tuple[str, ...], what: str) -> tuple[str, ...]:
    if not values:
        raise SaferlabError(f"at least one {what} is needed", EXIT_USAGE)
    return tuple(dict.fromkeys(v.strip() for v in values))


def plan_session(spec: SessionSpec) -> list[RunPlan]:
    """Resolve every name (raising SaferlabError for unknown ones, before any model loads),
    draw the items once, and build the messages of each run."""
    if spec.limit is not None and spec.limit < 1:
        raise SaferlabError("--limit must be at least 1", EXIT_USAGE)
    for judge in spec.judges:
        make_judge(judge)  # unknown names and bad parameters fail here, before any model loads
    if needs_model(spec.judges) and not spec.judge_model:
        # The target judges itself, as it is its own attacker, unless told otherwise; the run
        # records which model judged.
        spec = replace(spec, judge_model=spec.model)
    recipes = [Recipe.from_names(r, spec.modifiers, a)
               for r, a in itertools.product(_unique(spec.reasoning, "reasoning prompt"),
                                             _unique(spec.attacks, "attack"))]
    suites = _unique(spec.suites, "suite")
    items: list[Item] = []
    for suite in suites:
        items += sample(load_suite(suite, spec.seed, spec.limit), spec.limit, spec.seed)
    if not items:
        raise SaferlabError("the chosen suites hold no items", EXIT_USAGE)
    stacks, adapters = resolve_stacks(spec.model, spec.adapters) if spec.adapters else ([], {})
    plans = []
    for recipe, adapter in itertools.product(recipes, [None, *stacks]):
        run_spec = RunSpec(model=spec.model, reasoning=recipe.reasoning.label,
                           attack=recipe.attack.label, suites=suites, limit=spec.limit,
                           seed=spec.seed, params=spec.params,
                           judges=tuple(dict.fromkeys(spec.judges)),
                           modifiers=tuple(m.name for m in recipe.modifiers),
                           attacker=spec.attacker if recipe.protocol == "iterative" else None,
                           judge_model=spec.judge_model, adapter=adapter)
        planned = tuple(PlannedItem(item, recipe.messages(item)) for item in items)
        extra: dict[str, Any] = {"prompt_files": prompt_file_hashes(recipe, suites, spec.judges),
                                 "protocol": recipe.protocol}
        if adapters:
            extra["adapters"] = adapters
        if (coverage := recipe.attack.coverage(items)) is not None:
            extra["attack_coverage"] = coverage
        plans.append(RunPlan(run_spec, planned, extra_config=extra, recipe=recipe))
    return plans
