"""The runs a configuration of the lab asks for: used by the main and compare screens."""

from __future__ import annotations

from typing import Sequence

from saferlab.engine.errors import SaferlabError

from .settings import Settings


def build_plans(settings: Settings, adapters: Sequence[str] | None = None,
                reasoning: str | None = None, modifiers: list[str] | None = None,
                attacks: list[str] | None = None) -> list:
    """One run per attack and adapter (stack) of ``settings``; ``adapters`` replaces the
    chosen adapters and the typed stack (the compare screen runs one adapter a side)."""
    from saferlab.engine.plan import SessionSpec, plan_session
    from saferlab.engine.types import DecodingParams

    if not settings.suites:
        raise SaferlabError("choose at least one suite")
    attacks = attacks if attacks is not None else settings.attacks
    if not attacks:
        raise SaferlabError("choose at least one attack (none is an attack too)")
    if adapters is None:
        adapters = list(settings.adapters) + ([settings.adapter_stack]
                                              if settings.adapter_stack else [])
    if not settings.judges:
        raise SaferlabError("choose at least one judge")
    judges = tuple(settings.judges)
    spec = SessionSpec(
        model=settings.model, reasoning=(reasoning or settings.reasoning,),
        attacks=tuple(attacks), suites=tuple(settings.suites),
        modifiers=tuple(settings.modifiers if modifiers is None else modifiers),
        adapters=tuple(adapters), limit=settings.sample, seed=0, judges=judges,
        judge_model=settings.judge_model or None,  # none: the target judges itself
        params=DecodingParams(max_tokens=settings.max_tokens, temperature=0.0, seed=0))
    return plan_session(spec)
