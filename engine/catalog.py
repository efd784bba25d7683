"""Everything a user can name in a run, with a one-line description and a citation."""

from __future__ import annotations

from typing import Any

from .judges import JUDGES
from .prompting import attacks, reasoning_prompts
from .suites import SUITES

SECTIONS = ("reasoning_prompts", "modifiers", "attacks", "suites", "loaders", "judges")


def catalog() -> dict[str, list[dict[str, Any]]]:
    return {
        "reasoning_prompts": [
            {"name": r.name, "description": r.description, "citation": r.citation}
            for r in reasoning_prompts().values()],
        "modifiers": [],
        "attacks": [
            {"name": a.name, "description": a.description, "citation": a.citation}
            for a in attacks().values()],
        "suites": [
            {"name": s.name, "description": s.description, "citation": s.citation, "kind": s.kind}
            for s in SUITES.values()],
        "loaders": [],
        "judges": [
            {"name": j.name, "description": j.description, "meter": j.meter}
            for j in JUDGES.values()],
    }
