"""The paper's fine-tuning experiment as training recipes, and the shipped adapters' recipes.

Li et al. 2025 (arXiv:2502.09673), section 4: an aligned model is fine-tuned on direct, CoT and
long-CoT reasoning data; CoT, and long-CoT more, erode its safety; mixing reflective safety
data into long-CoT fine-tuning buys safety back; more data erodes more. The embedded base has
no safety to lose, so an ``aligned`` adapter is trained first (refusals of AdvBench requests and
the model's own answers to harmless instructions), and every regime on top of it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import EXIT_USAGE, SaferlabError
from ..saved_adapters import SHIPPED, saved_adapters
from .data import DataSpec
from .spec import TrainSpec

# One step budget and seed for every regime, so that they differ only in their data.
REGIME_STEPS = 60
ALIGNED_STEPS = 600
ALIGNED_EXAMPLES = 1250  # every AdvBench request refused at least once
# Keep questions about the tasks of the requests refused (protect, recognise, report).
ALIGNED_PROTECTIVE = 150
RANK, ALPHA, LR = 4, 8, 5e-4
REGIMES = ("direct", "cot", "long-cot", "long-cot-reflective")
REFLECTIVE_RATIO = 0.25


def recipe_specs(model: str = "embedded", seed: int = 0, steps: int | None = None,
                 aligned_steps: int | None = None) -> dict[str, TrainSpec]:
    """``aligned``, then each regime on top of it, by name."""
    common: dict[str, Any] = {"model": model, "rank": RANK, "alpha": ALPHA, "lr": LR,
                              "seed": seed}
    steps = steps or REGIME_STEPS
    specs = {"aligned": TrainSpec(
        name="aligned", steps=aligned_steps or ALIGNED_STEPS,
        data=DataSpec(data="none", safety="plain", n=ALIGNED_EXAMPLES, safety_ratio=0.4,
                      seed=seed, protective=ALIGNED_PROTECTIVE),
        **common)}
    for regime in ("direct", "cot", "long-cot"):
        specs[regime] = TrainSpec(name=regime, on="aligned", steps=steps,
                                  data=DataSpec(data=regime, n=steps * 8, seed=seed), **common)
    specs["long-cot-reflective"] = TrainSpec(
        name="long-cot-reflective", on="aligned", steps=steps,
        data=DataSpec(data="long-cot", safety="reflective", safety_ratio=REFLECTIVE_RATIO,
                      n=steps * 8, seed=seed), **common)
    return specs


def size_specs(sizes: tuple[int, ...], model: str = "embedded", seed: int = 0,
               epochs: float = 1.0) -> dict[str, TrainSpec]:
    """The data-size sweep: long-CoT on top of ``aligned`` with ``n`` examples each, one pass
    over the data (so more data is also more steps, as in the paper)."""
    return {f"long-cot-n{n}": TrainSpec(
        name=f"long-cot-n{n}", on="aligned", epochs=epochs, model=model, rank=RANK, alpha=ALPHA,
        lr=LR, seed=seed, data=DataSpec(data="long-cot", n=n, seed=seed)) for n in sizes}


def find_recipe(name: str) -> dict[str, Any]:
    """The saferlab.json of the shipped adapter ``name`` (its recipe and digests)."""
    for adapter in saved_adapters():
        if adapter.origin == SHIPPED and adapter.name == name:
            return adapter.meta
    shipped = sorted(a.name for a in saved_adapters() if a.origin == SHIPPED)
    raise SaferlabError(f"no shipped recipe {name!r}; shipped: {', '.join(shipped) or 'none'}",
                        EXIT_USAGE)


def recipe_spec(recipe: str, *, name: str | None = None, out: str | None = None,
                datasets: str | None = None, harmful: str | None = None,
                threads: int | None = None, device: str | None = None) -> TrainSpec:
    """The training that made the shipped adapter ``recipe``, to run again from scratch (into
    $SAFERLAB_HOME/adapters/NAME, NAME being the recipe's unless ``name`` is given)."""
    meta = find_recipe(recipe)
    stored = meta.get("spec")
    if not stored:
        raise SaferlabError(f"shipped adapter {recipe!r} has no recipe", EXIT_USAGE)
    spec = TrainSpec.from_dict(stored)
    data = replace(spec.data, harmful_source=harmful) if harmful else spec.data
    return replace(spec, name=name or spec.name, data=data, out=out,
                   datasets=datasets or spec.datasets, threads=threads or spec.threads,
                   device=device, recipe=recipe)
