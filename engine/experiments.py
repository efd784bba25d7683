"""The paper's experiments as plans (Li et al. 2025, arXiv:2502.09673)."""

from __future__ import annotations

from .attacks import attacks
from .plan import RunPlan, SessionSpec, plan_session
from .prompting import modifiers, reasoning_prompts
from .types import DecodingParams

# Section 3 of the paper: reasoning-enhancing prompts, each with and without a safety system
# prompt, against no attack and three template attacks, measured on harmful requests, their
# benign twins (over-refusal) and math (reasoning).
PROMPTING_REASONING = ("direct", "zero-shot-cot", "few-shot-cot:k=1", "few-shot-cot:k=2",
                       "few-shot-cot:k=4", "few-shot-cot:k=8", "plan-and-solve", "long-cot")
PROMPTING_ATTACKS = ("none", "prefix-injection", "refusal-suppression", "deep-inception")
PROMPTING_SUITES = ("harmful", "benign", "math")
PROMPTING_MODIFIERS: tuple[tuple[str, ...], ...] = ((), ("safety-system",))


def prompting_plans(model: str, limit: int, seed: int,
                    max_tokens: int) -> tuple[list[RunPlan], list[str]]:
    """The plans of the prompting experiment, and the parts the library lacks (skipped)."""
    known_r, known_a, known_m = reasoning_prompts(), attacks(), modifiers()
    reasoning = tuple(r for r in PROMPTING_REASONING if r.split(":")[0] in known_r)
    chosen_attacks = tuple(a for a in PROMPTING_ATTACKS if a in known_a)
    mods = [m for m in PROMPTING_MODIFIERS if all(x in known_m for x in m)]
    missing = ([f"reasoning prompt {r}" for r in PROMPTING_REASONING if r not in reasoning]
               + [f"attack {a}" for a in PROMPTING_ATTACKS if a not in chosen_attacks]
               + [f"modifier {'+'.join(m)}" for m in PROMPTING_MODIFIERS if m not in mods])
    plans: list[RunPlan] = []
    for modifier_set in mods:
        plans += plan_session(SessionSpec(
            model=model, reasoning=reasoning, attacks=chosen_attacks, suites=PROMPTING_SUITES,
            modifiers=modifier_set, limit=limit, seed=seed,
            params=DecodingParams(max_tokens=max_tokens, seed=seed)))
    return plans, missing
