"""Everything a user can name in a run, with a one-line description, a citation and whether
it is built in or the user's own."""

from __future__ import annotations

from typing import Any

from .attacks import attacks
from .judges import JUDGES
from .prompting import modifiers, reasoning_prompts
from .suites import suites

SECTIONS = ("reasoning_prompts", "modifiers", "attacks", "suites", "loaders", "judges")


def _row(name: str, entry: Any, source: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": entry.description, "citation": entry.citation,
            "source": source, **extra}


def catalog() -> dict[str, list[dict[str, Any]]]:
    from .loaders import LOADERS

    return {
        "reasoning_prompts": [_row(r.name, r, r.source) for r in reasoning_prompts().values()],
        "modifiers": [_row(m.name, m, m.source) for m in modifiers().values()],
        "attacks": [_row(a.name, a, a.source, kind=a.kind) for a in attacks().values()],
        "suites": [_row(s.name, s, s.source, kind=s.kind) for s in suites().values()],
        "loaders": [_row(name, info, "built-in",
                         usage=f"{name}:DATASET[:split]" if name == "hf" else f"{name}:PATH")
                    for name, info in LOADERS.items()],
        "judges": [{"name": j.name, "description": j.description, "citation": "",
                    "source": "built-in", "meter": j.meter, "needs_model": j.needs_model}
                   for j in JUDGES.values()],
    }
